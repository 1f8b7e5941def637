"""Figures of an open-world evaluation: per dataset, per group of datasets, and secondary metrics.

Per dataset (the metrics of the SpeciaRL paper, arXiv 2603.03197, Sec. 4; parse failures count as not correct, judge errors are not
verdicts and are counted apart):
    C = (generic + less specific + specific + more specific) / N
    S = (specific + more specific) / (generic + less specific + specific + more specific)
    HM = 2 C S / (C + S)
Per group: each figure is the mean of its datasets' figures (not recomputed from pooled counts).
Secondary (Conti et al., ICCV 2025): text inclusion, the share of answers that contain the label;
semantic similarity, the mean cosine between label and answer sentence embeddings.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from speciarl.core.categories import Judgement, Outcome, normalize_label
from speciarl.evaluation.metrics import correctness_specificity, count_judgements, slot_name

# The paper's groups; a group's figure is the mean over its datasets.
GROUPS: dict[str, tuple[str, ...]] = {
    "in_domain": ("cub200",),
    "fine_grained": ("flowers102", "food101", "oxford_pets"),
    "very_fine_grained": ("stanford_cars", "fgvc_aircraft"),
}
FIGURES = ("correctness", "specificity", "hm")
SECONDARY = ("text_inclusion", "semantic_similarity")


def text_inclusion(label: str, prediction: str | None) -> bool:
    """True when the normalised label is a substring of the normalised prediction (False if none)."""
    if prediction is None:
        return False
    return normalize_label(label) in normalize_label(prediction)


def dataset_figures(
    judgements: Sequence[Judgement],
    inclusions: Sequence[bool] | None = None,
    similarities: Sequence[float] | None = None,
    skipped: int = 0,
) -> dict[str, object]:
    """C, S, HM, category counts and shares, secondary metrics and the skipped-image count."""
    counts = count_judgements(judgements)
    c, s, hm = correctness_specificity(counts)
    judged = sum(k for j, k in counts.items() if j is not Outcome.JUDGE_ERROR)
    out: dict[str, object] = {
        "n": judged,
        "correctness": c,
        "specificity": s,
        "hm": hm,
        "counts": {slot_name(j): k for j, k in counts.items()},
        "fractions": {
            slot_name(j): (k / judged if judged else 0.0)
            for j, k in counts.items()
            if j is not Outcome.JUDGE_ERROR
        },
        "judge_errors": counts[Outcome.JUDGE_ERROR],
        "skipped_images": skipped,
    }
    if inclusions is not None:
        out["text_inclusion"] = sum(inclusions) / len(inclusions) if inclusions else 0.0
    if similarities is not None:
        out["semantic_similarity"] = sum(similarities) / len(similarities) if similarities else 0.0
    return out


def group_figures(
    per_dataset: Mapping[str, Mapping[str, object]], groups: Mapping[str, Iterable[str]] = GROUPS
) -> dict[str, dict[str, object]]:
    """Each group with at least one dataset present: the mean of its datasets' figures."""
    out: dict[str, dict[str, object]] = {}
    for group, members in groups.items():
        members = list(members)
        present = [m for m in members if m in per_dataset]
        if not present:
            continue
        entry: dict[str, object] = {"datasets": present, "complete": len(present) == len(members)}
        for key in (*FIGURES, *SECONDARY):
            values = [per_dataset[m].get(key) for m in present]
            if all(isinstance(v, int | float) for v in values):
                entry[key] = sum(values) / len(values)  # type: ignore[arg-type]
        out[group] = entry
    return out
