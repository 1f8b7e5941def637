"""``--help`` of the Hydra entry points, answered before torch, Lightning and Hydra load.

Importing the entry points' dependencies takes ~25 s on a 2-core machine; the help needs none of
them. Each entry point calls :func:`answer_help` before its heavy imports: with ``--help`` / ``-h``
on the command line it prints the ``hydra.help.template`` of its config file, with
``$APP_CONFIG_GROUPS`` replaced by every option of every config group the config uses (read from
the folders, the default marked ``*``, so a new preset shows without anyone editing a help
text), and exits. ``--hydra-help`` and the rest still go to Hydra.
"""

from __future__ import annotations

import sys
import textwrap
from collections.abc import Sequence
from pathlib import Path

import yaml

CONF_DIR = Path(__file__).resolve().parent / "conf"
HELP_FLAGS = ("--help", "-h")


def config_groups(config_name: str, conf_dir: Path = CONF_DIR) -> dict[str, str | None]:
    """The config groups a root config's ``defaults`` choose from, each with its default option.

    ``train`` also offers the groups it defaults to null (``experiment``, ``hparams``...), which
    the defaults list names too; ``hydra/...`` groups are left out. Returns ``{group: default}``
    in the order the defaults give.
    """
    root = yaml.safe_load((conf_dir / f"{config_name}.yaml").read_text())
    groups: dict[str, str | None] = {}
    for entry in root.get("defaults", []):
        if not isinstance(entry, dict):
            continue
        for key, default in entry.items():
            group = key.removeprefix("override ").strip()
            if not group.startswith("hydra") and group not in groups and (conf_dir / group).is_dir():
                groups[group] = default
    return groups


def group_options(group: str, conf_dir: Path = CONF_DIR) -> list[str]:
    """The options of a config group: its own ``.yaml`` files (sub-folders are groups of their own)."""
    return sorted(path.stem for path in (conf_dir / group).glob("*.yaml"))


def groups_listing(config_name: str, conf_dir: Path = CONF_DIR, width: int = 100) -> str:
    """One block per group: ``  algorithm      dapo | dr_grpo | grpo* | gspo`` (``*``: the default)."""
    lines = []
    for group, default in config_groups(config_name, conf_dir).items():
        options = " | ".join(f"{o}*" if o == default else o for o in group_options(group, conf_dir))
        lines.extend(
            textwrap.wrap(options, width=width, initial_indent=f"  {group:<15}", subsequent_indent=" " * 17)
        )
    if config_name == "train" and (conf_dir / "hydra" / "launcher").is_dir():
        launchers = " | ".join(group_options("hydra/launcher", conf_dir))
        lines.append(f"  {'hydra/launcher':<15}{launchers}")
    return "\n".join(lines)


def help_text(config_name: str, conf_dir: Path = CONF_DIR) -> str:
    """The help of ``python -m speciarl.<config_name>``: its template with the groups filled in.

    Raises ``KeyError`` naming the config when it has no ``hydra.help.template``.
    """
    root = yaml.safe_load((conf_dir / f"{config_name}.yaml").read_text())
    try:
        template = root["hydra"]["help"]["template"]
    except (KeyError, TypeError) as missing:
        raise KeyError(f"{config_name}.yaml has no hydra.help.template") from missing
    return template.replace("$APP_CONFIG_GROUPS", groups_listing(config_name, conf_dir))


def answer_help(config_name: str, module_name: str, argv: Sequence[str] | None = None) -> None:
    """When ``module_name`` is ``__main__`` and ``argv`` asks for help: print it and exit (status 0).

    An entry point imported as a library (``from speciarl.train import train``) is left alone.
    """
    args = sys.argv[1:] if argv is None else argv
    if module_name == "__main__" and any(flag in args for flag in HELP_FLAGS):
        print(help_text(config_name))
        raise SystemExit(0)
