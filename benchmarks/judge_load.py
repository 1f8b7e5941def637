"""How often does training need the LLM judge? Replay a realistic answer stream through each judge set-up.

    python benchmarks/judge_load.py                       # 20 steps x 256 prompts x 10 rollouts
    python benchmarks/judge_load.py --steps 5 --prompts 64 # quicker

The stream: each step draws ``prompts`` ground truths from the synthetic shapes taxonomy (a
uniform type and colour, as ``SyntheticShapes`` does; 30% of images greyed) and ``rollouts``
answers per prompt from a policy-like answer distribution: mostly leaf, type and family names and
their synonyms, some wrong leaves, refusals, "x or y" answers and parse failures, and a tail that
no taxonomy can place: misspellings and out-of-taxonomy phrasings ("scarlet circle", "circle
shape"). Misspellings are *recurring* by default (a policy repeats its slips: each name has three
typo variants, picked with weights 1/2, 1/3, 1/6); ``--fresh-typos`` makes every misspelling new,
the worst case for a cache.

The LLM is a real OpenAI-compatible server on loopback (``ChatCompletionsServer``) whose answers
come from an oracle (the taxonomy, plus fuzzy matching and a small colour thesaurus), so every
request crosses real HTTP. For each set-up the benchmark reports the share of verdicts that
needed the LLM (per step: the first, then the mean and max over the others) and the requests the
server received. Set-ups: the LLM for everything; exact match + cache (a dataset without a
taxonomy); exact match + taxonomy, no cache; exact match + taxonomy + cache (``verifier=tiered``).
Ratios come from one run with a fixed seed; wall times are noisy on a shared machine.
"""

from __future__ import annotations

import argparse
import difflib
import json
import sys
import tempfile
import time
import zlib
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from speciarl.core.categories import Category, Judgement, Outcome, normalize_label
from speciarl.core.taxonomy import Taxonomy
from speciarl.data.synthetic import (
    COLOUR_SYNONYMS,
    COLOURS,
    FAMILIES,
    FAMILY_SYNONYMS,
    TYPE_SYNONYMS,
    shapes_taxonomy,
)
from speciarl.verifier.cache import SqliteVerdictCache

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))  # the test-only judge server
from chat_server import ChatCompletionsServer, judging_responder  # noqa: E402
from speciarl.verifier.llm_http import LLMHttpJudge
from speciarl.verifier.taxonomy_judge import TaxonomyJudge
from speciarl.verifier.tiered import TieredJudge

# Colour words a policy may use that the taxonomy does not list (the oracle knows them).
EXTRA_COLOURS = {"crimson": "scarlet", "amber": "golden", "azure": "navy", "lime": "emerald"}
PHRASINGS = ("{x} shape", "{x}-like shape", "small {x}", "a {x} on white", "{x} figure")
# (kind, probability) of one rollout's answer.
ANSWER_MIX = (
    ("leaf", 0.20),
    ("leaf_synonym", 0.08),
    ("wrong_leaf_same_type", 0.12),
    ("type", 0.22),
    ("family", 0.10),
    ("root", 0.02),
    ("wrong_other", 0.06),
    ("abstain", 0.02),
    ("options", 0.02),
    ("parse_failure", 0.03),
    ("misspelling", 0.08),
    ("phrasing", 0.05),
)


