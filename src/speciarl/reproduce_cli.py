"""The command line of ``python -m speciarl.reproduce``, kept apart from its heavy imports.

``--help`` is answered from here before Lightning loads (a second, not ten); the grids are the
files of ``conf/reproduce/``.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

CONF_DIR = Path(__file__).resolve().parent / "conf"
GRIDS_DIR = CONF_DIR / "reproduce"
DESCRIPTION = "The paper's results table (arXiv 2603.03197, Sec. 4) at laptop scale."


def grid_names() -> list[str]:
    """The grids of ``conf/reproduce/``."""
    return sorted(p.stem for p in GRIDS_DIR.glob("*.yaml"))


def parser() -> argparse.ArgumentParser:
    """The arguments of ``python -m speciarl.reproduce``."""
    parsed = argparse.ArgumentParser(prog="python -m speciarl.reproduce", description=DESCRIPTION)
    parsed.add_argument("--out", help="output folder (default: results/reproduction/<grid>)")
    parsed.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parsed.add_argument("--steps", type=int, default=200, help="RL steps per run")
    parsed.add_argument("--sft-steps", type=int, default=300, help="steps of the SFT baseline")
    parsed.add_argument("--grid", choices=grid_names(), default="main", help="conf/reproduce/<grid>.yaml")
    parsed.add_argument("--arms", nargs="+", help="only these arms of the grid")
    parsed.add_argument("--jobs", type=int, default=2, help="runs at once (1 thread each)")
    parsed.add_argument("--override", nargs="*", default=[], help="extra Hydra overrides for every run")
    return parsed


def answer_help(module_name: str, argv: Sequence[str] | None = None) -> None:
    """When run as ``__main__`` with ``-h`` / ``--help``: argparse prints the help and exits."""
    args = sys.argv[1:] if argv is None else argv
    if module_name == "__main__" and any(flag in args for flag in ("-h", "--help")):
        parser().parse_args(["--help"])
