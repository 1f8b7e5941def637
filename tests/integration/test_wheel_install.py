"""speciarl as an installed package: the wheel ships every config and trains from outside the repo.

The wheel is built from a copy of the sources and installed into a fresh venv. The venv reaches
the project venv's third-party packages (torch, transformers...) through a ``.pth`` line naming
that venv's site-packages; ``.pth`` files inside a directory added that way are not processed,
so the project's editable install of speciarl (itself a ``.pth`` file there) stays invisible
and the run must use the installed copy.
"""

import importlib.metadata
import json
import os
import shutil
import subprocess
import sys
import sysconfig
import venv
import zipfile
from pathlib import Path

import speciarl

SRC = Path(speciarl.__file__).resolve().parents[1]
ROOT = SRC.parent


def build_wheel(tmp_path: Path) -> Path:
    """``pip wheel`` of a copy of the project (the build leaves nothing in the working tree)."""
    project = tmp_path / "project"
    skip = shutil.ignore_patterns("__pycache__", "*.egg-info", "*.pyc")
    shutil.copytree(SRC, project / "src", ignore=skip)
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        if (ROOT / name).is_file():
            shutil.copy(ROOT / name, project / name)
    # Offline when this venv has the build backend; otherwise pip fetches it (CI has a network).
    isolation = ["--no-build-isolation"] if _has_build_backend() else []
    command = [
        sys.executable,
        "-m",
        "pip",
        "wheel",
        "--no-deps",
        *isolation,
        "-q",
        "-w",
        str(tmp_path / "dist"),
    ]
    done = subprocess.run([*command, str(project)], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    (wheel,) = (tmp_path / "dist").glob("speciarl-*.whl")
    return wheel


def _has_build_backend() -> bool:
    try:
        major = int(importlib.metadata.version("setuptools").split(".")[0])
        importlib.metadata.version("wheel")
    except importlib.metadata.PackageNotFoundError:
        return False
    return major >= 77  # pyproject.toml's build-system requirement


def fresh_venv(path: Path) -> Path:
    """A venv without pip whose site-packages also lists this interpreter's site-packages."""
    venv.EnvBuilder(with_pip=False).create(path)
    python = path / ("Scripts/python.exe" if os.name == "nt" else "bin/python")
    purelib = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    third_party = {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]}
    (Path(purelib) / "project_packages.pth").write_text("\n".join(sorted(third_party)) + "\n")
    return python


def test_wheel_installs_and_trains_outside_the_repository(tmp_path):
    wheel = build_wheel(tmp_path)
    shipped = set(zipfile.ZipFile(wheel).namelist())
    configs = {p.relative_to(SRC).as_posix() for p in (SRC / "speciarl" / "conf").rglob("*.yaml")}
    assert configs and configs <= shipped, sorted(configs - shipped)

    python = fresh_venv(tmp_path / "venv")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env.setdefault("WANDB_MODE", "offline")
    # Before the install the venv sees torch but no speciarl: not the editable install's either.
    probe = "import torch\ntry:\n    import speciarl\nexcept ImportError:\n    print('absent')"
    seen = subprocess.run([str(python), "-c", probe], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert seen.stdout.strip() == "absent", seen.stdout + seen.stderr[-2000:]

    install = [
        sys.executable,
        "-m",
        "pip",
        "--python",
        str(python),
        "install",
        "-q",
        "--no-deps",
        "--no-index",
    ]
    done = subprocess.run([*install, str(wheel)], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]

    elsewhere = tmp_path / "elsewhere"  # no src/, no conf/ here: only the installed package
    elsewhere.mkdir()
    where = subprocess.run(
        [str(python), "-c", "import speciarl; print(speciarl.__file__)"],
        cwd=elsewhere,
        env=env,
        capture_output=True,
        text=True,
    )
    assert where.returncode == 0, where.stderr[-3000:]
    location = Path(where.stdout.strip()).resolve()
    assert location.is_relative_to((tmp_path / "venv").resolve()), location
    assert not location.is_relative_to(ROOT), location

    run_dir = elsewhere / "run"
    command = [
        str(python),
        "-m",
        "speciarl.train",
        "experiment=dapo_speciarl",
        "trainer.max_steps=2",
        # small and quick: 2 prompts a step, 16 held-out images, no best-of-N, CSV logs
        "data.batch_size=2",
        "data.val.size=16",
        "eval.best_of_n=0",
        "logger=csv",
        f"hydra.run.dir={run_dir}",
    ]
    done = subprocess.run(command, cwd=elsewhere, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    results = json.loads((run_dir / "results.json").read_text())
    assert results["steps"] == 2 and 0.0 <= results["after"]["val/hm"] <= 1.0
