"""``python -m speciarl.reproduce``: the paper's results table (SPEC.md section 6) at laptop scale.

Trains and evaluates every arm on the shapes benchmark (``data=shapes_benchmark``,
``model=tiny_benchmark``) for each seed, then writes, in ``--out``:
``runs/<arm>/seed<k>.json`` (one per job), ``table.md`` (mean and spread over seeds: in domain, out
of domain, per kind; share of zero-variance groups), ``summary.json`` and ``tradeoff.png``.

Arms: the base (greedy and best-of-N), the "be specific" prompt, SFT on the specific training
labels (the warm-start SFT code path, continued on the in-domain families), and the RL experiments
(``conf/experiment/<arm>.yaml``). Grids: ``--grid rollouts`` (G = 4/8/16) and ``--grid noisy``.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import statistics
import sys
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from multiprocessing import get_context
from pathlib import Path
from typing import Any

log = logging.getLogger("speciarl.reproduce")
CONF_DIR = str(Path(__file__).resolve().parent / "conf")
BENCHMARK_OVERRIDES = ("data=shapes_benchmark", "model=tiny_benchmark", "logger=none")
SCOPES = ("in_domain", "out_of_domain")
SLICES = tuple(f"{d}/{k}" for d in SCOPES for k in ("easy", "hard", "unknowable"))
# What the answers were (shares of greedy answers): the "why" behind a C or S figure.
ANSWER_SHARES = ("frac_specific", "frac_less_specific", "frac_generic", "frac_wrong")


@dataclass(frozen=True)
class Arm:
    """One row of the table: ``mode`` eval (no training), sft, or rl (Hydra ``overrides``)."""

    name: str
    mode: str
    overrides: tuple[str, ...] = ()
    best_of: int = 1
    label: str = ""


MAIN_ARMS: tuple[Arm, ...] = (
    Arm("base", "eval", label="base, greedy"),
    Arm("base_best_of_8", "eval", best_of=8, label="base, best-of-8"),
    Arm("be_specific", "eval", ("model.prompt=be_specific",), label='"be specific" prompt'),
    Arm("sft", "sft", label="SFT on specific labels"),
    Arm("grpo_reward3", "rl", ("experiment=grpo_reward3",), label="GRPO reward3 (RFT)"),
    Arm("grpo_scala1", "rl", ("experiment=grpo_scala1",), label="GRPO scala1"),
    Arm("grpo_speciarl", "rl", ("experiment=grpo_speciarl",), label="GRPO SpeciaRL"),
    Arm("dr_grpo_reward3", "rl", ("experiment=dr_grpo_reward3",), label="Dr.GRPO reward3"),
    Arm("dr_grpo_speciarl", "rl", ("experiment=dr_grpo_speciarl",), label="Dr.GRPO SpeciaRL"),
    Arm("dapo_reward3", "rl", ("experiment=dapo_reward3",), label="DAPO reward3"),
    Arm("dapo_speciarl", "rl", ("experiment=dapo_speciarl",), label="DAPO SpeciaRL"),
)
GRIDS: dict[str, tuple[Arm, ...]] = {
    "main": MAIN_ARMS,
    # G x B = 128 rollouts a step in every cell, as in the toy experiments.
    "rollouts": tuple(
        Arm(
            f"grpo_{r}_G{g}",
            "rl",
            (f"experiment=grpo_{r}", f"algorithm.group_size={g}", f"data.batch_size={128 // g}"),
            label=f"GRPO {r}, G={g}",
        )
        for r in ("speciarl", "reward3")
        for g in (4, 8, 16)
    ),
    "noisy": tuple(
        Arm(f"grpo_noisy{p}", "rl", (f"experiment=grpo_noisy{p}",), label=f"GRPO SpeciaRL, {int(p)}% noisy")
        for p in ("05", "10", "25")
    ),
}


@dataclass
class Job:
    arm: Arm
    seed: int
    steps: int
    sft_steps: int
    out: Path
    extra: tuple[str, ...] = field(default_factory=tuple)


def compose_config(arm: Arm, seed: int, steps: int, out: Path, extra: Sequence[str] = ()) -> Any:
    """The composed train config of one job (``python -m speciarl.train`` with these overrides)."""
    from hydra import compose, initialize_config_dir

    overrides = [
        *BENCHMARK_OVERRIDES,
        *arm.overrides,
        f"seed={seed}",
        f"trainer.max_steps={steps}",
        "+trainer.limit_val_batches=0",
        "trainer.enable_progress_bar=false",
        f"paths.output_dir={out}",
        *extra,
    ]
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        return compose("train", overrides=overrides)


def job_key(job: Job) -> str:
    """What a job's result depends on (arm, overrides, steps, the base model's recipe), hashed.

    A result in ``--out`` is read back only under the same key, so changing the benchmark's warm
    start (or any override) reruns the jobs instead of mixing old figures into a new table.
    """
    import hashlib

    from omegaconf import OmegaConf

    cfg = compose_config(job.arm, job.seed, job.steps, job.out, job.extra)
    payload = {
        "arm": [job.arm.mode, *job.arm.overrides, job.arm.best_of],
        "extra": list(job.extra),
        "steps": {"rl": job.steps, "sft": job.sft_steps}.get(job.arm.mode, 0),
        "model": OmegaConf.to_container(cfg.model, resolve=True),
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[:16]


def run_job(job: Job) -> dict[str, Any]:
    """Train (or not) and evaluate one arm for one seed; writes and returns its figures."""
    import torch
    from hydra.utils import instantiate
    from lightning.pytorch import Callback, seed_everything

    from speciarl.evaluation.loop import evaluate_policy, summarize_records
    from speciarl.train import build_module

    torch.set_num_threads(1)
    started = time.perf_counter()
    out = job.out / "runs" / job.arm.name
    out.mkdir(parents=True, exist_ok=True)
    cfg = compose_config(job.arm, job.seed, job.steps, out / f"seed{job.seed}", job.extra)
    seed_everything(job.seed, workers=True)
    module, datamodule = build_module(cfg)
    zero_variance: list[float] = []

    class _ZeroVariance(Callback):
        def on_train_batch_end(self, trainer: Any, *args: Any) -> None:
            value = trainer.callback_metrics.get("train/zero_variance_groups")
            if value is not None:
                zero_variance.append(float(value))

    steps = 0
    if job.arm.mode == "rl":
        trainer = instantiate(
            cfg.trainer,
            logger=False,
            callbacks=[_ZeroVariance()],
            default_root_dir=str(out / f"seed{job.seed}"),
        )
        trainer.fit(module, datamodule=datamodule)
        steps = int(trainer.global_step)
    elif job.arm.mode == "sft":
        steps = job.sft_steps
        supervised_baseline(module.policy, job.seed, job.sft_steps)
    elif job.arm.mode != "eval":
        raise ValueError(f"unknown arm mode {job.arm.mode!r}: expected eval, sft or rl")
    module.policy.model.eval()
    samples = datamodule.val_samples()
    with torch.no_grad():
        records = evaluate_policy(
            module.policy,
            samples,
            module.judge,
            module.rollout,
            best_of=job.arm.best_of,
            temperature=float(cfg.eval.temperature),
            top_p=float(cfg.eval.top_p),
            batch_size=128,
        )
    figures = summarize_records(records, by_tag="domain")
    figures.update({k: v for k, v in summarize_records(records, by_tag="slice").items() if k != "all"})
    result = {
        "arm": job.arm.name,
        "key": job_key(job),
        "top_wrong_answers": top_wrong_answers(records),
        "label": job.arm.label or job.arm.name,
        "seed": job.seed,
        "steps": steps,
        "figures": figures,
        "zero_variance_groups": statistics.fmean(zero_variance) if zero_variance else None,
        "zero_variance_first_25": statistics.fmean(zero_variance[:25]) if zero_variance else None,
        "totals": dict(module.totals) if job.arm.mode == "rl" else {},
        "wall_seconds": time.perf_counter() - started,
    }
    (out / f"seed{job.seed}.json").write_text(json.dumps(result, indent=1))
    return result


def top_wrong_answers(records: Sequence[Any], per_slice: int = 5) -> dict[str, list[list[Any]]]:
    """Per slice, the most frequent wrong (label, answer) pairs with their counts: what went wrong."""
    from collections import Counter

    from speciarl.core.categories import Category

    counts: dict[str, Counter] = {}
    for r in records:
        if r.judgement == Category.WRONG:
            counts.setdefault(r.tags.get("slice", "all"), Counter())[(r.label, r.prediction)] += 1
    return {
        s: [[label, answer, n] for (label, answer), n in c.most_common(per_slice)]
        for s, c in sorted(counts.items())
    }


def supervised_baseline(policy: Any, seed: int, steps: int) -> list[float]:
    """The paper's SFT baseline: continue the warm start's SFT on leaf labels of in-domain images."""
    from speciarl.data.shapes_benchmark import IN_DOMAIN_FAMILIES, family_types
    from speciarl.policy.warm_start import Phase, WarmStartSpec, supervised_warm_start

    spec = WarmStartSpec(
        phases=(Phase(steps=steps, lr=1e-3, leaf=1.0, type=0.0, family=0.0),),
        bank_size=2048,
        seed=101_000 + seed,
        types=tuple(family_types(IN_DOMAIN_FAMILIES)),
    )
    return supervised_warm_start(policy, spec)


def _mean_sd(values: Sequence[float]) -> tuple[float, float]:
    values = [v for v in values if v is not None and not math.isnan(v)]
    if not values:
        return math.nan, math.nan
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else 0.0


def aggregate(results: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per arm, mean and sd over seeds of every figure (C, S, HM per scope, zero-variance share)."""
    rows: list[dict[str, Any]] = []
    for name in dict.fromkeys(r["arm"] for r in results):
        runs = [r for r in results if r["arm"] == name]
        row: dict[str, Any] = {"arm": name, "label": runs[0]["label"], "seeds": [r["seed"] for r in runs]}
        row["steps"] = runs[0]["steps"]
        for scope in ("all", *SCOPES, *SLICES):
            for metric in ("correctness", "specificity", "hm", *ANSWER_SHARES):
                vals = [r["figures"][scope].get(metric) for r in runs if scope in r["figures"]]
                row[f"{scope}:{metric}"] = _mean_sd(vals)
        row["zero_variance_groups"] = _mean_sd([r["zero_variance_groups"] for r in runs])
        row["zero_variance_first_25"] = _mean_sd([r["zero_variance_first_25"] for r in runs])
        row["wall_seconds"] = statistics.fmean(r["wall_seconds"] for r in runs)
        rows.append(row)
    return rows