class AnswerStream:
    """Ground truths and policy-like answers, deterministic from a seed."""

    def __init__(self, seed: int, fresh_typos: bool) -> None:
        self.rng = np.random.default_rng(seed)
        self.fresh_typos = fresh_typos
        self.types = [t for types in FAMILIES.values() for t in types]
        self.colours = list(COLOURS)
        self.kinds = [k for k, _ in ANSWER_MIX]
        weights = np.array([p for _, p in ANSWER_MIX])
        self.weights = weights / weights.sum()
        self._typos: dict[str, list[str]] = {}

    def family_of(self, shape_type: str) -> str:
        return next(f for f, types in FAMILIES.items() if shape_type in types)

    def pick(self, options: Sequence[str]) -> str:
        return options[int(self.rng.integers(len(options)))]

    def step(self, prompts: int, rollouts: int) -> tuple[list[str], list[str | None]]:
        truths: list[str] = []
        answers: list[str | None] = []
        for _ in range(prompts):
            shape_type, colour = self.pick(self.types), self.pick(self.colours)
            grey = self.rng.random() < 0.3
            truth = f"{colour} {shape_type}"
            for _ in range(rollouts):
                truths.append(truth)
                answers.append(self.answer(shape_type, colour, grey))
        return truths, answers

    def answer(self, shape_type: str, colour: str, grey: bool) -> str | None:
        kind = self.kinds[int(self.rng.choice(len(self.kinds), p=self.weights))]
        if grey and kind in ("leaf", "leaf_synonym"):
            kind = "wrong_leaf_same_type" if self.rng.random() < 0.6 else kind  # colour is a guess
        family = self.family_of(shape_type)
        if kind == "leaf":
            return f"{colour} {shape_type}"
        if kind == "leaf_synonym":
            return f"{COLOUR_SYNONYMS[colour]} {TYPE_SYNONYMS.get(shape_type, shape_type)}"
        if kind == "wrong_leaf_same_type":
            return f"{self.pick([c for c in self.colours if c != colour])} {shape_type}"
        if kind == "type":
            return self.pick([shape_type, TYPE_SYNONYMS.get(shape_type, shape_type)])
        if kind == "family":
            return self.pick([family, FAMILY_SYNONYMS.get(family, family)])
        if kind == "root":
            return self.pick(["shape", "object"])
        if kind == "wrong_other":
            return f"{self.pick(self.colours)} {self.pick([t for t in self.types if t != shape_type])}"
        if kind == "abstain":
            return self.pick(["none", "cannot tell", "unknown"])
        if kind == "options":
            return f"{shape_type} or {self.pick([t for t in self.types if t != shape_type])}"
        if kind == "parse_failure":
            return None
        if kind == "misspelling":
            target = self.pick(
                [f"{colour} {shape_type}", shape_type, family, f"{COLOUR_SYNONYMS[colour]} {shape_type}"]
            )
            return self.typo(target)
        inner = self.pick(
            [shape_type, f"{EXTRA_COLOURS[colour]} {shape_type}", f"{colour} {shape_type}", family]
        )
        return self.pick(PHRASINGS).format(x=inner)

    def typo(self, word: str) -> str:
        if self.fresh_typos:
            return _mangle(word, self.rng)
        if word not in self._typos:
            local = np.random.default_rng(zlib.crc32(word.encode()))  # stable across runs
            self._typos[word] = [_mangle(word, local) for _ in range(3)]
        return self._typos[word][int(self.rng.choice(3, p=[1 / 2, 1 / 3, 1 / 6]))]


def _mangle(word: str, rng: np.random.Generator) -> str:
    """One slip: drop, double or swap a letter."""
    i = int(rng.integers(1, max(2, len(word) - 1)))
    op = int(rng.integers(3))
    if op == 0:
        return word[:i] + word[i + 1 :]
    if op == 1:
        return word[:i] + word[i] + word[i:]
    return word[: i - 1] + word[i] + word[i - 1] + word[i + 1 :]


class Oracle:
    """What the judge LLM is assumed to know: the taxonomy, slips of the pen, a few colour words."""

    def __init__(self, taxonomy: Taxonomy) -> None:
        self.judge = TaxonomyJudge(taxonomy, unresolved_as_wrong=False)
        self.surfaces = sorted({normalize_label(n) for key in taxonomy.nodes for n in taxonomy.names(key)})
        self.colour_words = {v: k for k, v in EXTRA_COLOURS.items()}

    def __call__(self, pairs: Sequence[tuple[str, str]]) -> list[Judgement]:
        return [self.one(truth, prediction) for truth, prediction in pairs]

    def one(self, truth: str, prediction: str) -> Category:
        words = [self.colour_words.get(w, w) for w in normalize_label(prediction).split()]
        words = [w for w in words if w not in ("shape", "small", "figure", "on", "white", "a", "-like")]
        cleaned = " ".join(w.removesuffix("-like") for w in words) or prediction
        for candidate in (cleaned, *difflib.get_close_matches(cleaned, self.surfaces, n=1, cutoff=0.75)):
            verdict = self.judge.judge_one(truth, candidate)
            if isinstance(verdict, Category):
                return verdict
        return Category.WRONG


