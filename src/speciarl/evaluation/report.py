"""Reports of open-world evaluations: a markdown table, plots, and several methods side by side.

    python -m speciarl.evaluation.report outputs/eval/a/eval_base.json outputs/eval/b/eval_trained.json -o report/

writes ``report.md``, ``report.json`` and ``plots/{tradeoff,categories}.png`` comparing every
method on every dataset and group they share.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from speciarl.evaluation.figures import GROUPS
from speciarl.evaluation.tables import titled_table

CATEGORY_ORDER = (
    "more_specific",
    "specific",
    "less_specific",
    "generic",
    "abstain",
    "wrong",
    "parse_failure",
)
CATEGORY_COLOURS = ("#1b7837", "#5aae61", "#a6dba0", "#d9f0d3", "#bababa", "#d6604d", "#762a83")
DATASET_ORDER = ("cub200", "flowers102", "food101", "oxford_pets", "stanford_cars", "fgvc_aircraft")


def scopes(results: Sequence[Mapping[str, Any]]) -> list[tuple[str, str]]:
    """(kind, name) of every dataset then every group that any result has, in a stable order."""
    names = {d for r in results for d in r.get("datasets", {})}
    ordered = [d for d in DATASET_ORDER if d in names] + sorted(names - set(DATASET_ORDER))
    groups = {g for r in results for g in r.get("groups", {})}
    return [("dataset", d) for d in ordered] + [("group", g) for g in GROUPS if g in groups]


def _each_figures(
    results: Sequence[Mapping[str, Any]],
) -> Iterator[tuple[str, str, Mapping[str, Any], Mapping[str, Any]]]:
    """(kind, name, result, figures) for every scope, then every method that has figures there."""
    for kind, name in scopes(results):
        for r in results:
            f = _figures(r, kind, name)
            if f is not None:
                yield kind, name, r, f


def _figures(result: Mapping[str, Any], kind: str, name: str) -> Mapping[str, Any] | None:
    return result.get("datasets" if kind == "dataset" else "groups", {}).get(name)


def _label(kind: str, name: str, result: Mapping[str, Any] | None = None) -> str:
    if kind == "dataset":
        return name
    entry = (result or {}).get("groups", {}).get(name, {})
    partial = (
        "" if entry.get("complete", True) else " (partial: " + ", ".join(entry.get("datasets", [])) + ")"
    )
    return f"{name.replace('_', '-')} (mean){partial}"


def _num(value: Any) -> str:
    return f"{value:.3f}" if isinstance(value, int | float) else "-"


def markdown_report(results: Sequence[Mapping[str, Any]]) -> str:
    """Tables of C/S/HM, the category breakdown and secondary metrics, methods side by side."""
    lines = ["# Open-world evaluation", "", *(_method_line(r) for r in results)]
    lines += titled_table(
        "## Correctness, specificity, HM",
        ["scope", "method", "correctness", "specificity", "HM", "N"],
        (
            [_label(kind, name, r), r["method"], *_csh(f), f.get("n", "-") if kind == "dataset" else "-"]
            for kind, name, r, f in _each_figures(results)
        ),
    )
    lines += titled_table(
        "## Category breakdown (share of N)",
        [
            "dataset",
            "method",
            *(c.replace("_", " ") for c in CATEGORY_ORDER),
            "judge errors",
            "skipped images",
        ],
        (
            [name, r["method"], *(_num(f.get("fractions", {}).get(c, 0.0)) for c in CATEGORY_ORDER)]
            + [f.get("judge_errors", 0), f.get("skipped_images", 0)]
            for kind, name, r, f in _each_figures(results)
            if kind == "dataset"
        ),
    )
    by_tag = [
        [name, part, r["method"], *_csh(f), f.get("n", "-")]
        for kind, name in scopes(results)
        if kind == "dataset"
        for r in results
        for part, f in sorted(r.get("breakdown", {}).get(name, {}).items())
    ]
    if by_tag:
        header = ["dataset", "tag", "method", "correctness", "specificity", "HM", "N"]
        lines += titled_table("## By sample tag", header, by_tag)
    lines += titled_table(
        "## Secondary metrics",
        ["scope", "method", "text inclusion", "semantic similarity"],
        (
            [
                _label(kind, name, r),
                r["method"],
                _num(f.get("text_inclusion")),
                _num(f.get("semantic_similarity")),
            ]
            for kind, name, r, f in _each_figures(results)
        ),
    )
    notes = sorted({r.get("semantic_similarity_note", "") for r in results} - {""})
    if notes:
        lines += [""] + [f"_{n}_" for n in notes]
    return "\n".join(lines) + "\n"


def _method_line(result: Mapping[str, Any]) -> str:
    """One bullet per method: model, checkpoint, prompt, decoding and time."""
    dec = result.get("decoding", {})
    mode = (
        "greedy"
        if dec.get("best_of", 1) == 1
        else f"best-of-{dec['best_of']} (T={dec.get('temperature')}, top-p={dec.get('top_p')})"
    )
    return (
        f"- **{result['method']}**: model `{result.get('model', '?')}`"
        + (f", checkpoint `{result['ckpt']}`" if result.get("ckpt") else "")
        + f", prompt `{result.get('prompt', '?')}`, {mode}, {result.get('seconds', {}).get('total', 0):.1f} s"
    )


def _csh(figures: Mapping[str, Any]) -> list[str]:
    """Correctness, specificity and HM, formatted."""
    return [_num(figures.get(m)) for m in ("correctness", "specificity", "hm")]


def tradeoff_plot(results: Sequence[Mapping[str, Any]], path: str | Path) -> Path:
    """Correctness against specificity, one colour per dataset/group, one marker per method."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    markers = "osD^vP*Xh<>"
    fig, ax = plt.subplots(figsize=(7, 5.5))
    s = np.linspace(0.01, 1, 200)
    for hm in (0.2, 0.4, 0.6, 0.8, 0.9):
        c = hm * s / (2 * s - hm)  # HM = 2CS/(C+S) solved for C
        ok = (c > 0) & (c <= 1) & (2 * s - hm > 0)
        ax.plot(s[ok], c[ok], color="0.85", lw=0.8, zorder=0)
        if ok.any():
            ax.annotate(f"HM {hm}", (s[ok][-1], c[ok][-1]), fontsize=7, color="0.6")
    colours = plt.get_cmap("tab10")
    for k, (kind, name) in enumerate(scopes(results)):
        for m, r in enumerate(results):
            f = _figures(r, kind, name)
            if f is None:
                continue
            ax.scatter(
                f["specificity"],
                f["correctness"],
                color=colours(k % 10),
                marker=markers[m % len(markers)],
                s=80 if kind == "group" else 45,
                edgecolor="black" if kind == "group" else "none",
                label=f"{_label(kind, name)} / {r['method']}",
            )
    ax.set_xlim(0, 1.02)
    ax.set_ylim(0, 1.02)
    ax.set_xlabel("specificity")
    ax.set_ylabel("correctness")
    ax.set_title("correctness vs specificity")
    ax.legend(fontsize=7, loc="lower left", ncol=1 if len(results) * len(scopes(results)) < 14 else 2)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def category_plot(results: Sequence[Mapping[str, Any]], path: str | Path) -> Path:
    """Stacked bars of the category shares, one bar per (dataset, method)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    bars = [
        (f"{name} / {r['method']}", r["datasets"][name].get("fractions", {}))
        for kind, name in scopes(results)
        if kind == "dataset"
        for r in results
        if name in r.get("datasets", {})
    ]
    fig, ax = plt.subplots(figsize=(8, 0.45 * len(bars) + 1.6))
    for row, (_, fractions) in enumerate(bars):
        left = 0.0
        for cat, colour in zip(CATEGORY_ORDER, CATEGORY_COLOURS, strict=True):
            width = float(fractions.get(cat, 0.0))
            ax.barh(row, width, left=left, color=colour, label=cat.replace("_", " ") if row == 0 else None)
            left += width
    ax.set_yticks(range(len(bars)), [b[0] for b in bars], fontsize=8)
    ax.invert_yaxis()
    ax.set_xlim(0, 1)
    ax.set_xlabel("share of answers")
    ax.legend(fontsize=7, ncol=4, loc="upper center", bbox_to_anchor=(0.5, -0.35 if len(bars) < 4 else -0.12))
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120, bbox_inches="tight")
    plt.close(fig)
    return path


def write_report(
    results: Sequence[Mapping[str, Any]], out_dir: str | Path, plots: bool = True
) -> dict[str, Path]:
    """``report.md``, ``report.json`` (the results side by side) and the two plots in ``out_dir``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"markdown": out / "report.md", "json": out / "report.json"}
    paths["markdown"].write_text(markdown_report(results))
    paths["json"].write_text(json.dumps({"methods": list(results)}, indent=1))
    if plots:
        paths["tradeoff"] = tradeoff_plot(results, out / "plots" / "tradeoff.png")
        paths["categories"] = category_plot(results, out / "plots" / "categories.png")
    return paths