def _cell(pair: tuple[float, float], with_sd: bool) -> str:
    mean, sd = pair
    if math.isnan(mean):
        return "-"
    return f"{mean:.3f} ± {sd:.3f}" if with_sd else f"{mean:.2f}"


def markdown_table(rows: Sequence[dict[str, Any]]) -> str:
    """The main table (in / out of domain, C S HM) and the per-kind table (C / S per slice)."""
    lines = [
        "| method | steps | seeds | in-domain C | in-domain S | in-domain HM | out-of-domain C | "
        "out-of-domain S | out-of-domain HM | zero-var groups (all / first 25 steps) |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        cells = [
            _cell(r[f"{scope}:{m}"], True) for scope in SCOPES for m in ("correctness", "specificity", "hm")
        ]
        zv = f"{_cell(r['zero_variance_groups'], False)} / {_cell(r['zero_variance_first_25'], False)}"
        seeds = ",".join(str(s) for s in r["seeds"])
        lines.append(f"| {r['label']} | {r['steps']} | {seeds} | " + " | ".join(cells) + f" | {zv} |")
    lines += _slash_table(rows, "Per kind, C / S (mean over seeds):", SLICES, ("correctness", "specificity"))
    lines += _slash_table(
        rows,
        "What the answers were, per domain (share of answers: leaf / type / family / wrong, mean over seeds):",
        SCOPES,
        ANSWER_SHARES,
    )
    return "\n".join(lines) + "\n"


