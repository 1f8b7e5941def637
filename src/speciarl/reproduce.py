"""``python -m speciarl.reproduce``: the paper's results table (arXiv 2603.03197, Sec. 4) at laptop scale.

Trains and evaluates every arm on the shapes benchmark for each seed, then writes, in ``--out``
(default ``results/reproduction/<grid>``): ``runs/<arm>/seed<k>.json`` (one per job), ``table.md``
(mean and spread over seeds: in domain, out of domain, per kind; share of zero-variance groups),
``summary.json`` and ``tradeoff.png``.

The grids are ``conf/reproduce/<grid>.yaml`` (main, rollouts, noisy). Every job is one
:func:`speciarl.train.train` run on the composed config, with :class:`ReproductionProbe` (a
Lightning callback) to fine-tune the SFT arm and measure the held-out split by domain and slice;
evaluation-only arms run no step (``trainer.max_steps=0``).
"""

from __future__ import annotations

from speciarl.reproduce_cli import GRIDS_DIR, answer_help, parser

answer_help(__name__)  # before Lightning loads: --help in about a second

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
from contextlib import nullcontext
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path
from typing import Any

from lightning.pytorch import Callback

from speciarl.evaluation.tables import markdown_table, titled_table
from speciarl.runs.console import Progress, quiet_console

log = logging.getLogger("speciarl.reproduce")
CONF_DIR = GRIDS_DIR.parent
JOB_PRESET = "experiment=reproduction"  # the benchmark, no logger, no validation, one thread
SCOPES = ("in_domain", "out_of_domain")
SLICES = tuple(f"{d}/{k}" for d in SCOPES for k in ("easy", "hard", "confusable", "unknowable"))
# What the answers were (shares of greedy answers): the "why" behind a C or S figure.
ANSWER_SHARES = ("frac_specific", "frac_less_specific", "frac_generic", "frac_wrong")
MODES = ("eval", "sft", "rl")


@dataclass(frozen=True)
class Arm:
    """One row of the table: ``mode`` eval (no training), sft, or rl, with its Hydra ``overrides``."""

    name: str
    mode: str = "rl"
    overrides: tuple[str, ...] = ()
    best_of: int = 1
    label: str = ""

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"arm {self.name}: unknown mode {self.mode!r}, expected one of {MODES}")


def load_grid(name: str) -> tuple[Arm, ...]:
    """The arms of ``conf/reproduce/<name>.yaml``, in table order."""
    from omegaconf import OmegaConf

    entries = OmegaConf.to_container(OmegaConf.load(GRIDS_DIR / f"{name}.yaml"), resolve=True)["arms"]
    return tuple(Arm(**{**e, "overrides": tuple(e.get("overrides", ()))}) for e in entries)


@dataclass
class Job:
    arm: Arm
    seed: int
    steps: int
    sft_steps: int
    out: Path
    extra: tuple[str, ...] = ()


def compose_config(arm: Arm, seed: int, steps: int, out: Path, extra: Sequence[str] = ()) -> Any:
    """The composed train config of one job (``python -m speciarl.train`` with these overrides)."""
    from hydra import compose, initialize_config_dir

    overrides = [
        JOB_PRESET,
        *arm.overrides,
        f"seed={seed}",
        f"trainer.max_steps={steps if arm.mode == 'rl' else 0}",
        f"paths.output_dir={out}",
        *extra,
    ]
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return compose("train", overrides=overrides)


