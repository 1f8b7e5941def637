"""Supervised warm start that leaves the tiny model knowing more than it says.

Phase 1 teaches mostly leaf labels (plus some type and family labels, so the whole hierarchy is
learnt); phase 2 then shifts the label mix towards family and type answers. The result answers
generically when greedy, while its samples still contain the leaf: the paper's premise at
laptop scale (the SpeciaRL paper, arXiv 2603.03197: the model knows more than it says). The result
is cached next to the base model.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import shutil
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from transformers import Qwen2_5_VLForConditionalGeneration

from speciarl.built_models.tiny import TinyQwenSpec, ensure_tiny_qwen, publish_folder
from speciarl.core.prompts import format_answer
from speciarl.core.rollouts import PromptBatch, Rollout
from speciarl.data.synthetic import COLOURS, KIND_CLEAN, SyntheticShapes, leaf_name
from speciarl.policy.policy import Policy, token_logprobs
from speciarl.policy.processor import load_processor

log = logging.getLogger(__name__)
# Warm starts shipped with the package (folder name = the cache's, fingerprint included): used
# instead of building when present, so that a table regenerates from the very same base.
SHIPPED_DIR = Path(__file__).resolve().parent / "shipped"
REBUILD_ENV = "SPECIARL_REBUILD_WARM_START"


@dataclass(frozen=True)
class Phase:
    """``steps`` SFT steps at peak ``lr`` with labels drawn leaf/type/family by these weights.

    ``hard``: the leaf/type/family weights for clean images of the spec's ``hard_types`` (so that
    their leaf is known but rarely said); None uses the phase's weights for every image.
    """

    steps: int
    lr: float
    leaf: float
    type: float
    family: float
    hard: tuple[float, float, float] | None = None


@dataclass(frozen=True)
class WarmStartSpec:
    phases: tuple[Phase, ...] = field(
        default_factory=lambda: (
            Phase(steps=1200, lr=4e-3, leaf=0.8, type=0.1, family=0.1),
            Phase(steps=250, lr=2e-3, leaf=0.2, type=0.3, family=0.5),
        )
    )
    batch_size: int = 64
    bank_size: int = 6144
    ambiguous_fraction: float = 0.3
    seed: int = 1234
    warmup_steps: int = 20
    # Shape types whose clean images follow each phase's ``hard`` label mix.
    hard_types: tuple[str, ...] = ()
    # Restrict the SFT images to these shape types (default: all); the SFT baseline uses the
    # in-domain types only.
    types: tuple[str, ...] = ()
    # Shape types whose colour the warm start never teaches: a clean image of one of them gets a
    # leaf label with a uniformly drawn colour every time it is drawn, so the base learns the type
    # but is unsure of the leaf (a knowledge gap on a clean image, with no visual cue).
    confusable_types: tuple[str, ...] = ()
    # Share of steps that use the "be specific" prompt with leaf labels (grey and confusable
    # images included, so the base then guesses): a base that follows that instruction.
    instruction_share: float | None = None

    def fingerprint(self, base: TinyQwenSpec) -> str:
        payload = json.dumps(
            {"warm": _without_unset(asdict(self)), "base": base.fingerprint()}, sort_keys=True
        )
        return hashlib.sha256(payload.encode()).hexdigest()[:12]


def _without_unset(value: object) -> object:
    """Drop None / empty options, so that adding an option keeps older recipes' cache keys."""
    if isinstance(value, dict):
        return {k: _without_unset(v) for k, v in value.items() if v is not None and v != () and v != []}
    if isinstance(value, list | tuple):
        return [_without_unset(v) for v in value]
    return value


