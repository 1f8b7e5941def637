"""Dynamic sampling's refill loop and refill stream, with a deterministic scorer.

The scorer is a plain function of the sample: label "mixed" gives a group with rewards
[1, 0, 0, 0] (informative), "same" gives [1, 1, 1, 1] (all equal: dropped), "error" a group with a
judge error (NaN: dropped and counted apart).
"""

import logging
import math

import pytest
import torch
from PIL import Image

from speciarl.core.samples import Sample
from speciarl.rl.config import DynamicSampling
from speciarl.rl.dynamic_sampling import DynamicSampler, RefillStream

IMAGE = Image.new("RGB", (4, 4))
GROUPS = {"mixed": [1.0, 0.0, 0.0, 0.0], "same": [1.0, 1.0, 1.0, 1.0], "error": [1.0, math.nan, 0.0, 0.0]}


def sample(label: str, i: int) -> Sample:
    return Sample(image=IMAGE, label=label, sample_id=f"{label}-{i}")


def make(labels: str) -> list[Sample]:
    names = {"M": "mixed", "S": "same", "E": "error"}
    return [sample(names[c], i) for i, c in enumerate(labels)]


def score(prompts):
    """A round's 'scored' object is (prompts, rewards [groups, G])."""
    return prompts, torch.tensor([GROUPS[s.label] for s in prompts])


def select(scored, groups):
    prompts, rewards = scored
    return [prompts[g] for g in groups], rewards[groups]


class ListRefill:
    """Hands out prepared samples in order, and records each request size."""

    def __init__(self, samples):
        self.samples = list(samples)
        self.requests = []

    def __call__(self, n):
        self.requests.append(n)
        out, self.samples = self.samples[:n], self.samples[n:]
        assert len(out) == n, "the test prepared too few refill samples"
        return out


def collect(first, refill, batch_size=4, multiple=1, max_rounds=10):
    sampler = DynamicSampler(
        DynamicSampling(enabled=True, generation_batch_multiple=multiple, max_rounds=max_rounds), refill
    )
    return sampler.collect(first, batch_size, score, lambda s: s[1], select)


def kept_ids(result):
    return [s.sample_id for part in result.parts for s in part[0]]


def test_a_batch_that_needs_refills():
    # Round 1: S M S S -> 1 kept. Round 2: S M M S -> 2 kept (3). Round 3: M M S S -> 1 more is
    # needed, the surplus M is discarded. 12 groups generated, 5 informative, 7 equal dropped.
    refill = ListRefill(make("SMMS") + [sample("mixed", 10), sample("mixed", 11), *make("SS")])
    result = collect(make("SMSS"), refill)
    r = result.report
    assert (r.rounds, r.generated, r.informative, r.kept) == (3, 12, 5, 4)
    assert (r.dropped_equal, r.dropped_failed, r.hit_round_limit) == (7, 0, False)
    assert refill.requests == [0, 4, 4]
    assert kept_ids(result) == ["mixed-1", "mixed-1", "mixed-2", "mixed-10"]
    # every kept group is informative
    assert all(torch.all(part[1].amax(1) != part[1].amin(1)) for part in result.parts)


def test_a_full_first_round_needs_no_refill():
    refill = ListRefill([])
    result = collect(make("MMMM"), refill)
    assert (result.report.rounds, result.report.kept, refill.requests) == (1, 4, [0])


def test_the_round_limit_trains_on_what_was_collected_and_says_so(caplog):
    # Two rounds allowed: S M S S, then S M S E -> 2 informative of 4, limit hit; the judge-error
    # group is dropped and counted apart from the all-equal ones.
    refill = ListRefill(make("SMSE"))
    with caplog.at_level(logging.WARNING, logger="speciarl.rl.dynamic_sampling"):
        result = collect(make("SMSS"), refill, max_rounds=2)
    r = result.report
    assert (r.rounds, r.generated, r.kept, r.hit_round_limit) == (2, 8, 2, True)
    assert (r.dropped_equal, r.dropped_failed) == (5, 1)
    assert len(kept_ids(result)) == 2
    assert (
        "round limit 2 reached with 2 of 4 informative groups (8 generated); training on the 2 collected"
        in caplog.text
    )
    metrics = r.as_metrics()
    assert metrics["ds_hit_round_limit"] == 1.0 and metrics["ds_kept_groups"] == 2.0


def test_round_limit_with_nothing_collected(caplog):
    refill = ListRefill(make("SSSS"))
    with caplog.at_level(logging.WARNING, logger="speciarl.rl.dynamic_sampling"):
        result = collect(make("SSSS"), refill, max_rounds=2)
    assert result.parts == [] and result.report.kept == 0
    assert "none, so this step makes no update" in caplog.text


def test_generation_batch_multiple():
    # multiple 3, batch 2: each round rolls out 6 prompts; round 1 = the 2 given + 4 refilled.
    # Round 1 has no informative group; round 2 (S M S S M S) fills the batch of 2.
    refill = ListRefill(make("SSSS") + make("SMSSMS"))
    result = collect(make("SS"), refill, batch_size=2, multiple=3)
    assert refill.requests == [4, 6]
    assert (result.report.rounds, result.report.generated, result.report.kept) == (2, 12, 2)
    assert result.report.dropped_equal == 10


def test_refill_stream_is_seeded_reshuffled_and_covers_the_dataset():
    data = [sample("same", i) for i in range(10)]
    a = [s.sample_id for s in RefillStream(data, seed=3).take(25)]
    b = [s.sample_id for s in RefillStream(data, seed=3).take(25)]
    c = [s.sample_id for s in RefillStream(data, seed=4).take(25)]
    assert a == b and a != c
    assert sorted(a[:10]) == sorted(s.sample_id for s in data)  # one pass = every item once
    assert sorted(a[10:20]) == sorted(s.sample_id for s in data)
    assert a[:10] != a[10:20]  # reshuffled between passes


def test_refill_stream_skips_unreadable_items():
    data = [sample("same", 0), None, sample("same", 2), None]
    stream = RefillStream(data, seed=0)
    out = stream.take(4)
    assert all(s is not None for s in out) and len(out) == 4
    assert stream.skipped >= 2
    with pytest.raises(RuntimeError, match="no item of the training dataset is readable"):
        RefillStream([None, None], seed=0).take(1)
