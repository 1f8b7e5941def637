"""The held-out results of a training run, in the forms a W&B dashboard is built from.

``log_run_results`` adds to the training run's own W&B run (before it finishes):

* ``results/table``: one row per measurement (method, dataset, correctness, specificity, HM), the
  table a panel of any run or a whole sweep is built from; ``results/category_shares``: the share
  of each judge category per method;
* ``results/hm_chart`` and ``results/categories_chart``: W&B bar charts over those tables;
* ``results/tradeoff`` and ``results/categories``: the report's plots as images (also written to
  ``<run>/plots/``), which W&B copies into the run folder's ``files/media``;
* the summary ``results/<method>/<metric>`` for run-table columns and sweep panels.

The methods are the measured rows of ``results.json``: ``base`` (greedy, before training),
``base best-of-N`` and the trained policy, named ``<algorithm>+<reward>``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from speciarl.evaluation.report import CATEGORY_ORDER, category_plot, tradeoff_plot

TABLE_COLUMNS = ["method", "dataset", "correctness", "specificity", "hm"]


def method_names(results: Mapping[str, Any], trained: str) -> dict[str, str]:
    """results.json row -> method: ``before`` is the base model, ``after`` the trained one."""
    names = {}
    for row in results:
        if row == "before":
            names[row] = "base"
        elif row.startswith("before_best_of_"):
            names[row] = f"base best-of-{row.rsplit('_', 1)[-1]}"
        elif row == "after":
            names[row] = trained
    return names


def figures_of(values: Mapping[str, float]) -> dict[str, Any]:
    """C, S, HM and the category shares of one results.json row (``val/...`` keys)."""
    out: dict[str, Any] = {m: float(values[f"val/{m}"]) for m in ("correctness", "specificity", "hm")}
    out["fractions"] = {c: float(values.get(f"val/frac_{c}", 0.0)) for c in CATEGORY_ORDER}
    return out


def report_results(results: Mapping[str, Any], trained: str, dataset: str) -> list[dict[str, Any]]:
    """The measured rows in the report's format (one method each, one dataset): for the plots."""
    return [
        {"method": method, "datasets": {dataset: figures_of(results[row])}, "groups": {}}
        for row, method in method_names(results, trained).items()
    ]


def log_run_results(
    loggers: Sequence[Any], results: Mapping[str, Any], trained: str, dataset: str, out_dir: Path
) -> dict[str, Path]:
    """Write the plots to ``out_dir/plots`` and log tables, charts, plots and summary to W&B."""
    rows = report_results(results, trained, dataset)
    if not rows:
        return {}
    paths = {
        "tradeoff": tradeoff_plot(rows, out_dir / "plots" / "tradeoff.png"),
        "categories": category_plot(rows, out_dir / "plots" / "categories.png"),
    }
    for logger in loggers:
        if type(logger).__name__ == "WandbLogger":
            _log_wandb(logger.experiment, rows, dataset, paths)
    return paths


def _log_wandb(run: Any, rows: Sequence[Mapping[str, Any]], dataset: str, paths: Mapping[str, Path]) -> None:
    import wandb

    data = []
    for r in rows:
        f = r["datasets"][dataset]
        data.append([r["method"], dataset, f["correctness"], f["specificity"], f["hm"]])
    table = wandb.Table(columns=TABLE_COLUMNS, data=data)
    shares = wandb.Table(
        columns=["method", "category", "share"],
        data=[[r["method"], c, r["datasets"][dataset]["fractions"][c]] for r in rows for c in CATEGORY_ORDER],
    )
    run.log(
        {
            "results/table": table,
            "results/category_shares": shares,
            "results/hm_chart": wandb.plot.bar(table, "method", "hm", title="held-out HM"),
            "results/categories_chart": wandb.plot.bar(
                shares, "category", "share", title="category shares (all methods)"
            ),
            "results/tradeoff": wandb.Image(str(paths["tradeoff"]), caption="correctness vs specificity"),
            "results/categories": wandb.Image(str(paths["categories"]), caption="category shares"),
        }
    )
    for method, _, c, s, hm in data:
        run.summary.update({f"results/{method}/correctness": c, f"results/{method}/specificity": s})
        run.summary[f"results/{method}/hm"] = hm