class _Bank:
    """Pre-encoded images so that an SFT step is only a forward and a backward."""

    def __init__(self, policy: Policy, spec: WarmStartSpec) -> None:
        data = SyntheticShapes(
            spec.bank_size,
            seed=spec.seed,
            ambiguous_fraction=spec.ambiguous_fraction,
            types=spec.types or None,
        )
        self.samples = [data[i] for i in range(len(data))]
        blocks, prompt = [], None
        for start in range(0, len(self.samples), 512):
            enc = policy.encode_prompts(self.samples[start : start + 512])
            blocks.extend(torch.split(enc.pixel_values, enc.image_grid_thw.prod(-1).tolist()))
            if prompt is None:
                prompt = enc.select([0])
            if not torch.equal(enc.input_ids, prompt.input_ids.expand_as(enc.input_ids)):
                raise RuntimeError("warm start expects every prompt to encode to the same tokens")
        self.blocks = blocks
        self.prompts = {"base": prompt}
        if spec.instruction_share:
            # Same image tokens, a longer text: encoded once from the first image.
            specific = Policy(policy.model, policy.processor, "be_specific")
            self.prompts["be_specific"] = specific.encode_prompts(self.samples[:1])
        self.labels_by_level = [(s.label, s.tags["type"], s.tags["family"]) for s in self.samples]
        self.is_hard = self._clean_of(spec.hard_types)
        self.is_confusable = self._clean_of(spec.confusable_types)

    def _clean_of(self, types: tuple[str, ...]) -> np.ndarray:
        wanted = set(types)
        return np.array(
            [s.tags["type"] in wanted and s.tags["kind"] == KIND_CLEAN for s in self.samples], dtype=bool
        )

    def labels(self, rows: np.ndarray, levels: np.ndarray, rng: np.random.Generator) -> list[str]:
        """The label of each row at its level; a confusable image's leaf gets a random colour."""
        labels = []
        for r, lv in zip(rows, levels, strict=True):
            if lv == 0 and self.is_confusable[r]:
                colour = list(COLOURS)[int(rng.integers(len(COLOURS)))]
                labels.append(leaf_name(colour, self.labels_by_level[r][1]))
            else:
                labels.append(self.labels_by_level[r][lv])
        return labels

    def batch(self, rows: np.ndarray, labels: list[str], policy: Policy, prompt: str = "base") -> Rollout:
        answers = [format_answer(label) for label in labels]
        encoded = [policy.tokenizer.encode(a, add_special_tokens=False) + [policy.eos_id] for a in answers]
        width = max(len(e) for e in encoded)
        ids = torch.full((len(rows), width), policy.eos_id, dtype=torch.long)
        mask = torch.zeros((len(rows), width), dtype=torch.bool)
        for i, e in enumerate(encoded):
            ids[i, : len(e)] = torch.tensor(e)
            mask[i, : len(e)] = True
        n, encoded_prompt = len(rows), self.prompts[prompt]
        prompts = PromptBatch(
            input_ids=encoded_prompt.input_ids.expand(n, -1),
            attention_mask=encoded_prompt.attention_mask.expand(n, -1),
            mm_token_type_ids=encoded_prompt.mm_token_type_ids.expand(n, -1),
            pixel_values=torch.cat([self.blocks[r] for r in rows]),
            image_grid_thw=encoded_prompt.image_grid_thw.expand(n, -1),
        )
        return Rollout(prompts, ids, mask, answers, torch.zeros(n, dtype=torch.bool), group_size=1)


def supervised_warm_start(policy: Policy, spec: WarmStartSpec) -> list[float]:
    """Run the phases in place on ``policy.model``; returns the loss of every step."""
    torch.manual_seed(spec.seed)
    rng = np.random.default_rng(spec.seed)
    bank = _Bank(policy, spec)
    model = policy.model
    model.train()
    losses: list[float] = []
    for phase_index, phase in enumerate(spec.phases):
        opt = torch.optim.AdamW(model.parameters(), lr=phase.lr, weight_decay=0.01)
        weights = _normalised((phase.leaf, phase.type, phase.family))
        hard_weights = _normalised(phase.hard) if phase.hard is not None else weights
        start = time.perf_counter()
        for step in range(phase.steps):
            for group in opt.param_groups:
                group["lr"] = phase.lr * _schedule(step, phase.steps, spec.warmup_steps)
            rows, labels, prompt = _draw(bank, spec, rng, weights, hard_weights)
            batch = bank.batch(rows, labels, policy, prompt)
            logp = token_logprobs(model, batch, policy.suppress_ids)
            loss = -(logp.sum() / batch.completion_mask.sum())
            opt.zero_grad(set_to_none=True)
            loss.backward()
            loss = loss.detach()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            losses.append(float(loss))
            if (step + 1) % 100 == 0:
                log.info(
                    "warm start phase %d step %d/%d loss %.3f (%.1f s)",
                    phase_index + 1,
                    step + 1,
                    phase.steps,
                    np.mean(losses[-100:]),
                    time.perf_counter() - start,
                )
    return losses


