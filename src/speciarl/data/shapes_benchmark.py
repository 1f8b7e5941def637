"""The reproduction benchmark: coloured shapes tagged by kind and by domain.

Built on the embedded shapes (``speciarl.data.synthetic``), with two axes the paper's result needs:

* **domain**: RL trains on some families (``in_domain``); evaluation also covers families held
  out of RL (``out_of_domain``), as the paper trains on CUB and evaluates on five other datasets.
  The warm start sees every family, so the base knows the held-out ones too.
* **kind** of every image:
  ``easy``: a clean image of an ordinary type (the base sometimes says the leaf);
  ``hard``: a clean image of a hard-to-sample type, whose leaf the warm start rarely says, so the
  leaf is known but rarely sampled (a static reward's groups start all-zero there);
  ``confusable``: a clean image of a type whose colour the warm start never teaches (its leaf
  labels there carry a random colour), so the base knows the type but gets the leaf right only
  by chance (1 in 4): a knowledge gap with no visual cue, unlike the grey images. With
  ``confusable_colour="random"`` the image is painted in a colour drawn independently of its
  leaf, so the gap stays a gap under RL too (nothing on the image tells the leaf); with
  ``"shown"`` the image shows the leaf's colour, and RL can learn what the warm start did not;
  ``unknowable``: a grey image, where only the type can be told: the leaf is one of k = 4 colours,
  wide enough for group size G when ``parent_answer_is_stable(k, G)``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from speciarl.core.samples import Sample
from speciarl.data.synthetic import COLOURS, FAMILIES, KIND_AMBIGUOUS, SyntheticShapes, render_shape

IN_DOMAIN_FAMILIES: tuple[str, ...] = ("round", "angular", "linear")
HELD_OUT_FAMILIES: tuple[str, ...] = ("spiky",)
# One per family; must match the ``hard_types`` of the warm start (conf/model/tiny_benchmark.yaml).
HARD_TYPES: tuple[str, ...] = ("ring", "diamond", "pillar", "star")
# One per family; must match the ``confusable_types`` of the warm start (tiny_benchmark.yaml).
CONFUSABLE_TYPES: tuple[str, ...] = ("oval", "square", "slash", "saltire")
KIND_EASY = "easy"
KIND_HARD = "hard"
KIND_CONFUSABLE = "confusable"
KIND_UNKNOWABLE = "unknowable"
KINDS = (KIND_EASY, KIND_HARD, KIND_CONFUSABLE, KIND_UNKNOWABLE)
DOMAIN_IN = "in_domain"
DOMAIN_OUT = "out_of_domain"
CONFUSABLE_COLOURS = ("shown", "random")


def parent_answer_is_stable(k: int, group_size: int) -> bool:
    """(1 - 1/k)^(G-1) > 1/k: under SpeciaRL a correct parent beats a k-way leaf guess in a group of G.

    A leaf guess is rewarded with probability 1/k; a correct parent answer only when none of the
    other G - 1 rollouts guesses the right leaf, which (if they all guess) has probability
    (1 - 1/k)^(G-1): the group-relative reward of the SpeciaRL paper (arXiv 2603.03197), Sec. 3.
    """
    if k < 1 or group_size < 1:
        raise ValueError(f"k and group_size must be positive, got k={k}, group_size={group_size}")
    return (1 - 1 / k) ** (group_size - 1) > 1 / k


def family_types(families: Sequence[str]) -> list[str]:
    """The shape types of these families, in taxonomy order."""
    unknown = set(families) - set(FAMILIES)
    if unknown:
        raise ValueError(f"unknown families {sorted(unknown)}; expected some of {list(FAMILIES)}")
    return [t for f in families for t in FAMILIES[f]]


class ShapesBenchmark(SyntheticShapes):
    """Shapes of the given families, each sample tagged ``kind``, ``domain`` and ``slice`` (domain/kind).

    Args:
        size: number of samples.
        seed: the split's seed (every split, held-out ones included, has its own).
        families: the families drawn from (default: the in-domain ones).
        domain: the domain tag of every sample (``in_domain`` or ``out_of_domain``).
        unknowable_fraction: share of grey images (leaf unknowable, type visible).
        hard_types: types whose clean images are tagged ``hard``.
        confusable_types: types whose clean images are tagged ``confusable`` (the benchmark's
            config sets ``CONFUSABLE_TYPES``; none by default).
        confusable_colour: ``shown`` (a confusable image shows its leaf's colour) or ``random``
            (it is painted in a colour drawn independently of its leaf, recorded in the tag
            ``shown_colour``: a gap no training on these images can close).
        image_size: side of the square image in pixels.
    """

    def __init__(
        self,
        size: int,
        seed: int,
        families: Sequence[str] = IN_DOMAIN_FAMILIES,
        domain: str = DOMAIN_IN,
        unknowable_fraction: float = 0.3,
        hard_types: Sequence[str] = HARD_TYPES,
        confusable_types: Sequence[str] = (),
        confusable_colour: str = "shown",
        image_size: int = 32,
    ) -> None:
        if domain not in (DOMAIN_IN, DOMAIN_OUT):
            raise ValueError(f"domain must be {DOMAIN_IN!r} or {DOMAIN_OUT!r}, got {domain!r}")
        if confusable_colour not in CONFUSABLE_COLOURS:
            raise ValueError(
                f"confusable_colour must be one of {CONFUSABLE_COLOURS}, got {confusable_colour!r}"
            )
        super().__init__(
            size,
            seed,
            ambiguous_fraction=unknowable_fraction,
            image_size=image_size,
            types=family_types(families),
        )
        self.families = tuple(families)
        self.domain = domain
        self.hard_types = frozenset(hard_types)
        self.confusable_types = frozenset(confusable_types)
        self.confusable_colour = confusable_colour
        if self.hard_types & self.confusable_types:
            raise ValueError(
                f"a type cannot be both hard and confusable: {sorted(self.hard_types & self.confusable_types)}"
            )

    def __getitem__(self, index: int) -> Sample:
        sample = super().__getitem__(index)
        if sample.tags["kind"] == KIND_AMBIGUOUS:
            kind = KIND_UNKNOWABLE
        elif sample.tags["type"] in self.hard_types:
            kind = KIND_HARD
        elif sample.tags["type"] in self.confusable_types:
            kind = KIND_CONFUSABLE
        else:
            kind = KIND_EASY
        sample.tags.update(kind=kind, domain=self.domain, slice=f"{self.domain}/{kind}")
        if kind == KIND_CONFUSABLE and self.confusable_colour == "random":
            sample = self._repaint_at_random(sample, index)
        sample.sample_id = f"bench-{self.domain}-{sample.sample_id}"
        return sample

    def _repaint_at_random(self, sample: Sample, index: int) -> Sample:
        """Paint the shape in a colour drawn from its own stream, independent of the leaf's colour.

        The label keeps the leaf's colour: the image then carries the type but nothing of the
        leaf, which is exactly what the warm start taught about these types (a random colour
        for the same image), so the base needs no rebuild.
        """
        rng = np.random.default_rng([self.seed, index, 1])
        shown = list(COLOURS)[int(rng.integers(len(COLOURS)))]
        sample.image = render_shape(sample.tags["type"], COLOURS[shown], rng, self.image_size)
        sample.tags["shown_colour"] = shown
        return sample


class ConcatSamples:
    """Several sample datasets read as one (the held-out split: in domain, then out of domain)."""

    def __init__(self, parts: Sequence[SyntheticShapes]) -> None:
        if not parts:
            raise ValueError("ConcatSamples needs at least one dataset")
        self.parts = list(parts)

    def __len__(self) -> int:
        return sum(len(p) for p in self.parts)

    def __getitem__(self, index: int) -> Sample:
        if index < 0:
            raise IndexError(f"index {index} out of range")
        for part in self.parts:
            if index < len(part):
                return part[index]
            index -= len(part)
        raise IndexError("index out of range")


UNKNOWABLE_WIDTH = len(COLOURS)  # a grey image's leaf is one of the four colours of its type
