"""Regenerate the quickstart's figures in the README and the docs from a run of the current code.

    python scripts/quickstart_figures.py                           # runs the quickstart (~2 min idle), then writes
    python scripts/quickstart_figures.py --results outputs/<date>/<time>/results.json   # from a finished run

The quickstart is ``python -m speciarl.train experiment=dapo_speciarl``. Its table (before RL,
best-of-8, after 200 steps) and a line naming the CPU, core count, torch version, date and the
run's time replace what stands between the ``<!-- quickstart-figures -->`` and
``<!-- /quickstart-figures -->`` markers of every file in ``FILES``. The time is the run's own
``fit_seconds``: it means something only on an otherwise idle machine (the line gives the load).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
FILES = (REPO / "README.md", REPO / "docs" / "results-and-reproduction.md")
KIND_NAMES = {"clean": "clean images (70%)", "ambiguous": "grey images (30%, leaf unknowable)"}
START, END = "<!-- quickstart-figures -->", "<!-- /quickstart-figures -->"
ROWS = (
    ("before", "before RL (warm-started base, greedy)"),
    ("before_best_of_8", "base, best-of-8"),
    ("after", "after {steps} steps of DAPO + SpeciaRL"),
)


def cpu_name() -> str:
    """The CPU model from /proc/cpuinfo."""
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return "unknown CPU"


def run_quickstart(run_dir: Path) -> tuple[Path, str]:
    """Run the quickstart into ``run_dir``; returns its results.json and the load before and after."""
    load_before = os.getloadavg()[0]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO / "src"), os.environ.get("PYTHONPATH", "")])}
    command = [sys.executable, "-m", "speciarl.train", "experiment=dapo_speciarl", f"hydra.run.dir={run_dir}"]
    subprocess.run(command, cwd=REPO, env=env, check=True)
    return run_dir / "results.json", f"1-min load {load_before:.2f} before, {os.getloadavg()[0]:.2f} after"


def figures_block(results: dict, load: str) -> str:
    """The markdown between the markers: the table, then what ran it where."""
    import torch

    steps = int(results.get("steps", 0))
    lines = ["| | correctness | specificity | HM |", "|---|---|---|---|"]
    for key, label in ROWS:
        if key not in results:
            raise KeyError(f"results.json has no {key!r} row: run the quickstart with its defaults")
        row = results[key]
        figures = " | ".join(f"{row[f'val/{m}']:.3f}" for m in ("correctness", "specificity", "hm"))
        lines.append(f"| {label.format(steps=steps)} | {figures} |")
    kinds = [k for k in ("clean", "ambiguous") if f"val_{k}/correctness" in results["after"]]
    if kinds:
        shifts = ", ".join(
            f"{KIND_NAMES[k]} {results['before'][f'val_{k}/correctness']:.3f} -> "
            f"{results['after'][f'val_{k}/correctness']:.3f}"
            for k in kinds
        )
        lines += ["", f"Correctness per kind of image, before -> after: {shifts}."]
    threads = os.environ.get("OMP_NUM_THREADS") or f"default ({os.cpu_count()} cores)"
    lines += [
        "",
        f"Measured on {cpu_name()}, {os.cpu_count()} cores, torch {torch.__version__}, threads {threads}, "
        f"{datetime.date.today().isoformat()}: {steps} RL steps in {results.get('fit_seconds', 0):.0f} s "
        f"({load}). Regenerate with `python scripts/quickstart_figures.py`.",
    ]
    return "\n".join(lines)


def rewrite(path: Path, block: str) -> bool:
    """Put ``block`` between the markers of ``path``; False when the file has no markers."""
    text = path.read_text()
    pattern = re.compile(re.escape(START) + r".*?" + re.escape(END), re.DOTALL)
    if not pattern.search(text):
        return False
    new = pattern.sub(lambda _: f"{START}\n{block}\n{END}", text)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(handle, "w") as out:
        out.write(new)
    os.replace(temporary, path)  # whole or not at all
    return True


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--results", type=Path, help="results.json of a finished quickstart run")
    parser.add_argument("--load", default="load not recorded", help="with --results: the load it ran at")
    parser.add_argument("--run-dir", type=Path, default=REPO / "outputs" / "quickstart-figures")
    args = parser.parse_args()
    results_path, load = (args.results, args.load) if args.results else run_quickstart(args.run_dir)
    block = figures_block(json.loads(results_path.read_text()), load)
    print(block)
    for path in FILES:
        print(f"{path.relative_to(REPO)}: {'updated' if rewrite(path, block) else 'no markers, left alone'}")


if __name__ == "__main__":
    main()
