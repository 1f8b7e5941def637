"""The tiered judge: free deterministic verdicts first, then the cache, then the LLM for what is left.

Tiers, in order, for each (ground truth, prediction):
1. ``parse_failure``: no answer; never judged.
2. ``exact``: the normalised prediction equals the normalised ground truth (a leading article
   aside): specific.
3. ``taxonomy``: the taxonomy judge places it (synonym, ancestor, descendant, another known
   node, several options, a refusal). Deterministic, exact, free.
4. ``cache``: a verdict the same LLM judge (same model, same prompt version) gave before, in this
   run or any earlier one.
5. ``llm``: the rest, deduplicated, sent once per distinct pair; its verdicts go to the cache.
   A pair the LLM could not judge stays ``Outcome.JUDGE_ERROR`` (tier ``llm_error``) and is not
   cached, so it is asked again next time.

``last_stats`` holds how many verdicts of the last call came from each tier, the share that
needed the LLM, and the LLM judge's own counters (requests, retries, timeouts...) prefixed
``llm_``; ``totals`` accumulates the tier counts over the judge's life.
"""

from __future__ import annotations

import logging
import re
import time
from collections import Counter
from collections.abc import Sequence
from typing import Any

from speciarl.core.categories import Category, Judgement, Outcome, normalize_label
from speciarl.core.interfaces import Judge
from speciarl.core.taxonomy import Taxonomy
from speciarl.verifier.cache import VerdictCache, cache_key
from speciarl.verifier.taxonomy_judge import TaxonomyJudge

log = logging.getLogger(__name__)

TIERS = ("parse_failure", "exact", "taxonomy", "cache", "llm", "llm_error")
_LEADING_ARTICLE = re.compile(r"^(a|an|the)\s+")


