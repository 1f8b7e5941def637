"""Chaos soak: a long run against a faulty judge, preempted, killed and out of disk, resumed each time.

    python benchmarks/chaos_soak.py                              # 300 steps (the figures in docs/scaling.md)
    python benchmarks/chaos_soak.py --steps 20 --checkpoint-every 2   # the reduced version (CI)

Both runs train against ``tests/faulty_server.FaultyJudgeServer`` on loopback, with the judge
soak's settings (``benchmarks/judge_soak.py``: its faults are seeded by request body, 4% of
distinct requests fail on every attempt, 10% on the first only; the sqlite verdict cache makes a
redone step get the verdicts it got the first time).

- run A: ``--steps`` steps, undisturbed;
- run B: the same, with its checkpoint folder on a small tmpfs of its own (root only; otherwise the
  disk episode is skipped and said so), disturbed at three steps drawn with ``--seed``:
  SIGTERM (the run must exit 143 within seconds, printing its checkpoint), a full disk (the
  checkpoint folder is filled until a checkpoint no longer fits: the run must stop non-zero saying
  the disk is full, leaving no partial file; the filler is then removed) and SIGKILL. After each,
  B is resumed from ``last.ckpt`` in the same folder.

While B runs, a watcher loads every ``*.ckpt`` on disk each time it appears or changes and checks
that it is a whole checkpoint whose tensors are all finite. At the end, B's final checkpoint must
equal A's bitwise (weights and optimiser state), with the same run totals and per-step judge errors
(plus the judge soak's per-step invariants on both runs). Exits non-zero with what failed;
writes ``chaos.json`` with the figures.
"""

from __future__ import annotations

import argparse
import errno
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "tests"))
from judge_soak import check_run, metric_rows, start_training, train_overrides  # noqa: E402

from faulty_server import FaultPlan, FaultyJudgeServer  # noqa: E402
from speciarl.data.synthetic import shapes_taxonomy  # noqa: E402
from speciarl.runs.nonfinite import first_nonfinite  # noqa: E402
from speciarl.verifier.taxonomy_judge import TaxonomyJudge  # noqa: E402


class CheckpointWatcher(threading.Thread):
    """Loads every checkpoint under ``folder`` whenever it appears or changes; records the bad ones."""

    def __init__(self, folder: Path) -> None:
        super().__init__(daemon=True)
        self.folder, self.seen, self.loads, self.bad = folder, {}, 0, []
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.wait(0.3):
            self.scan()

    def scan(self) -> None:
        for path in sorted(self.folder.glob("*.ckpt")):
            try:
                stamp = (path.stat().st_mtime_ns, path.stat().st_size)
                if self.seen.get(path) == stamp:
                    continue
                checkpoint = torch.load(path, map_location="cpu", weights_only=True)
            except FileNotFoundError:
                continue  # replaced or removed between the listing and the load
            except Exception as error:  # any load failure is the finding
                self.bad.append(f"{path.name}: {type(error).__name__}: {error}"[:300])
                continue
            self.seen[path] = stamp
            self.loads += 1
            name = first_nonfinite({"w": checkpoint["state_dict"], "o": checkpoint["optimizer_states"]})
            if name is not None:
                self.bad.append(f"{path.name}: non-finite {name}")


def current_step(out: Path) -> int:
    """The last step with a completion written (module.log_completions_every=1), -1 before any."""
    path = out / "completions_train.jsonl"
    if not path.exists():
        return -1
    with path.open("rb") as fh:
        fh.seek(max(0, path.stat().st_size - 8192))
        tail = fh.read().decode("utf-8", "replace")
    steps = re.findall(r'"step": (\d+)', tail)
    return int(steps[-1]) if steps else -1


def wait_for_step(process: subprocess.Popen, out: Path, step: int, what: str) -> None:
    while current_step(out) < step:
        if process.poll() is not None:
            raise SystemExit(f"run B ended (exit {process.returncode}) before {what} at step {step}")
        time.sleep(0.2)


def mount_small_disk(folder: Path, size_mb: int) -> bool:
    folder.mkdir(parents=True, exist_ok=True)
    if os.geteuid() != 0:
        return False
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size_mb}m", "tmpfs", str(folder)])
    return done.returncode == 0


def fill_disk(folder: Path, leave_bytes: int) -> Path:
    """Take all but ``leave_bytes`` of the file system's free space with one file."""
    filler = folder / ".filler"
    with filler.open("wb") as fh:
        try:
            while True:  # the run keeps writing meanwhile: fill until the disk says no
                fh.write(b"\0" * (1 << 20))
                fh.flush()
        except OSError as error:
            if error.errno != errno.ENOSPC:
                raise
        fh.truncate(max(0, fh.tell() - leave_bytes))  # a little room, less than a checkpoint
    return filler