def load_results(paths: Sequence[str | Path]) -> list[dict[str, Any]]:
    """Evaluation JSONs (``eval_*.json`` or a ``report.json`` holding several), methods made unique."""
    results: list[dict[str, Any]] = []
    for p in paths:
        path = Path(p)
        if not path.is_file():
            raise FileNotFoundError(f"no evaluation JSON at {path}")
        data = json.loads(path.read_text())
        items = data["methods"] if isinstance(data, dict) and "methods" in data else [data]
        for item in items:
            if "method" not in item or "datasets" not in item:
                raise ValueError(f"{path}: not an evaluation result (expected 'method' and 'datasets' keys)")
            results.append(item)
    seen: dict[str, int] = {}
    for item in results:
        name = item["method"]
        seen[name] = seen.get(name, 0) + 1
        if seen[name] > 1:
            item["method"] = f"{name} ({seen[name]})"
    return results


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Combine evaluation JSONs into one side-by-side report.")
    parser.add_argument("results", nargs="+", help="eval_*.json files written by speciarl.evaluate")
    parser.add_argument("-o", "--out", default="report", help="output folder (default: ./report)")
    parser.add_argument("--no-plots", action="store_true")
    args = parser.parse_args(argv)
    paths = write_report(load_results(args.results), args.out, plots=not args.no_plots)
    print(paths["markdown"].read_text())
    print("written:", ", ".join(str(p) for p in paths.values()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
