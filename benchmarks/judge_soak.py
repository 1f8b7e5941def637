"""Soak: a long training run against a judge server that fails a seeded share of its requests.

    python benchmarks/judge_soak.py                          # 200 steps, kill -9 at ~step 100, 14% faults
    python benchmarks/judge_soak.py --steps 24 --kill-after 12   # the reduced version (CI)

The judge LLM is ``tests/faulty_server.FaultyJudgeServer`` on loopback: answers come from the
shapes taxonomy, except that a seeded share of requests fails in one of eight ways (HTTP 500, a
hang past the deadline, a one-byte drip, a body cut short, a garbage status line, a malformed
answer, an out-of-set label, a TCP reset). A request body is *permanently* faulty with
probability ``--permanent-share`` (its pair ends as a counted judge error) and *transiently*
faulty with ``--transient-share`` (its first attempt fails, the retry gets the verdict).

The training runs (real ``python -m speciarl.train`` processes: the tiny warm-started policy,
GRPO with the SpeciaRL reward, the tiered judge with the exact-match tier, the sqlite verdict
cache, then the LLM for everything else) go through:

- run A: ``--steps`` steps, uninterrupted;
- run B: the same, killed with SIGKILL once the checkpoint of step ``--kill-after`` exists (plus a
  step or two), then resumed from ``last.ckpt`` in the same folder to ``--steps`` steps.

Checked from the logged metrics, for every step of both runs: verdicts = rollouts (batch x
group); judged (exact + cache + llm) + judge errors + parse failures = verdicts; the groups with a
judge error in the step's completions are exactly the dropped groups, and only the others were
trained (``trained_groups``); and run B ends with the same totals and per-step judge errors as run
A. Exits non-zero (with what failed) when any check fails; writes ``soak.json`` with the figures.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))  # the test-only judge server
from faulty_server import FaultPlan, FaultyJudgeServer  # noqa: E402
from speciarl.data.synthetic import shapes_taxonomy  # noqa: E402
from speciarl.verifier.taxonomy_judge import TaxonomyJudge  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
TIERS_JUDGED = ("judge_exact", "judge_taxonomy", "judge_cache", "judge_llm")


def train_overrides(args: argparse.Namespace, url: str, out: Path) -> list[str]:
    return [
        "algorithm=grpo",
        "reward=speciarl",
        "logger=csv",
        f"seed={args.seed}",
        f"data.batch_size={args.batch}",
        f"algorithm.group_size={args.group}",
        f"trainer.max_steps={args.steps}",
        "+trainer.limit_val_batches=0",
        "trainer.enable_progress_bar=false",
        "eval.before=false",
        "eval.after=false",
        "eval.best_of_n=0",
        "module.log_completions_every=1",
        f"module.completions_per_table={args.batch * args.group}",
        # Faults are the point: the judge failure guard must not end the soak (see docs/judge.md).
        f"module.judge_max_failure_rate={args.max_failure_rate}",
        "verifier=tiered",
        "verifier.deterministic=null",  # exact match, cache, then the LLM: most answers reach it
        f"verifier.cache.url={out / 'verdicts.sqlite'}",
        f"verifier.llm.base_url={url}",
        "verifier.llm.guided=none",
        f"verifier.llm.timeout_s={args.timeout}",
        f"verifier.llm.max_retries={args.retries}",
        "verifier.llm.backoff_s=0.01",
        "verifier.llm.breaker_failures=0",  # a breaker opens by thread timing: not reproducible
        "checkpoint=periodic",
        f"checkpoint.every_n_train_steps={args.checkpoint_every}",
        f"hydra.run.dir={out}",
    ]


def start_training(overrides: list[str], log_path: Path) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "OMP_NUM_THREADS": "1", "WANDB_MODE": "offline"}
    log = log_path.open("a")
    return subprocess.Popen(
        [sys.executable, "-m", "speciarl.train", *overrides], stdout=log, stderr=subprocess.STDOUT, env=env
    )


def finish(process: subprocess.Popen, what: str, log_path: Path) -> None:
    if process.wait() != 0:
        tail = log_path.read_text()[-3000:]
        raise SystemExit(f"{what} failed (exit {process.returncode}); the end of its log:\n{tail}")


def metric_rows(out: Path) -> dict[int, dict[str, str]]:
    """Per step, the logged training row; a resumed run's rows replace the killed run's."""
    rows: dict[int, dict[str, str]] = {}
    for path in sorted(out.glob("csv/version_*/metrics.csv"), key=lambda p: int(p.parent.name.split("_")[1])):
        for row in csv.DictReader(path.open()):
            if row.get("train/judge_verdicts"):
                rows[int(row["step"])] = row
    return rows


def step_completions(out: Path) -> dict[int, list[dict]]:
    """Per step, its completions (the last write of a step wins: a resumed run redoes steps)."""
    by_step: dict[int, list[dict]] = {}
    previous = None
    for line in (out / "completions_train.jsonl").read_text().splitlines():
        row = json.loads(line)
        step = int(row["step"])
        if step != previous:
            by_step[step] = []  # a new block for this step replaces an earlier one
            previous = step
        by_step[step].append(row)
    return by_step


def check_run(out: Path, args: argparse.Namespace, steps: list[int] | None = None) -> dict[str, float]:
    """The per-step invariants; returns sums over the run (``steps``: the logged steps expected,
    by default 0 .. args.steps - 1)."""
    rows = metric_rows(out)
    completions = step_completions(out)
    rollouts = args.batch * args.group
    expected = list(range(args.steps)) if steps is None else steps
    if sorted(rows) != expected:
        raise SystemExit(f"{out}: logged steps {sorted(rows)[:5]}... are not {expected[:5]}...")
    sums = {"verdicts": 0.0, "judged": 0.0, "judge_errors": 0.0, "parse_failures": 0.0, "dropped_groups": 0.0}
    for step, row in rows.items():
        verdicts = float(row["train/judge_verdicts"])
        judged = sum(float(row[f"train/{t}"]) for t in TIERS_JUDGED)
        errors = float(row["train/judge_llm_error"])
        parse = float(row["train/judge_parse_failure"])
        dropped = float(row["train/dropped_groups"])
        problems = []
        if verdicts != rollouts or judged + errors + parse != verdicts:
            problems.append(
                f"judged {judged} + errors {errors} + parse failures {parse} vs {verdicts} / {rollouts}"
            )
        if float(row["train/judge_errors"]) != errors:
            problems.append(f"train/judge_errors {row['train/judge_errors']} != llm errors {errors}")
        groups: dict[str, list[dict]] = {}
        for c in completions.get(step, []):
            groups.setdefault(c["sample_id"], []).append(c)
        failed = sum(any(c["category"] == "judge error" for c in g) for g in groups.values())
        trained = float(row.get("train/trained_groups") or 0.0)
        if len(groups) != args.batch or failed != dropped or trained != args.batch - dropped:
            problems.append(
                f"groups {len(groups)}, with a judge error {failed}, dropped {dropped}, trained {trained}"
            )
        if problems:
            raise SystemExit(f"{out} step {step}: " + "; ".join(problems))
        for key, value in (("verdicts", verdicts), ("judged", judged), ("judge_errors", errors)):
            sums[key] += value
        sums["parse_failures"] += parse
        sums["dropped_groups"] += dropped
    sums["per_step_errors"] = [float(rows[s]["train/judge_llm_error"]) for s in sorted(rows)]
    return sums


def run_killed_and_resumed(args: argparse.Namespace, url: str, out: Path) -> dict[str, float]:
    log_path = out / "train.log"
    overrides = train_overrides(args, url, out)
    first = start_training(overrides, log_path)
    mark = out / "checkpoints" / f"step-{args.kill_after:06d}.ckpt"
    while not mark.exists():
        if first.poll() is not None:
            raise SystemExit(f"run B ended (exit {first.returncode}) before step {args.kill_after}")
        time.sleep(0.2)
    time.sleep(args.kill_delay)  # into the next steps: the kill lands mid-step, not on the checkpoint
    if first.poll() is not None:
        raise SystemExit("run B finished before it could be killed: raise --steps or lower --kill-after")
    os.kill(first.pid, signal.SIGKILL)
    first.wait()
    killed_at = time.monotonic()
    resumed = start_training([*overrides, f"ckpt_path={out / 'checkpoints' / 'last.ckpt'}"], log_path)
    finish(resumed, "the resumed run B", log_path)
    return {"resume_seconds": time.monotonic() - killed_at}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--kill-after", type=int, default=100, help="kill once this step's checkpoint exists")
    parser.add_argument("--kill-delay", type=float, default=3.0, help="seconds after that checkpoint")
    parser.add_argument("--checkpoint-every", type=int, default=None, help="default: --kill-after")
    parser.add_argument("--permanent-share", type=float, default=0.04)
    parser.add_argument("--transient-share", type=float, default=0.10)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--group", type=int, default=4)
    parser.add_argument("--timeout", type=float, default=1.0, help="judge timeout_s (per request)")
    parser.add_argument("--retries", type=int, default=2)
    parser.add_argument("--max-failure-rate", type=float, default=0.5)
    parser.add_argument("--out", type=Path, default=Path("outputs/judge_soak"))
    args = parser.parse_args()
    args.checkpoint_every = args.checkpoint_every or args.kill_after
    if args.kill_after % args.checkpoint_every or not 0 < args.kill_after < args.steps:
        raise SystemExit("--kill-after must be a multiple of --checkpoint-every and below --steps")
    oracle = TaxonomyJudge(shapes_taxonomy())

    def judge_pair(truth: str, prediction: str) -> str:
        return oracle.judge([truth], [prediction])[0].value

    plan = FaultPlan(args.seed, args.permanent_share, args.transient_share)
    figures: dict = {"args": {k: str(v) for k, v in vars(args).items()}}
    started = time.monotonic()
    for name in ("a", "b"):
        out = args.out / name
        if out.exists():
            raise SystemExit(f"{out} exists: give a fresh --out")
        out.mkdir(parents=True)
        run_started = time.monotonic()
        with FaultyJudgeServer(judge_pair, plan, hang_s=3 * args.timeout, drip_s=0.3) as server:
            if name == "a":
                process = start_training(train_overrides(args, server.url, out), out / "train.log")
                finish(process, "run A", out / "train.log")
                extra = {}
            else:
                extra = run_killed_and_resumed(args, server.url, out)
            figures[name] = {"server": server.stats(), "seconds": time.monotonic() - run_started, **extra}
        figures[name]["checks"] = check_run(out, args)
        figures[name]["totals"] = json.loads((out / "results.json").read_text())["totals"]
    a, b = figures["a"], figures["b"]
    if a["totals"] != b["totals"] or a["checks"]["per_step_errors"] != b["checks"]["per_step_errors"]:
        raise SystemExit(f"killed-and-resumed totals {b['totals']} differ from uninterrupted {a['totals']}")
    figures["wall_seconds"] = time.monotonic() - started
    for name in ("a", "b"):
        stats = figures[name]["server"]
        figures[name]["failed_request_share"] = stats["failed"] / max(1, stats["requests"])
    (args.out / "soak.json").write_text(json.dumps(figures, indent=1))
    summary = {
        name: {
            "requests": figures[name]["server"]["requests"],
            "failed_share": round(figures[name]["failed_request_share"], 3),
            "faults": {k: v for k, v in figures[name]["server"].items() if k not in ("requests", "failed")},
            "verdicts": figures[name]["checks"]["verdicts"],
            "judge_errors": figures[name]["checks"]["judge_errors"],
            "dropped_groups": figures[name]["checks"]["dropped_groups"],
            "seconds": round(figures[name]["seconds"], 1),
        }
        for name in ("a", "b")
    }
    print(json.dumps(summary, indent=1))
    print(
        f"soak passed: {args.steps} steps x 2 runs, totals {a['totals']}, wall {figures['wall_seconds']:.0f} s"
    )


if __name__ == "__main__":
    main()