def run_setup(
    name: str,
    judge,
    server: ChatCompletionsServer,
    stream_args: dict,
    steps: int,
    prompts: int,
    rollouts: int,
) -> dict:
    stream = AnswerStream(**stream_args)
    shares, requests, seconds = [], [], []
    for _ in range(steps):
        truths, answers = stream.step(prompts, rollouts)
        before = server.received
        started = time.perf_counter()
        verdicts = judge.judge(truths, answers)
        seconds.append(time.perf_counter() - started)
        if any(v is Outcome.JUDGE_ERROR for v in verdicts):
            raise RuntimeError(
                f"{name}: the judge failed on some verdicts; the benchmark needs a healthy server"
            )
        sent = server.received - before
        stats = getattr(judge, "last_stats", {})
        if "llm_share" in stats:
            shares.append(stats["llm_share"])
        else:  # the LLM alone: every answered verdict needed it
            shares.append(sum(a is not None for a in answers) / len(answers))
        requests.append(sent)
    rest = shares[1:] or shares
    return {
        "setup": name,
        "first_step_share": shares[0],
        "later_mean_share": float(np.mean(rest)),
        "later_max_share": float(np.max(rest)),
        "requests_first_step": requests[0],
        "requests_later_mean": float(np.mean(requests[1:] or requests)),
        "requests_total": int(sum(requests)),
        "seconds_per_step": float(np.mean(seconds)),
        "shares": shares,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--prompts", type=int, default=256)
    parser.add_argument("--rollouts", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--fresh-typos", action="store_true", help="every misspelling new (worst case for a cache)"
    )
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--out", type=Path, default=None, help="also write the results as JSON here")
    args = parser.parse_args()

    taxonomy = shapes_taxonomy()
    stream_args = {"seed": args.seed, "fresh_typos": args.fresh_typos}
    results = []
    with (
        ChatCompletionsServer(judging_responder(Oracle(taxonomy)), keep_requests=False) as server,
        tempfile.TemporaryDirectory() as tmp,
    ):

        def llm() -> LLMHttpJudge:
            return LLMHttpJudge(server.url, "oracle", max_concurrency=args.concurrency, timeout_s=10.0)

        def taxonomy_tier() -> TaxonomyJudge:
            return TaxonomyJudge(taxonomy, unresolved_as_wrong=False)

        setups = [
            ("LLM for every verdict", llm()),
            (
                "exact match + cache (no taxonomy)",
                TieredJudge(llm(), None, SqliteVerdictCache(Path(tmp) / "a.sqlite")),
            ),
            ("exact match + taxonomy, no cache", TieredJudge(llm(), taxonomy_tier(), None)),
            (
                "exact + taxonomy + cache (tiered)",
                TieredJudge(llm(), taxonomy_tier(), SqliteVerdictCache(Path(tmp) / "b.sqlite")),
            ),
        ]
        for name, judge in setups:
            results.append(
                run_setup(name, judge, server, stream_args, args.steps, args.prompts, args.rollouts)
            )

    n = args.prompts * args.rollouts
    print(
        f"\n{args.steps} steps x {args.prompts} prompts x {args.rollouts} rollouts = {n} verdicts a step; "
        f"typos {'fresh every time' if args.fresh_typos else 'recurring'}; seed {args.seed}\n"
    )
    print(
        "| set-up | needed the LLM, step 1 | later steps, mean (max) | requests, step 1 | later steps, mean | s/step |"
    )
    print("|---|---|---|---|---|---|")
    for r in results:
        print(
            f"| {r['setup']} | {r['first_step_share']:.1%} | {r['later_mean_share']:.1%} ({r['later_max_share']:.1%}) "
            f"| {r['requests_first_step']} | {r['requests_later_mean']:.0f} | {r['seconds_per_step']:.2f} |"
        )
    if args.out:
        args.out.write_text(
            json.dumps({"args": vars(args) | {"out": str(args.out)}, "results": results}, indent=1)
        )


if __name__ == "__main__":
    main()