def resume(overrides: list[str], ckpt_dir: Path, log_path: Path) -> subprocess.Popen:
    return start_training([*overrides, f"ckpt_path={ckpt_dir / 'last.ckpt'}"], log_path)


def disturbed_run(args: argparse.Namespace, url: str, out: Path, plan: dict[str, int]) -> dict:
    """Run B: SIGTERM, full disk and SIGKILL at the planned steps, resumed after each."""
    ckpt_dir = out / "ckpt-disk"
    has_disk = mount_small_disk(ckpt_dir, args.disk_mb)
    overrides = [*train_overrides(args, url, out), f"checkpoint.dirpath={ckpt_dir}"]
    log_path = out / "train.log"
    watcher = CheckpointWatcher(ckpt_dir)
    watcher.start()
    figures: dict = {"disk_episode": has_disk, "episodes": []}
    process = start_training(overrides, log_path)
    try:
        for kind in sorted(plan, key=plan.get):
            if kind == "disk" and not has_disk:
                figures["episodes"].append({"kind": "disk", "skipped": "not root: no tmpfs"})
                continue
            wait_for_step(process, out, plan[kind], kind)
            episode = {"kind": kind, "at_step": current_step(out)}
            started = time.monotonic()
            filler = None
            if kind == "sigterm":
                process.send_signal(signal.SIGTERM)
            elif kind == "sigkill":
                process.send_signal(signal.SIGKILL)
            else:
                filler = fill_disk(ckpt_dir, args.leave_kb * 1024)
            process.wait(timeout=600)
            episode.update(exit=process.returncode, seconds_to_exit=round(time.monotonic() - started, 2))
            tail = log_path.read_text()[-4000:]
            expected = {"sigterm": 143, "sigkill": -9}.get(kind)
            if kind == "disk":
                if process.returncode == 0 or "disk full: could not write" not in tail:
                    raise SystemExit(f"full disk: exit {process.returncode}, log ends:\n{tail[-1500:]}")
                partial = [p.name for p in ckpt_dir.iterdir() if ".tmp-" in p.name]
                if partial:
                    raise SystemExit(f"full disk left temporary files: {partial}")
                filler.unlink()
            elif process.returncode != expected:
                raise SystemExit(
                    f"{kind}: exit {process.returncode}, expected {expected}; log:\n{tail[-1500:]}"
                )
            if kind == "sigterm" and f"resume with: ckpt_path={ckpt_dir / 'last.ckpt'}" not in tail:
                raise SystemExit(f"SIGTERM: no checkpoint path printed; log:\n{tail[-1500:]}")
            figures["episodes"].append(episode)
            process = resume(overrides, ckpt_dir, log_path)
        if process.wait() != 0:
            raise SystemExit(f"the last resumed run B failed; log:\n{log_path.read_text()[-3000:]}")
    finally:
        watcher.stop.set()
        watcher.join()
        watcher.scan()
        if process.poll() is None:
            process.kill()
        if has_disk and process.returncode != 0:
            subprocess.run(["umount", "-l", str(ckpt_dir)], check=False)
    figures.update(checkpoint_loads=watcher.loads, bad_checkpoints=watcher.bad)
    final = ckpt_dir / f"step-{args.steps:06d}.ckpt"
    figures["final"] = str(final)
    if has_disk:  # keep the final checkpoint for the comparison, then release the tmpfs
        shutil.copy(final, out / final.name)
        figures["final"] = str(out / final.name)
        subprocess.run(["umount", "-l", str(ckpt_dir)], check=False)
    return figures


def checked_steps(out: Path, args: argparse.Namespace, figures: dict) -> dict:
    """The judge soak's per-step checks over the steps whose metrics were logged.

    A step whose checkpoint was saved but whose metrics row was not (the full disk stops the run
    between the two: Lightning hands a step's metrics to the loggers after its checkpoint) is not
    trained again on resume, so it has no row; it is listed as ``unlogged_steps``.
    """
    logged = sorted(metric_rows(out))
    figures["unlogged_steps"] = sorted(set(range(args.steps)) - set(logged))
    checks = check_run(out, args, logged)
    checks["steps"] = logged
    return checks


def same_bits(one: str, two: str) -> list[str]:
    """Names of the tensors (weights, optimiser state) that differ between two checkpoints."""

    def flat(value, prefix=""):
        if isinstance(value, torch.Tensor):
            yield prefix, value
        elif isinstance(value, dict):
            for k, v in value.items():
                yield from flat(v, f"{prefix}.{k}")
        elif isinstance(value, list):
            for i, v in enumerate(value):
                yield from flat(v, f"{prefix}.{i}")

    a, b = (
        dict(flat({k: torch.load(p, weights_only=True)[k] for k in ("state_dict", "optimizer_states")}))
        for p in (one, two)
    )
    if a.keys() != b.keys():
        return ["<different tensor names>"]
    return [k for k in a if not torch.equal(a[k], b[k])]


