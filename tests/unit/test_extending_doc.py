"""docs/extending.md runs as written: its module, its YAML files, its checks and its commands."""

from __future__ import annotations

import importlib
import re
import shlex
import sys
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.utils import get_method, instantiate

import speciarl

DOC = Path(__file__).resolve().parents[2] / "docs" / "extending.md"
CONF_DIR = str(Path(speciarl.__file__).parent / "conf")
BLOCK = re.compile(r"```(\w+)\n(.*?)```", re.S)


def blocks(kind: str) -> list[str]:
    return [body for lang, body in BLOCK.findall(DOC.read_text()) if lang == kind]


@pytest.fixture(scope="module")
def extension_folder(tmp_path_factory):
    """my_extensions.py and my_conf/ as the doc lays them out, importable."""
    folder = tmp_path_factory.mktemp("extending")
    module = [b.split("\n", 1)[1] for b in blocks("python") if b.startswith("# my_extensions.py\n")]
    (folder / "my_extensions.py").write_text("\n".join(module))
    for body in blocks("yaml"):
        name = body.split("\n", 1)[0].removeprefix("# ").strip()
        assert name.startswith("my_conf/"), f"a yaml block must name its file: {name!r}"
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text(body)
    sys.path.insert(0, str(folder))
    sys.modules.pop("my_extensions", None)
    yield folder
    sys.path.remove(str(folder))
    sys.modules.pop("my_extensions", None)
    _unregister()


def _unregister() -> None:
    from speciarl.rl.advantages import ADVANTAGE_ESTIMATORS
    from speciarl.rl.losses import POLICY_LOSSES

    ADVANTAGE_ESTIMATORS.pop("rloo", None)
    POLICY_LOSSES.pop("unclipped", None)


def test_the_doc_has_every_kind_of_example():
    module = "\n".join(b for b in blocks("python") if b.startswith("# my_extensions.py\n"))
    for marker in (
        "(Reward)",
        "@register_advantage_estimator",
        "@register_policy_loss",
        "(Judge)",
        "ImageFiles(",
        "(RolloutBackend)",
    ):
        assert marker in module, marker


@pytest.mark.parametrize("index", range(len([b for b in blocks("python") if not b.startswith("# my_")])))
def test_each_check_runs(extension_folder, index):
    importlib.import_module("my_extensions")
    checks = [b for b in blocks("python") if not b.startswith("# my_")]
    exec(compile(checks[index], f"{DOC.name}: check {index}", "exec"), {})


def test_each_command_composes_and_builds_what_it_selects(extension_folder):
    importlib.import_module("my_extensions")
    commands = [line for body in blocks("bash") for line in body.splitlines() if "-m speciarl.train" in line]
    assert len(commands) >= 5
    for command in commands:
        overrides = shlex.split(command.split("-m speciarl.train", 1)[1])
        overrides = [o.replace("file://my_conf", f"file://{extension_folder / 'my_conf'}") for o in overrides]
        GlobalHydra.instance().clear()
        with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
            cfg = compose("train", overrides=overrides)
        for override in overrides:
            group = override.split("=", 1)[0]
            if group in ("reward", "verifier", "rollout"):
                assert cfg[group]["_target_"].startswith("my_extensions."), command
                instantiate(cfg[group])
            elif group == "data":
                # Reading the CSV needs the user's files; the reader itself must resolve.
                assert callable(get_method(cfg.data.train["_target_"]))
