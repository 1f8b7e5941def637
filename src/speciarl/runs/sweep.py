"""Hydra multiruns as ablation grids: grid values on every job, a summary table of the grid.

``python -m speciarl.train -m reward=speciarl,reward3 optimizer=adamw,sgd seed=0,1`` (or a preset,
``hparams=algorithm_reward_grid``) runs one job after another. Each job:

* carries its grid values in its config (``sweep.grid``, logged as W&B config) and as W&B tags
  (``reward=speciarl``, ``seed=0``); its W&B run is named after them unless
  ``logger.wandb.name`` is set, and grouped by the sweep folder;
* writes ``results.json`` in its own folder ``<sweep dir>/<job number>/``.

``GridSummaryCallback`` (registered in ``conf/train.yaml`` under ``hydra.callbacks``) rewrites
``summary.md`` and ``summary.csv`` in the sweep folder after every job, so a grid that dies half
way still has its table, and logs the final table when the multirun ends: one row per job with
its grid values and the final held-out correctness, specificity and HM (failed jobs are listed
as such), plus means and standard deviations over seeds when the grid has seeds.
"""

from __future__ import annotations

import csv
import json
import logging
import math
import statistics
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf, open_dict

from speciarl.evaluation.tables import markdown_table, titled_table

log = logging.getLogger(__name__)

RESULTS_FILE = "results.json"
ERROR_FILE = "job_error.txt"
METRICS = ("correctness", "specificity", "hm")


def split_override(override: str) -> tuple[str, str]:
    """``"+a.b=c"`` -> ``("a.b", "c")`` (the add / delete prefixes are not part of the key)."""
    if "=" not in override:
        return override.lstrip("+~"), ""
    key, value = override.split("=", 1)
    return key.lstrip("+~"), value


def _command_line_sweep_keys(argv: Sequence[str]) -> set[str]:
    """Keys swept on the command line (``a=1,2``, ``range(...)``, ``choice(...)``...)."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    candidates = [a for a in argv if "=" in a and not a.startswith("-")]
    try:
        parsed = OverridesParser.create().parse_overrides(candidates)
    except Exception:  # an argument Hydra's parser does not accept: no keys from the command line
        return set()
    return {o.key_or_group for o in parsed if o.is_sweep_override()}


def swept_keys(sweeper_params: Any, argv: Sequence[str]) -> set[str]:
    """The grid's axes: the keys of ``hydra.sweeper.params`` and the sweeps of the command line."""
    keys = {str(k) for k in (sweeper_params or {})}
    return keys | _command_line_sweep_keys(argv)


def annotate_sweep_job(cfg: DictConfig) -> DictConfig:
    """In a multirun job: put the grid values in ``cfg.sweep`` and the W&B tags, name and group.

    Outside a multirun (or outside Hydra) the config is returned unchanged.
    """
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    if not HydraConfig.initialized():
        return cfg
    hydra_cfg = HydraConfig.get()
    if hydra_cfg.mode != RunMode.MULTIRUN:
        return cfg
    overrides = dict(split_override(o) for o in hydra_cfg.overrides.task)
    axes = swept_keys(hydra_cfg.sweeper.get("params"), sys.argv[1:])
    # Unknown axes (another launcher, an unusual command line): every override is a grid value.
    grid = {k: v for k, v in overrides.items() if k in axes} or overrides
    with open_dict(cfg):
        cfg.sweep = {
            "dir": str(hydra_cfg.sweep.dir),
            "job": int(hydra_cfg.job.num),
            "grid": grid,
            "overrides": overrides,
        }
        cfg.tags = [*(cfg.get("tags") or []), *(f"{k}={v}" for k, v in grid.items())]
        wandb_cfg = (cfg.get("logger") or {}).get("wandb")
        if wandb_cfg is not None:
            if wandb_cfg.get("name") is None:
                wandb_cfg.name = ",".join(f"{k}={v}" for k, v in grid.items())
            if wandb_cfg.get("group") is None:
                wandb_cfg.group = Path(str(hydra_cfg.sweep.dir)).as_posix().replace("/", "_")
    return cfg


@dataclass
class GridRow:
    """One job of a grid: its number, overrides, status and final figures."""

    job: str
    overrides: dict[str, str]
    status: str
    steps: int | None = None
    after: dict[str, float] = field(default_factory=dict)
    before: dict[str, float] = field(default_factory=dict)
    fit_seconds: float | None = None
    error: str = ""


def _job_number(path: Path) -> tuple[int, str]:
    return (int(path.name), "") if path.name.isdigit() else (sys.maxsize, path.name)


def read_grid(sweep_dir: str | Path) -> list[GridRow]:
    """Every job folder of a sweep (``.hydra/overrides.yaml`` inside), in job order."""
    sweep_dir = Path(sweep_dir)
    rows = []
    job_dirs = sorted(
        (d for d in sweep_dir.iterdir() if (d / ".hydra" / "overrides.yaml").is_file()), key=_job_number
    )
    for job_dir in job_dirs:
        overrides = dict(
            split_override(str(o)) for o in OmegaConf.load(job_dir / ".hydra" / "overrides.yaml")
        )
        results_path = job_dir / RESULTS_FILE
        error_path = job_dir / ERROR_FILE
        if results_path.is_file():
            results = json.loads(results_path.read_text())
            rows.append(
                GridRow(
                    job=job_dir.name,
                    overrides=overrides,
                    status="ok",
                    steps=results.get("steps"),
                    after=_figures(results.get("after", {})),
                    before=_figures(results.get("before", {})),
                    fit_seconds=results.get("fit_seconds"),
                )
            )
        else:
            error = error_path.read_text().strip() if error_path.is_file() else ""
            rows.append(GridRow(job_dir.name, overrides, "failed" if error else "incomplete", error=error))
    return rows