class TieredJudge(Judge):
    """Compose a deterministic judge, a verdict cache and an LLM judge; the LLM sees only leftovers.

    Args:
        llm: any judge with ``judge(ground_truths, predictions)`` and an ``identity`` string.
        deterministic: a ``TaxonomyJudge`` that leaves unknown predictions ``UNRESOLVED``; None
            means exact string match and refusals only (no taxonomy).
        cache: where LLM verdicts persist; None judges every leftover pair again each call.
    """

    def __init__(
        self, llm: Any, deterministic: TaxonomyJudge | None = None, cache: VerdictCache | None = None
    ) -> None:
        if deterministic is None:
            deterministic = TaxonomyJudge(Taxonomy(), unresolved_as_wrong=False)
        if deterministic.unresolved_as_wrong:
            raise ValueError(
                "the tiered judge's taxonomy judge must leave unknown predictions unresolved "
                "(unresolved_as_wrong: false), or the LLM tier would never be asked"
            )
        if not getattr(llm, "identity", None):
            raise ValueError(f"the LLM judge {type(llm).__name__} has no identity: cache keys need one")
        self.llm = llm
        self.deterministic = deterministic
        self.cache = cache
        self.last_stats: dict[str, float] = {}
        self.totals: Counter[str] = Counter()

    @property
    def identity(self) -> str:
        return f"tiered({self.deterministic.identity}|{self.llm.identity})"

    def judge(self, ground_truths: Sequence[str], predictions: Sequence[str | None]) -> list[Judgement]:
        """One judgement per pair, in order; only unresolved pairs reach the cache and the LLM."""
        if len(ground_truths) != len(predictions):
            raise ValueError(
                f"judge got {len(ground_truths)} ground truths for {len(predictions)} predictions"
            )
        started = time.perf_counter()
        n = len(predictions)
        verdicts: list[Judgement | None] = [None] * n
        tier = Counter({name: 0 for name in TIERS})
        pending = self._deterministic_tiers(ground_truths, predictions, verdicts, tier)

        t_cache = time.perf_counter()
        cached = self.cache.get_many(self.llm.identity, list(pending)) if self.cache and pending else {}
        for pair, verdict in cached.items():
            for i in pending.pop(pair):
                verdicts[i] = verdict
                tier["cache"] += 1
        cache_seconds = time.perf_counter() - t_cache

        llm_stats: dict[str, float] = {"requests": 0.0}
        if pending:
            cache_seconds += self._llm_tier(pending, verdicts, tier)
            llm_stats = dict(self.llm.last_stats or {})
        out: list[Judgement] = [v if v is not None else Outcome.JUDGE_ERROR for v in verdicts]

        self.totals.update(tier)
        stats: dict[str, float] = {name: float(tier[name]) for name in TIERS}
        stats["verdicts"] = float(n)
        stats["llm_share"] = (tier["llm"] + tier["llm_error"]) / n if n else 0.0
        stats["llm_pairs"] = float(len(pending))
        stats["cache_seconds"] = cache_seconds
        stats["seconds"] = time.perf_counter() - started
        stats.update({f"llm_{k}": float(v) for k, v in llm_stats.items() if f"llm_{k}" not in stats})
        self.last_stats = stats
        return out

    def _deterministic_tiers(
        self,
        ground_truths: Sequence[str],
        predictions: Sequence[str | None],
        verdicts: list[Judgement | None],
        tier: Counter[str],
    ) -> dict[tuple[str, str], list[int]]:
        """Fill the parse-failure, exact and taxonomy verdicts; the rest, by cache key, with their indices."""
        pending: dict[tuple[str, str], list[int]] = {}
        deterministic = self.deterministic.judge(ground_truths, predictions)
        for i, (truth, prediction) in enumerate(zip(ground_truths, predictions, strict=True)):
            if prediction is None:
                verdicts[i] = Outcome.PARSE_FAILURE
                tier["parse_failure"] += 1
            elif _same_words(truth, prediction):
                verdicts[i] = Category.SPECIFIC
                tier["exact"] += 1
            elif isinstance(deterministic[i], Category):
                verdicts[i] = deterministic[i]
                tier["taxonomy"] += 1
            else:
                pending.setdefault(cache_key(truth, prediction), []).append(i)
        return pending

    def _llm_tier(
        self, pending: dict[tuple[str, str], list[int]], verdicts: list[Judgement | None], tier: Counter[str]
    ) -> float:
        """Ask the LLM once per pending pair, cache its categories; returns the seconds spent caching."""
        asked = list(pending)
        answers = self.llm.judge([p[0] for p in asked], [p[1] for p in asked])
        if len(answers) != len(asked):
            raise RuntimeError(f"the LLM judge returned {len(answers)} verdicts for {len(asked)} pairs")
        fresh = {pair: a for pair, a in zip(asked, answers, strict=True) if isinstance(a, Category)}
        t_cache = time.perf_counter()
        if self.cache is not None and fresh:
            self.cache.put_many(self.llm.identity, fresh)
        cache_seconds = time.perf_counter() - t_cache
        for pair, answer in zip(asked, answers, strict=True):
            ok = isinstance(answer, Category)
            for i in pending[pair]:
                verdicts[i] = answer if ok else Outcome.JUDGE_ERROR
                tier["llm" if ok else "llm_error"] += 1
        return cache_seconds


def llm_alone(llm: Judge) -> Judge:
    """The LLM judge on its own (``verifier=llm_http`` / ``verifier=llm_local``): every pair goes to it.

    It exists so that every judge preset spells the LLM's settings the same way,
    ``verifier.llm.*``: Hydra builds ``llm`` from its ``_target_`` and hands it here.

    Args:
        llm: the built LLM judge.

    Returns:
        ``llm`` itself.
    """
    return llm


def _same_words(truth: str, prediction: str) -> bool:
    a = _LEADING_ARTICLE.sub("", normalize_label(truth))
    b = _LEADING_ARTICLE.sub("", normalize_label(prediction))
    return bool(b) and a == b