def _slash_table(
    rows: Sequence[dict[str, Any]], title: str, columns: Sequence[str], metrics: Sequence[str]
) -> list[str]:
    """A titled table with one column per scope, each cell the metrics' means joined by " / "."""
    lines = ["", title, "", "| method | " + " | ".join(columns) + " |", "|---|" + "---|" * len(columns)]
    for r in rows:
        cells = [" / ".join(_cell(r[f"{c}:{m}"], False) for m in metrics) for c in columns]
        lines.append(f"| {r['label']} | " + " | ".join(cells) + " |")
    return lines


def plot(rows: Sequence[dict[str, Any]], path: Path) -> Path:
    """The trade-off plot of issue 5's report (C against S, one marker per method, colour per domain)."""
    from speciarl.evaluation.report import tradeoff_plot

    results = [
        {
            "method": r["label"],
            "datasets": {
                scope: {
                    "correctness": r[f"{scope}:correctness"][0],
                    "specificity": r[f"{scope}:specificity"][0],
                }
                for scope in SCOPES
            },
        }
        for r in rows
    ]
    return tradeoff_plot(results, path)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m speciarl.reproduce", description=__doc__.split("\n")[0])
    parser.add_argument("--out", default="outputs/reproduce", help="output folder")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--steps", type=int, default=200, help="RL steps per run")
    parser.add_argument("--sft-steps", type=int, default=300, help="steps of the SFT baseline")
    parser.add_argument("--grid", choices=sorted(GRIDS), default="main")
    parser.add_argument("--arms", nargs="+", help="only these arms of the grid")
    parser.add_argument("--jobs", type=int, default=2, help="runs at once (1 thread each)")
    parser.add_argument("--override", nargs="*", default=[], help="extra Hydra overrides for every run")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    arms = GRIDS[args.grid]
    if args.arms:
        unknown = set(args.arms) - {a.name for a in arms}
        if unknown:
            parser.error(f"unknown arms {sorted(unknown)} for grid {args.grid}: {[a.name for a in arms]}")
        arms = tuple(a for a in arms if a.name in args.arms)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    _ensure_base(out, args.override)
    jobs = [
        Job(arm, seed, args.steps, args.sft_steps, out, tuple(args.override))
        for seed in args.seeds
        for arm in arms
    ]
    # Jobs already in --out (same steps) are read back, so an interrupted table resumes.
    finished = [_finished(j) for j in jobs]
    done = [r for r in finished if r is not None]
    todo = [j for j, r in zip(jobs, finished, strict=True) if r is None]
    log.info("%d jobs to run, %d read back from %s", len(todo), len(done), out / "runs")
    # Longest jobs first, so the two workers finish together.
    todo.sort(key=lambda j: j.arm.mode != "rl")
    if args.jobs > 1 and len(todo) > 1:
        with ProcessPoolExecutor(max_workers=args.jobs, mp_context=get_context("spawn")) as pool:
            results = done + list(pool.map(run_job, todo))
    else:
        results = done + [run_job(j) for j in todo]
    order = {a.name: i for i, a in enumerate(arms)}
    results.sort(key=lambda r: (order[r["arm"]], r["seed"]))
    rows = aggregate(results)
    table = markdown_table(rows)
    wall = time.perf_counter() - started
    header = (
        f"python -m speciarl.reproduce {' '.join(argv if argv is not None else sys.argv[1:])}\n"
        f"seeds {args.seeds}; {args.steps} RL steps; {args.sft_steps} SFT steps; wall {wall / 60:.1f} min\n"
    )
    (out / "table.md").write_text(header + "\n" + table)
    (out / "summary.json").write_text(json.dumps({"rows": rows, "wall_seconds": wall}, indent=1))
    plot(rows, out / "tradeoff.png")
    print(header)
    print(table)
    return 0


def _finished(job: Job) -> dict[str, Any] | None:
    """The job's result if ``--out`` already holds it for the same arm, steps and base model."""
    path = job.out / "runs" / job.arm.name / f"seed{job.seed}.json"
    if not path.is_file():
        return None
    result = json.loads(path.read_text())
    return result if result.get("key") == job_key(job) else None


def _ensure_base(out: Path, extra: Sequence[str]) -> None:
    """Build the benchmark's warm start once, before the workers (which would each build it)."""
    from hydra.utils import instantiate

    cfg = compose_config(MAIN_ARMS[0], 0, 1, out, extra)
    instantiate(cfg.model)


if __name__ == "__main__":
    sys.exit(main())