def supervised_baseline(
    policy: Policy, seed: int, steps: int, colourless_types: tuple[str, ...] = ()
) -> list[float]:
    """The paper's SFT baseline: continue the warm start's SFT on leaf labels of in-domain images.

    ``colourless_types``: types whose images tell nothing of their leaf's colour in the benchmark
    (confusable types painted at random); their leaf labels get a random colour here too, so the
    baseline sees the benchmark's own relation between image and label.
    """
    from speciarl.data.shapes_benchmark import IN_DOMAIN_FAMILIES, family_types

    spec = WarmStartSpec(
        phases=(Phase(steps=steps, lr=1e-3, leaf=1.0, type=0.0, family=0.0),),
        bank_size=2048,
        seed=101_000 + seed,
        types=tuple(family_types(IN_DOMAIN_FAMILIES)),
        confusable_types=colourless_types,
    )
    return supervised_warm_start(policy, spec)


def _draw(
    bank: _Bank, spec: WarmStartSpec, rng: np.random.Generator, weights: np.ndarray, hard_weights: np.ndarray
) -> tuple[np.ndarray, list[str], str]:
    """One step's images, labels and prompt preset."""
    rows = rng.integers(0, len(bank.samples), size=spec.batch_size)
    # The draw is skipped when unset, so older recipes keep their random stream (and weights).
    if spec.instruction_share and rng.random() < spec.instruction_share:
        return rows, bank.labels(rows, np.zeros(len(rows), dtype=int), rng), "be_specific"
    levels = rng.choice(3, size=spec.batch_size, p=weights)
    hard_rows = bank.is_hard[rows]
    if hard_rows.any():
        levels[hard_rows] = rng.choice(3, size=int(hard_rows.sum()), p=hard_weights)
    return rows, bank.labels(rows, levels, rng), "base"


def _normalised(weights: tuple[float, ...]) -> np.ndarray:
    w = np.asarray(weights, dtype=float)
    if w.shape != (3,) or (w < 0).any() or w.sum() <= 0:
        raise ValueError(
            f"label weights must be three non-negative numbers (leaf, type, family), got {weights}"
        )
    return w / w.sum()


def _schedule(step: int, total: int, warmup: int) -> float:
    """Linear warm-up, then linear decay to 5% of the peak."""
    if step < warmup:
        return (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return max(0.05, 1.0 - 0.95 * progress)


def ensure_warm_started(
    base: TinyQwenSpec | None = None, spec: WarmStartSpec | None = None, root: Path | None = None
) -> Path:
    """The folder of the warm-started tiny model, training and caching it on first use."""
    base = base or TinyQwenSpec()
    spec = spec or WarmStartSpec()
    base_folder = ensure_tiny_qwen(base, root)
    folder = base_folder.parent / f"warm-{spec.fingerprint(base)}"
    if (folder / "config.json").is_file():
        return folder
    shipped = SHIPPED_DIR / folder.name
    if (shipped / "config.json").is_file() and os.environ.get(REBUILD_ENV) != "1":
        log.info("using the shipped warm start %s (set %s=1 to build it instead)", shipped, REBUILD_ENV)
        staging = Path(tempfile.mkdtemp(prefix="warm-", dir=folder.parent))
        try:
            shutil.copytree(shipped, staging, dirs_exist_ok=True)
            publish_folder(staging, folder)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        return folder
    log.info("warm-starting the tiny model (first run only; cached in %s)", folder)
    started = time.perf_counter()
    # One thread: float sums then come out the same whatever the caller's thread count, and the
    # result is worth it. With 2 threads the benchmark recipe once produced a much weaker base
    # (docs/results-and-reproduction.md, "The warm start is fragile").
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        model = Qwen2_5_VLForConditionalGeneration.from_pretrained(base_folder)
        processor = load_processor(str(base_folder))
        policy = Policy(model, processor)
        losses = supervised_warm_start(policy, spec)
    finally:
        torch.set_num_threads(threads)
    staging = Path(tempfile.mkdtemp(prefix="warm-", dir=folder.parent))
    try:
        model.save_pretrained(staging)
        processor.save_pretrained(staging)
        info = {
            "spec": asdict(spec),
            "final_loss": float(np.mean(losses[-50:])) if losses else math.nan,
            "seconds": time.perf_counter() - started,
            "torch_threads": 1,
            "torch": torch.__version__,
        }
        (staging / "speciarl_warm_start.json").write_text(json.dumps(info, indent=1))
        publish_folder(staging, folder)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return folder