def job_key(job: Job) -> str:
    """What a job's result depends on (arm, overrides, steps, the base model's recipe), hashed:
    a result in ``--out`` is read back only under the same key, never mixed into another table.
    """
    import hashlib

    from omegaconf import OmegaConf

    cfg = compose_config(job.arm, job.seed, job.steps, job.out, job.extra)
    payload = {
        "arm": [job.arm.mode, *job.arm.overrides, job.arm.best_of],
        "extra": list(job.extra),
        "steps": {"rl": job.steps, "sft": job.sft_steps}.get(job.arm.mode, 0),
        "model": OmegaConf.to_container(cfg.model, resolve=True),
        "data": OmegaConf.to_container(cfg.data, resolve=True),
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[:16]


class ReproductionProbe(Callback):
    """What a reproduction job adds to its training run: the SFT arm's fine-tuning at fit start,
    the share of all-equal reward groups per step, the held-out answers (greedy or best-of-N) at fit end.
    """

    def __init__(self, job: Job, temperature: float, top_p: float) -> None:
        self.job = job
        self.temperature = temperature
        self.top_p = top_p
        self.zero_variance: list[float] = []
        self.records: list[Any] = []

    def on_fit_start(self, trainer: Any, module: Any) -> None:
        if self.job.arm.mode == "sft":
            from speciarl.built_models.warm_start import supervised_baseline

            supervised_baseline(
                module.policy,
                self.job.seed,
                self.job.sft_steps,
                colourless_types(trainer.datamodule.train_set),
            )

    def on_train_batch_end(self, trainer: Any, *args: Any) -> None:
        value = trainer.callback_metrics.get("train/zero_variance_groups")
        if value is not None:
            self.zero_variance.append(float(value))

    def on_fit_end(self, trainer: Any, module: Any) -> None:
        import torch

        from speciarl.evaluation.loop import evaluate_policy

        module.policy.model.eval()
        with torch.no_grad():
            self.records = evaluate_policy(
                module.policy,
                trainer.datamodule.val_samples(),
                module.judge,
                module.rollout,
                best_of=self.job.arm.best_of,
                temperature=self.temperature,
                top_p=self.top_p,
                batch_size=128,
            )

    def figures(self) -> dict[str, Any]:
        """C, S, HM and the answer shares overall, per domain and per slice."""
        from speciarl.evaluation.loop import summarize_records

        figures = summarize_records(self.records, by_tag="domain")
        by_slice = summarize_records(self.records, by_tag="slice")
        figures.update({k: v for k, v in by_slice.items() if k != "all"})
        return figures


def colourless_types(train_set: Any) -> tuple[str, ...]:
    """The types whose training images carry no cue to their leaf's colour (random-painted confusable types)."""
    if getattr(train_set, "confusable_colour", "shown") != "random":
        return ()
    return tuple(sorted(train_set.confusable_types))


def run_job(job: Job) -> dict[str, Any]:
    """Train (or not) and evaluate one arm for one seed through ``speciarl.train.train``."""
    from speciarl.train import train

    started = time.perf_counter()
    out = job.out / "runs" / job.arm.name
    out.mkdir(parents=True, exist_ok=True)
    cfg = compose_config(job.arm, job.seed, job.steps, out / f"seed{job.seed}", job.extra)
    probe = ReproductionProbe(job, float(cfg.eval.temperature), float(cfg.eval.top_p))
    run = train(cfg, callbacks=[probe])
    zero_variance = probe.zero_variance
    result = {
        "arm": job.arm.name,
        "key": job_key(job),
        "top_wrong_answers": top_wrong_answers(probe.records),
        "label": job.arm.label or job.arm.name,
        "seed": job.seed,
        "steps": {"rl": run["steps"], "sft": job.sft_steps}.get(job.arm.mode, 0),
        "figures": probe.figures(),
        "zero_variance_groups": statistics.fmean(zero_variance) if zero_variance else None,
        "zero_variance_first_25": statistics.fmean(zero_variance[:25]) if zero_variance else None,
        "totals": run["totals"] if job.arm.mode == "rl" else {},
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


def results_table(rows: Sequence[dict[str, Any]]) -> str:
    """The main table (in / out of domain, C S HM) and the per-kind table (C / S per slice)."""
    header = ["method", "steps", "seeds"]
    header += [f"{s.replace('_', '-')} {m}" for s in SCOPES for m in ("C", "S", "HM")]
    header += ["zero-var groups (all / first 25 steps)"]
    lines = markdown_table(
        header,
        (
            [r["label"], r["steps"], ",".join(str(s) for s in r["seeds"])]
            + [
                _cell(r[f"{scope}:{m}"], True)
                for scope in SCOPES
                for m in ("correctness", "specificity", "hm")
            ]
            + [f"{_cell(r['zero_variance_groups'], False)} / {_cell(r['zero_variance_first_25'], False)}"]
            for r in rows
        ),
    )
    kinds = [c for c in SLICES if any(not math.isnan(r[f"{c}:correctness"][0]) for r in rows)]
    lines += _slash_table(rows, "Per kind, C / S (mean over seeds):", kinds, ("correctness", "specificity"))
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
    cells = (
        [r["label"], *(" / ".join(_cell(r[f"{c}:{m}"], False) for m in metrics) for c in columns)]
        for r in rows
    )
    return titled_table(title, ["method", *columns], cells)


def plot(rows: Sequence[dict[str, Any]], path: Path) -> Path:
    """The trade-off plot of the evaluation report (C against S, one marker per method, colour per domain)."""
    from speciarl.evaluation.report import tradeoff_plot

    def figures(row: dict[str, Any], scope: str) -> dict[str, float]:
        return {m: row[f"{scope}:{m}"][0] for m in ("correctness", "specificity")}

    results = [{"method": r["label"], "datasets": {s: figures(r, s) for s in SCOPES}} for r in rows]
    return tradeoff_plot(results, path)


def main(argv: Sequence[str] | None = None) -> int:
    args = (cli := parser()).parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    quiet_console()
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    arms = _select_arms(cli, args)
    out = Path(args.out or f"results/reproduction/{args.grid}")
    out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    _ensure_base(out, args.override)
    jobs = [
        Job(arm, seed, args.steps, args.sft_steps, out, tuple(args.override))
        for seed in args.seeds
        for arm in arms
    ]
    results = _run_jobs(jobs, args.jobs, out)
    order = {a.name: i for i, a in enumerate(arms)}
    results.sort(key=lambda r: (order[r["arm"]], r["seed"]))
    rows = aggregate(results)
    table = results_table(rows)
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


def _select_arms(parser: argparse.ArgumentParser, args: argparse.Namespace) -> tuple[Arm, ...]:
    arms = load_grid(args.grid)
    if args.arms:
        unknown = set(args.arms) - {a.name for a in arms}
        if unknown:
            parser.error(f"unknown arms {sorted(unknown)} for grid {args.grid}: {[a.name for a in arms]}")
        arms = tuple(a for a in arms if a.name in args.arms)
    return arms


def _run_jobs(jobs: Sequence[Job], workers: int, out: Path) -> list[dict[str, Any]]:
    """Every job's result: read back from ``out`` when it holds it (same key: a table resumes), else run."""
    finished = [_finished(j) for j in jobs]
    done, todo = [r for r in finished if r is not None], [j for j, r in zip(jobs, finished) if r is None]
    log.info("%d jobs to run, %d read back from %s", len(todo), len(done), out / "runs")
    todo.sort(key=lambda j: j.arm.mode != "rl")  # longest jobs first, so the workers finish together
    progress, ran = Progress("reproduce", len(todo), "job", every=0), 0  # a line (or bar tick) per job
    pool = ProcessPoolExecutor(workers, mp_context=get_context("spawn")) if workers > 1 < len(todo) else None
    with pool or nullcontext():
        for ran, result in enumerate(pool.map(run_job, todo) if pool else map(run_job, todo), 1):
            done.append(result)
            progress.update(ran)
    return done


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

    cfg = compose_config(Arm("base", "eval"), 0, 1, out, extra)
    instantiate(cfg.model)


if __name__ == "__main__":
    sys.exit(main())