def plan_episodes(args: argparse.Namespace) -> dict[str, int]:
    """Steps of the three disturbances, drawn with the seed, in order SIGTERM < disk < SIGKILL."""
    rng = random.Random(args.seed)
    n = args.steps
    return {
        "sigterm": rng.randint(int(0.15 * n), int(0.3 * n)),
        "disk": rng.randint(int(0.4 * n), int(0.55 * n)),
        "sigkill": rng.randint(int(0.7 * n), int(0.85 * n)),
    }


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--checkpoint-every", type=int, default=10)
    parser.add_argument("--permanent-share", type=float, default=0.04)
    parser.add_argument("--transient-share", type=float, default=0.10)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--group", type=int, default=4)
    parser.add_argument("--timeout", type=float, default=1.0, help="judge timeout_s (per request)")
    parser.add_argument("--retries", type=int, default=2)
    parser.add_argument("--max-failure-rate", type=float, default=0.5)
    parser.add_argument("--disk-mb", type=int, default=1024, help="size of run B's checkpoint tmpfs")
    parser.add_argument("--leave-kb", type=int, default=512, help="free space the filler leaves")
    parser.add_argument("--out", type=Path, default=Path("outputs/chaos_soak"))
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    oracle = TaxonomyJudge(shapes_taxonomy())

    def judge_pair(truth: str, prediction: str) -> str:
        return oracle.judge([truth], [prediction])[0].value

    fault_plan = FaultPlan(args.seed, args.permanent_share, args.transient_share)
    episodes = plan_episodes(args)
    figures: dict = {"args": {k: str(v) for k, v in vars(args).items()}, "plan": episodes}
    started = time.monotonic()
    for name in ("a", "b"):
        out = args.out / name
        if out.exists():
            raise SystemExit(f"{out} exists: give a fresh --out")
        out.mkdir(parents=True)
        run_started = time.monotonic()
        with FaultyJudgeServer(judge_pair, fault_plan, hang_s=3 * args.timeout, drip_s=0.3) as server:
            if name == "a":
                process = start_training(train_overrides(args, server.url, out), out / "train.log")
                if process.wait() != 0:
                    raise SystemExit(f"run A failed; log:\n{(out / 'train.log').read_text()[-3000:]}")
                extra = {"final": str(out / "checkpoints" / f"step-{args.steps:06d}.ckpt")}
            else:
                extra = disturbed_run(args, server.url, out, episodes)
            figures[name] = {
                "server": server.stats(),
                "seconds": round(time.monotonic() - run_started, 1),
                **extra,
            }
        figures[name]["checks"] = checked_steps(out, args, figures[name])
        figures[name]["totals"] = json.loads((out / "results.json").read_text())["totals"]
    a, b = figures["a"], figures["b"]
    problems = []
    if b["bad_checkpoints"]:
        problems.append(f"checkpoints that did not load or were not finite: {b['bad_checkpoints']}")
    a_errors = dict(zip(a["checks"]["steps"], a["checks"]["per_step_errors"], strict=True))
    b_errors = dict(zip(b["checks"]["steps"], b["checks"]["per_step_errors"], strict=True))
    if a["totals"] != b["totals"] or any(a_errors[s] != e for s, e in b_errors.items()):
        problems.append(f"run B totals {b['totals']} differ from run A's {a['totals']}")
    if len(a_errors) != args.steps or len(b_errors) < args.steps - len(b.get("unlogged_steps", [])):
        problems.append(f"logged steps: A {len(a_errors)}, B {len(b_errors)} of {args.steps}")
    different = same_bits(a["final"], b["final"])
    figures["different_tensors"] = different
    if different:
        problems.append(f"final checkpoints differ in {len(different)} tensors, e.g. {different[:3]}")
    figures["wall_seconds"] = round(time.monotonic() - started, 1)
    (args.out / "chaos.json").write_text(json.dumps(figures, indent=1))
    if problems:
        raise SystemExit("chaos soak FAILED:\n" + "\n".join(problems))
    print(json.dumps({k: figures[k] for k in ("plan", "wall_seconds")}, indent=1))
    print(json.dumps({"episodes": b["episodes"], "checkpoint_loads": b["checkpoint_loads"]}, indent=1))
    for name in ("a", "b"):
        print(f"run {name}: {figures[name]['server']} in {figures[name]['seconds']} s")
    print(f"chaos soak passed: {args.steps} steps, final weights bitwise equal, totals {a['totals']}")


if __name__ == "__main__":
    main()
