"""Quickstart step time on an idle machine and with one core busy, per thread setting, in one run.

Each setting trains the quickstart (``experiment=dapo_speciarl``) for ``--steps`` steps in its own
child process (no evaluation, no loggers) and reports the fit time per step, first with the machine
as it is ("idle": run it under ``/work/tools/cpu_gate exclusive`` or on a quiet machine), then with
one core kept busy by ``yes > /dev/null``. The OpenMP settings must be in the environment before
torch loads libgomp, hence one process per setting.

Settings (``--settings``, comma-separated):

* ``spin``: libgomp's own default, what the quickstart did before speciarl set a wait policy:
  threads that finish a parallel region spin ~3 ms (``GOMP_SPINCOUNT=300000``) before sleeping;
* ``passive``: ``OMP_WAIT_POLICY=PASSIVE``: they sleep at once, so a core left idle by a finished
  thread can take over a thread that shares its core with other work;
* ``spin_30k`` / ``spin_3k``: a tenth / a hundredth of that spin (``GOMP_SPINCOUNT``), then sleep;
* ``one_thread``: ``num_threads=1`` (spin policy): no parallel regions at all;
* ``default``: nothing set: whatever speciarl does by default now (it samples /proc/stat at start
  and sleeps at once only when other processes use the CPUs; each run's choice is printed).

    python benchmarks/busy_machine.py                       # 30 steps, all settings
    python benchmarks/busy_machine.py --steps 10 --settings default,spin
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
SETTINGS: dict[str, tuple[dict[str, str], list[str]]] = {
    "spin": ({"GOMP_SPINCOUNT": "300000"}, []),
    "passive": ({"OMP_WAIT_POLICY": "PASSIVE"}, []),
    "spin_30k": ({"GOMP_SPINCOUNT": "30000"}, []),
    "spin_3k": ({"GOMP_SPINCOUNT": "3000"}, []),
    "one_thread": ({"GOMP_SPINCOUNT": "300000"}, ["num_threads=1"]),
    "default": ({}, []),
}
# What the child must not inherit: a thread or wait setting of the caller's shell would blur
# the comparison (the shared gate's OMP_NUM_THREADS=1 above all).
POLICY_LINE = "OpenMP wait policy:"  # what speciarl.train logs it chose (speciarl.wait_policy)
CLEARED = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OMP_WAIT_POLICY", "GOMP_SPINCOUNT", "OMP_DYNAMIC")


def cpu_name() -> str:
    """The CPU model from /proc/cpuinfo (``platform.processor()`` is empty on Linux)."""
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown CPU"


def time_setting(setting: str, steps: int, scratch: Path) -> dict[str, Any]:
    """Train ``steps`` quickstart steps in a child process; seconds per step, wall, the policy it logged.

    Raises ``RuntimeError`` with the child's output tail when the run fails.
    """
    env_extra, overrides = SETTINGS[setting]
    env = {k: v for k, v in os.environ.items() if k not in CLEARED}
    env.update(env_extra)
    env["PYTHONPATH"] = str(REPO / "src") + os.pathsep + env.get("PYTHONPATH", "")
    run_dir = Path(tempfile.mkdtemp(prefix=f"{setting}-", dir=scratch))
    command = [
        sys.executable,
        "-m",
        "speciarl.train",
        "experiment=dapo_speciarl",
        f"trainer.max_steps={steps}",
        "eval.before=false",
        "eval.after=false",
        "eval.best_of_n=0",
        "logger=none",
        "trainer.enable_progress_bar=false",
        f"hydra.run.dir={run_dir}",
        *overrides,
    ]
    load = os.getloadavg()[0]
    started = time.perf_counter()
    done = subprocess.run(command, env=env, cwd=REPO, capture_output=True, text=True)
    wall = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"{setting} failed ({done.returncode}):\n{(done.stdout + done.stderr)[-3000:]}")
    results = json.loads((run_dir / "results.json").read_text())
    logged = done.stdout + done.stderr + "".join(p.read_text() for p in run_dir.glob("*.log"))
    chosen = [line.split(POLICY_LINE, 1)[1].strip() for line in logged.splitlines() if POLICY_LINE in line]
    return {
        "s_per_step": results["fit_seconds"] / results["steps"],
        "wall": wall,
        "load_at_start": load,
        "wait_policy": chosen[0] if chosen else "not logged",
    }


def run_all(settings: list[str], steps: int, rounds: int) -> dict[str, dict[str, list[dict[str, Any]]]]:
    """Per round: every setting idle, then every setting with one ``yes`` busy (order rotated per round)."""
    figures: dict[str, dict[str, list[dict[str, Any]]]] = {
        "idle": {s: [] for s in settings},
        "busy": {s: [] for s in settings},
    }
    with tempfile.TemporaryDirectory(prefix="busy_machine-") as scratch:
        for round_index in range(rounds):
            order = settings[round_index % len(settings) :] + settings[: round_index % len(settings)]
            for load in ("idle", "busy"):
                busy = subprocess.Popen(["yes"], stdout=subprocess.DEVNULL) if load == "busy" else None
                try:
                    time.sleep(1.0 if busy else 0.0)  # let the scheduler settle the busy core
                    for setting in order:
                        figures[load][setting].append(time_setting(setting, steps, Path(scratch)))
                        print(
                            f"round {round_index} {load} {setting}: {figures[load][setting][-1]}", flush=True
                        )
                finally:
                    if busy is not None:
                        busy.terminate()
                        busy.wait()
    return figures


def table(figures: dict[str, dict[str, list[dict[str, Any]]]], steps: int) -> str:
    """Markdown: median s/step idle and busy (range over rounds), busy / idle, idle against ``spin``."""

    def median(load: str, setting: str) -> float:
        return statistics.median(r["s_per_step"] for r in figures[load][setting])

    def spread(load: str, setting: str) -> str:
        values = [r["s_per_step"] for r in figures[load][setting]]
        return f"{median(load, setting):.3f} ({min(values):.3f}-{max(values):.3f})"

    rounds = len(next(iter(figures["idle"].values())))
    baseline = median("idle", "spin") if "spin" in figures["idle"] else None
    loads = {load: max(r["load_at_start"] for rs in figures[load].values() for r in rs) for load in figures}
    lines = [
        f"{steps} quickstart steps, {os.cpu_count()} cores ({cpu_name()}), one core busy = `yes > /dev/null`; "
        f"median (range) of {rounds} rounds; highest 1-min load at a start: idle {loads['idle']:.2f}, "
        f"busy {loads['busy']:.2f}",
        "",
        "| setting | idle s/step | busy s/step | busy / idle | idle / spin idle |",
        "|---|---|---|---|---|",
    ]
    for setting in figures["idle"]:
        versus = f"{median('idle', setting) / baseline:.2f}" if baseline else "-"
        lines.append(
            f"| {setting} | {spread('idle', setting)} | {spread('busy', setting)} | "
            f"{median('busy', setting) / median('idle', setting):.2f} | {versus} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--settings", default="spin,passive,one_thread,default")
    parser.add_argument("--rounds", type=int, default=2, help="repeats (rotated order): medians and ranges")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    settings = args.settings.split(",")
    unknown = [s for s in settings if s not in SETTINGS]
    if unknown:
        parser.error(f"unknown settings {unknown}; expected some of {sorted(SETTINGS)}")
    figures = run_all(settings, args.steps, args.rounds)
    print(table(figures, args.steps))
    if args.json:
        args.json.write_text(json.dumps(figures, indent=1))


if __name__ == "__main__":
    main()