def _figures(values: dict[str, Any]) -> dict[str, float]:
    return {m: float(values[f"val/{m}"]) for m in METRICS if f"val/{m}" in values}


def grid_axes(rows: Sequence[GridRow]) -> list[str]:
    """Override keys whose values differ between jobs (all keys for a single job), in first-seen order."""
    keys: list[str] = []
    for row in rows:
        keys += [k for k in row.overrides if k not in keys]
    if len(rows) <= 1:
        return keys
    return [k for k in keys if len({row.overrides.get(k) for row in rows}) > 1]


def _fmt(value: float | None, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    return f"{value:.{digits}f}"


def summary_table(rows: Sequence[GridRow]) -> tuple[list[str], list[list[str]]]:
    """Header and cells of the per-job table (the CSV holds exactly these)."""
    axes = grid_axes(rows)
    header = ["job", *axes, "status", "steps", *METRICS, "hm_before", "fit_seconds"]
    cells = []
    for row in rows:
        cells.append(
            [
                row.job,
                *(row.overrides.get(k, "") for k in axes),
                row.status,
                "" if row.steps is None else str(row.steps),
                *(_fmt(row.after.get(m)) for m in METRICS),
                _fmt(row.before.get("hm")),
                _fmt(row.fit_seconds, 1),
            ]
        )
    return header, cells


def seed_means(rows: Sequence[GridRow], seed_key: str = "seed") -> tuple[list[str], list[list[str]]]:
    """Mean +- std (n) of the final figures over seeds, per setting of the other axes."""
    axes = [k for k in grid_axes(rows) if k != seed_key]
    groups: dict[tuple[str, ...], list[GridRow]] = {}
    for row in rows:
        if row.status == "ok":
            groups.setdefault(tuple(row.overrides.get(k, "") for k in axes), []).append(row)
    header = [*axes, "n", *METRICS]
    cells = []
    for key, members in groups.items():
        figures = []
        for m in METRICS:
            values = [r.after[m] for r in members if m in r.after]
            if not values:
                figures.append("")
            elif len(values) == 1:
                figures.append(_fmt(values[0]))
            else:
                figures.append(f"{statistics.mean(values):.3f} ± {statistics.stdev(values):.3f}")
        cells.append([*key, str(len(members)), *figures])
    return header, cells


def write_summary(sweep_dir: str | Path) -> Path | None:
    """Write ``summary.md`` and ``summary.csv`` of the grid in ``sweep_dir``; None if no job ran."""
    sweep_dir = Path(sweep_dir)
    if not sweep_dir.is_dir():
        return None
    rows = read_grid(sweep_dir)
    if not rows:
        return None
    header, cells = summary_table(rows)
    with (sweep_dir / "summary.csv").open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(header)
        writer.writerows(cells)
    parts = [
        f"# Grid summary: {sweep_dir}",
        "",
        f"{len(rows)} jobs, {sum(r.status == 'ok' for r in rows)} finished. Figures: held-out split "
        "after training (greedy); hm_before: before training.",
        "",
        *markdown_table(header, cells),
    ]
    if "seed" in grid_axes(rows):
        parts += titled_table("## Over seeds (mean ± std)", *seed_means(rows))
    failed = [r for r in rows if r.status == "failed"]
    if failed:
        parts += ["", "## Failed jobs", ""] + [f"- job {r.job}: {r.error.splitlines()[-1]}" for r in failed]
    path = sweep_dir / "summary.md"
    path.write_text("\n".join(parts) + "\n")
    return path


class GridSummaryCallback(Callback):
    """Keeps ``summary.md`` / ``summary.csv`` of a multirun up to date; logs the table at the end."""

    def on_job_end(self, config: DictConfig, job_return: Any, **kwargs: Any) -> None:
        if not _is_multirun(config):
            return
        from hydra.core.utils import JobStatus

        job_dir = Path(str(config.hydra.runtime.output_dir))
        if job_return.status == JobStatus.FAILED:
            error = job_return._return_value
            job_dir.mkdir(parents=True, exist_ok=True)
            (job_dir / ERROR_FILE).write_text(f"{type(error).__name__}: {error}\n")
        try:
            write_summary(str(config.hydra.sweep.dir))
        except Exception as err:  # the summary must never take a grid down
            log.warning("could not update the grid summary: %s", err)

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        path = write_summary(str(config.hydra.sweep.dir))
        if path is None:
            log.warning("multirun ended without any job folder in %s", config.hydra.sweep.dir)
            return
        log.info("grid summary written to %s and summary.csv:\n%s", path, path.read_text())


def _is_multirun(config: DictConfig) -> bool:
    from hydra.types import RunMode

    mode = OmegaConf.select(config, "hydra.mode")
    return mode == RunMode.MULTIRUN or str(mode) == "MULTIRUN"
