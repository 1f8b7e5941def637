"""The deterministic judge: places a prediction relative to the ground truth in a taxonomy."""

from __future__ import annotations

import re
from collections.abc import Sequence

from speciarl.core.categories import Category, Judgement, Outcome, normalize_label
from speciarl.core.interfaces import Judge
from speciarl.core.taxonomy import Taxonomy

# Normalised refusals. Anything a model says to decline naming the object.
REFUSALS = frozenset(
    {
        "none",
        "no answer",
        "unknown",
        "not sure",
        "unsure",
        "unclear",
        "cannot tell",
        "can t tell",
        "cant tell",
        "cannot say",
        "cannot determine",
        "can not tell",
        "i don t know",
        "i dont know",
        "don t know",
        "n a",
        "not applicable",
        "unidentifiable",
    }
)
_LEADING_ARTICLE = re.compile(r"^(a|an|the)\s+")
# Separators that turn one answer into several; checked on the raw text, before normalisation
# removes the punctuation.
_OPTION_SPLIT = re.compile(r"\s+or\s+|\s+and\s+|\s*[,/;|&]\s*|\s+vs\.?\s+", re.IGNORECASE)


class TaxonomyJudge(Judge):
    """Exact judge for labels inside a taxonomy.

    Outcomes, for a ground truth G and a prediction P:
    P names G (name or synonym) -> specific; P is an ancestor of G -> less specific or generic
    (one level up, or the ancestor's own ``ancestor_kind``); P is a descendant -> more specific;
    P is another known node -> wrong; several options -> wrong; a refusal -> abstain;
    P unknown -> ``Outcome.UNRESOLVED`` (or wrong when ``unresolved_as_wrong``, i.e. when no
    later judge will take it over).
    """

    # Verdicts are a pure function of the pair, so they are memoised; the bound keeps a long run
    # with free-form answers from growing without limit (the memo is simply started afresh).
    MEMO_LIMIT = 200_000

    def __init__(self, taxonomy: Taxonomy, unresolved_as_wrong: bool = True) -> None:
        if taxonomy is None:
            raise ValueError(
                "the taxonomy judge needs a label taxonomy, and this data config has none "
                "(data.taxonomy is null, as for data=image_folder and data=manifest): give one "
                "(data.taxonomy=<file.json> or +data.taxonomy._target_=...), or judge without it "
                "(verifier=llm_http, or verifier=tiered verifier.deterministic=null)"
            )
        self.taxonomy = taxonomy
        self.unresolved_as_wrong = unresolved_as_wrong
        self.identity = "taxonomy-v1"
        self._memo: dict[tuple[str, str | None], Judgement] = {}

    def judge_one(self, ground_truth: str, prediction: str | None) -> Judgement:
        if prediction is None:
            return Outcome.PARSE_FAILURE
        verdict = self._place(ground_truth, prediction)
        if verdict is Outcome.UNRESOLVED and self.unresolved_as_wrong:
            return Category.WRONG
        return verdict

    def judge(self, ground_truths: Sequence[str], predictions: Sequence[str | None]) -> list[Judgement]:
        if len(ground_truths) != len(predictions):
            raise ValueError(
                f"judge got {len(ground_truths)} ground truths for {len(predictions)} predictions"
            )
        if len(self._memo) > self.MEMO_LIMIT:
            self._memo.clear()
        memo = self._memo
        verdicts = []
        for pair in zip(ground_truths, predictions, strict=True):
            verdict = memo.get(pair)
            if verdict is None:
                verdict = memo[pair] = self.judge_one(*pair)
            verdicts.append(verdict)
        return verdicts

    def _place(self, ground_truth: str, prediction: str) -> Judgement:
        pred_norm = _LEADING_ARTICLE.sub("", normalize_label(prediction))
        if not pred_norm:
            return Category.WRONG
        if pred_norm in REFUSALS:
            return Category.ABSTAIN
        gt_key = self.taxonomy.resolve(ground_truth)
        pred_key = self.taxonomy.resolve(pred_norm)
        if pred_key is None:
            options = [p for p in _OPTION_SPLIT.split(prediction.strip()) if p.strip()]
            if len(options) > 1:
                return Category.WRONG
            if gt_key is None and pred_norm == normalize_label(ground_truth):
                return Category.SPECIFIC
            return Outcome.UNRESOLVED
        if gt_key is None:
            # The ground truth is outside the taxonomy; only string identity is certain.
            if pred_norm == normalize_label(ground_truth):
                return Category.SPECIFIC
            return Outcome.UNRESOLVED
        if pred_key == gt_key:
            return Category.SPECIFIC
        gt_ancestors = list(self.taxonomy.ancestors(gt_key))
        if pred_key in gt_ancestors:
            kind = self.taxonomy.node(pred_key).ancestor_kind
            if kind is None:
                kind = "less specific" if gt_ancestors.index(pred_key) == 0 else "generic"
            return Category(kind)
        if gt_key in self.taxonomy.ancestors(pred_key):
            return Category.MORE_SPECIFIC
        return Category.WRONG
