"""Side-by-side RL step time: speciarl vs TRL's GRPOTrainer vs the floor, in one run.

Three contenders run the same warm-started tiny Qwen2.5-VL on the same synthetic batches (same
seed, prompts x rollouts, response budget, sampling settings, thread count), each in its own
child process of this one (so each has its own peak-RSS figure and none warms the others' caches):

* ``ours``: ``SpeciaRLModule`` driven by a real Lightning ``Trainer(max_steps=...)``, built from
  the real Hydra config (``experiment=dapo_speciarl`` with the benchmark's overrides);
* ``trl``: ``trl.GRPOTrainer`` configured as close to ours as it allows (fp32, no gradient
  checkpointing, DAPO token-mean loss, clip 0.2/0.28, beta = KL coefficient, AdamW at the same
  lr / weight decay / grad clip, constant lr, same suppressed tokens), rewarded by our judge and
  the SpeciaRL reward;
* ``floor``: one bare ``generate`` of the pre-encoded batch plus one bare forward + backward of the
  policy on the generated tokens (stock model call, no optimiser step): what any trainer must pay.

Step time is wall time between the ends of consecutive optimiser steps (data loading included
for ``ours`` and ``trl``); the first ``--warmup`` steps are dropped and the median of the rest is
reported. ``--rounds`` repeats the three in rotated order, to spread a noisy machine's bursts.

    python benchmarks/step_time.py                      # 16 prompts x 8 rollouts, 32 new tokens
    python benchmarks/step_time.py --quick              # CI smoke: seconds, no timing asserts
    python benchmarks/step_time.py --rollouts 16 --new-tokens 64 --force-length

``--force-length`` sets ``min_new_tokens = new_tokens`` for all three contenders, so every
response has exactly that many tokens (the warm-started tiny model otherwise stops after ~7).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
CONTENDERS = ("ours", "trl", "floor")
RESULT_TAG = "STEP_TIME_RESULT "
# The phases SpeciaRLModule times itself (train/time_*).
PHASES = ("rollout", "judge", "old_ref_logprobs", "update")


@dataclass
class Spec:
    """Everything the three contenders share."""

    prompts: int = 16
    rollouts: int = 8
    new_tokens: int = 32
    force_length: bool = False
    steps: int = 12
    warmup: int = 3
    kl_coef: float = 0.0
    lr: float = 1e-4
    seed: int = 0
    data_seed: int = 1
    threads: int = 1
    dtype: str = "float32"
    # "tiny" (the warm-started tiny model) or "3b-random" (Qwen2.5-VL-3B's widths, random weights,
    # LoRA r 16 / alpha 32 as model=qwen2_5_vl_3b_random; layers / vision_blocks cut the depth).
    model: str = "tiny"
    layers: int | None = None
    vision_blocks: int | None = None
    image_size: int | None = None  # None: the dataset's default
    # Extra Hydra overrides for ours only (e.g. module.logprob_token_budget=8192).
    ours_overrides: list[str] = field(default_factory=list)

    @property
    def total_steps(self) -> int:
        return self.warmup + self.steps

    @property
    def min_new_tokens(self) -> int:
        return self.new_tokens if self.force_length else 0


@dataclass
class Result:
    contender: str
    step_seconds: list[float]
    peak_rss_mb: float
    setup_rss_mb: float
    phases: dict[str, list[float]] = field(default_factory=dict)
    load: tuple[float, float] = (0.0, 0.0)
    response_length: float = float("nan")


# ---------------------------------------------------------------------- helpers shared by children
def _rss_mb() -> float:
    """Current resident set size of this process (Linux /proc), in MiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _peak_rss_mb() -> float:
    """High-water mark of this process's RSS (ru_maxrss is KiB on Linux)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _dataset(spec: Spec):
    from speciarl.data.synthetic import SyntheticShapes

    size = {"image_size": spec.image_size} if spec.image_size else {}
    return SyntheticShapes(spec.prompts * spec.total_steps, seed=spec.data_seed, **size)


def _policy(spec: Spec):
    """The policy TRL and the floor train: the one ``ours`` builds from its config, built directly."""
    if spec.model == "3b-random":
        from speciarl.built_models.random_qwen import random_qwen_policy

        lora = {"r": 16, "alpha": 32}
        return random_qwen_policy("3b", spec.layers, spec.vision_blocks, dtype=spec.dtype, lora=lora)
    from speciarl.built_models.tiny_loading import tiny_policy

    return tiny_policy(dtype=spec.dtype)


def _setup_child(spec: Spec) -> None:
    import torch

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("WANDB_MODE", "disabled")
    torch.set_num_threads(spec.threads)
    torch.manual_seed(spec.seed)


# ---------------------------------------------------------------------- (a) ours
def run_ours(spec: Spec) -> Result:
    """SpeciaRLModule.training_step under a real Lightning Trainer, from the real Hydra config."""
    from hydra import compose, initialize_config_dir
    from hydra.utils import instantiate
    from lightning.pytorch import Callback, seed_everything
    from omegaconf import open_dict

    from speciarl.train import CONF_DIR, build_module

    overrides = [
        "experiment=dapo_speciarl",
        "logger=none",
        f"seed={spec.seed}",
        f"algorithm.group_size={spec.rollouts}",
        f"optimizer.lr={spec.lr}",
        f"data.batch_size={spec.prompts}",
        f"data.train.size={spec.prompts * spec.total_steps}",
        f"data.train.seed={spec.data_seed}",
        "data.val=null",
        f"rollout.max_new_tokens={spec.new_tokens}",
        f"algorithm.kl_coef={spec.kl_coef}",
        f"trainer.max_steps={spec.total_steps}",
        "trainer.enable_progress_bar=false",
        *spec.ours_overrides,
    ]
    if spec.model == "3b-random":
        depth = {"layers": spec.layers, "vision_blocks": spec.vision_blocks}
        overrides += ["model=qwen2_5_vl_3b_random"]
        overrides += [f"model.{k}={'null' if v is None else v}" for k, v in depth.items()]
        overrides += [f"+data.train.image_size={spec.image_size}"] if spec.image_size else []
    if spec.dtype != "float32":  # (an older --variant's config may not know the key)
        overrides.append(f"model.dtype={spec.dtype}")
    if spec.min_new_tokens:
        overrides.append(f"++rollout.min_new_tokens={spec.min_new_tokens}")
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        cfg = compose(config_name="train", overrides=overrides)
    out_dir = Path(tempfile.mkdtemp(prefix="bench-ours-"))
    with open_dict(cfg):
        cfg.paths = {"output_dir": str(out_dir)}

    class StepClock(Callback):
        def __init__(self) -> None:
            self.ends: list[float] = []
            self.phases: dict[str, list[float]] = {p: [] for p in PHASES}
            self.lengths: list[float] = []

        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
            self.ends.append(time.perf_counter())
            metrics = trainer.callback_metrics
            for phase in PHASES:
                value = metrics.get(f"train/time_{phase}")
                self.phases[phase].append(float(value) if value is not None else 0.0)
            self.lengths.append(float(metrics.get("train/response_length", float("nan"))))

    seed_everything(spec.seed, workers=True)
    module, datamodule = build_module(cfg)
    clock = StepClock()
    trainer = instantiate(cfg.trainer, logger=False, callbacks=[clock], default_root_dir=str(out_dir))
    setup_rss = _rss_mb()
    trainer.fit(module, datamodule=datamodule)
    if len(clock.ends) != spec.total_steps:
        raise RuntimeError(f"ours ran {len(clock.ends)} steps, expected {spec.total_steps}")
    steps = [b - a for a, b in zip(clock.ends[spec.warmup - 1 :], clock.ends[spec.warmup :])]
    # The first measured step's start is the end of the last warm-up step.
    phases = {p: v[spec.warmup :] for p, v in clock.phases.items()}
    return Result(
        "ours",
        steps,
        _peak_rss_mb(),
        setup_rss,
        phases,
        response_length=statistics.fmean(clock.lengths[spec.warmup :]),
    )


# ---------------------------------------------------------------------- (b) TRL
def run_trl(spec: Spec) -> Result:
    """trl.GRPOTrainer on the same model, data and reward."""
    from datasets import Dataset
    from transformers import TrainerCallback
    from trl import GRPOConfig, GRPOTrainer

    from speciarl.core.categories import extract_answer
    from speciarl.data.synthetic import shapes_taxonomy
    from speciarl.rl.rewards import SpeciaRLReward
    from speciarl.verifier.taxonomy_judge import TaxonomyJudge

    policy = _policy(spec)
    data = _dataset(spec)
    samples = [data[i] for i in range(len(data))]
    prompt = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": policy.prompt}]}]
    dataset = Dataset.from_dict(
        {
            "prompt": [prompt] * len(samples),
            "image": [s.image for s in samples],
            "label": [s.label for s in samples],
        }
    )
    judge = TaxonomyJudge(shapes_taxonomy())
    reward = SpeciaRLReward("all")
    G = spec.rollouts
    lengths: list[float] = []

    def speciarl_reward(completions, label, completion_ids, **_: Any) -> list[float]:
        """Our judge + SpeciaRL reward; TRL hands over G consecutive rollouts per prompt."""
        texts = [c[-1]["content"] if isinstance(c, list) else c for c in completions]
        if len(texts) % G:
            raise RuntimeError(f"TRL passed {len(texts)} completions, not a multiple of G={G}")
        for start in range(0, len(label), G):
            if len(set(label[start : start + G])) != 1:
                raise RuntimeError("TRL's completions are not grouped G per prompt in order")
        lengths.append(statistics.fmean(len(ids) for ids in completion_ids))
        judgements = judge.judge(list(label), [extract_answer(t) for t in texts])
        groups = [judgements[i : i + G] for i in range(0, len(judgements), G)]
        return reward(groups).flatten().tolist()

    generation_kwargs: dict[str, Any] = {"suppress_tokens": policy.suppress_ids}
    if spec.min_new_tokens:
        generation_kwargs["min_new_tokens"] = spec.min_new_tokens
    out_dir = tempfile.mkdtemp(prefix="bench-trl-")
    config = GRPOConfig(
        output_dir=out_dir,
        use_cpu=True,
        bf16=spec.dtype == "bfloat16",
        gradient_checkpointing=False,
        seed=spec.seed,
        max_steps=spec.total_steps,
        per_device_train_batch_size=spec.prompts * G,
        num_generations=G,
        max_completion_length=spec.new_tokens,
        temperature=1.0,
        top_p=1.0,
        top_k=0,
        generation_kwargs=generation_kwargs,
        loss_type="dapo",
        epsilon=0.2,
        epsilon_high=0.28,
        beta=spec.kl_coef,
        scale_rewards="group",
        num_iterations=1,
        learning_rate=spec.lr,
        lr_scheduler_type="constant",
        weight_decay=0.01,
        max_grad_norm=1.0,
        optim="adamw_torch",
        logging_steps=10**6,
        report_to=[],
        save_strategy="no",
        dataloader_num_workers=0,
        disable_tqdm=True,
    )

    class StepClock(TrainerCallback):
        def __init__(self) -> None:
            self.ends: list[float] = []

        def on_step_end(self, args, state, control, **kwargs) -> None:
            self.ends.append(time.perf_counter())

    clock = StepClock()
    trainer = GRPOTrainer(
        model=policy.model,
        reward_funcs=[speciarl_reward],
        args=config,
        train_dataset=dataset,
        processing_class=policy.processor,
        callbacks=[clock],
    )
    setup_rss = _rss_mb()
    trainer.train()
    if len(clock.ends) != spec.total_steps:
        raise RuntimeError(f"TRL ran {len(clock.ends)} steps, expected {spec.total_steps}")
    steps = [b - a for a, b in zip(clock.ends[spec.warmup - 1 :], clock.ends[spec.warmup :])]
    return Result(
        "trl",
        steps,
        _peak_rss_mb(),
        setup_rss,
        response_length=statistics.fmean(lengths[spec.warmup :]),
    )


# ---------------------------------------------------------------------- (c) the floor
def run_floor(spec: Spec) -> Result:
    """Bare generate + bare forward/backward on the same batches (prompts pre-encoded, untimed)."""
    import torch
    import torch.nn.functional as F

    policy = _policy(spec)
    model = policy.model
    data = _dataset(spec)
    G = spec.rollouts
    batches = [
        policy.encode_prompts([data[b * spec.prompts + i] for i in range(spec.prompts)])
        for b in range(spec.total_steps)
    ]
    setup_rss = _rss_mb()
    ends: list[float] = [time.perf_counter()]
    lengths: list[float] = []
    for prompts in batches:
        model.eval()
        with torch.no_grad():
            out = model.generate(
                **prompts.model_inputs(),
                num_return_sequences=G,
                do_sample=True,
                top_k=0,
                top_p=1.0,
                temperature=1.0,
                max_new_tokens=spec.new_tokens,
                min_new_tokens=spec.min_new_tokens,
                pad_token_id=policy.pad_id,
                eos_token_id=policy.eos_id,
            )
        model.train()
        raw = out[:, prompts.input_ids.shape[1] :]
        ids, mask, _ = policy.completion_tensors(raw)
        lengths.append(float(mask.sum(-1).float().mean()))
        rows = prompts.repeat(G)
        logits = model(
            input_ids=torch.cat([rows.input_ids, ids], 1),
            attention_mask=torch.cat([rows.attention_mask, mask.long()], 1),
            mm_token_type_ids=torch.cat([rows.mm_token_type_ids, torch.zeros_like(ids)], 1),
            pixel_values=rows.pixel_values,
            image_grid_thw=rows.image_grid_thw,
            logits_to_keep=ids.shape[1] + 1,
            use_cache=False,
        ).logits[:, :-1]
        loss = F.cross_entropy(logits.flatten(0, 1).float(), torch.where(mask, ids, -100).flatten())
        loss.backward()
        ends.append(time.perf_counter())
        model.zero_grad(set_to_none=True)
    steps = [b - a for a, b in zip(ends[spec.warmup : -1], ends[spec.warmup + 1 :])]
    return Result(
        "floor", steps, _peak_rss_mb(), setup_rss, response_length=statistics.fmean(lengths[spec.warmup :])
    )


RUNNERS = {"ours": run_ours, "trl": run_trl, "floor": run_floor}


def child_main(name: str, spec: Spec) -> None:
    _setup_child(spec)
    load_before = os.getloadavg()[0]
    result = RUNNERS[name](spec)
    result.load = (load_before, os.getloadavg()[0])
    print(RESULT_TAG + json.dumps(asdict(result)), flush=True)


# ---------------------------------------------------------------------- parent
def run_child(name: str, spec: Spec, timeout: float, src_dir: Path | None = None) -> Result:
    """One contender in a fresh interpreter; ``src_dir`` runs ``ours`` from another source tree."""
    env = dict(os.environ)
    src = str(src_dir or REPO / "src")
    env["PYTHONPATH"] = src + os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else src
    env.update(
        {
            "OMP_NUM_THREADS": str(spec.threads),
            "MKL_NUM_THREADS": str(spec.threads),
            "TOKENIZERS_PARALLELISM": "false",
            "HF_HUB_OFFLINE": "1",
            "WANDB_MODE": "disabled",
            "LITLOGGER_DISABLE_TIP": "1",
            "PYTHONWARNINGS": "ignore",
        }
    )
    kind = name.split("@")[0]
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child", kind, "--spec", json.dumps(asdict(spec))]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)
    lines = [line for line in proc.stdout.splitlines() if line.startswith(RESULT_TAG)]
    if proc.returncode != 0 or not lines:
        sys.stderr.write(proc.stdout[-4000:] + "\n" + proc.stderr[-8000:] + "\n")
        raise RuntimeError(f"contender {name!r} failed (exit code {proc.returncode}); its output is above")
    payload = json.loads(lines[-1][len(RESULT_TAG) :])
    payload["load"] = tuple(payload["load"])
    payload["contender"] = name
    return Result(**payload)


def trl_available() -> bool:
    try:
        import importlib.util

        return (
            importlib.util.find_spec("trl") is not None and importlib.util.find_spec("datasets") is not None
        )
    except ValueError:
        return False


def summarise(results: dict[str, list[Result]], spec: Spec) -> dict[str, Any]:
    """Medians over all rounds, per-round ratios, memory, and where our time goes."""
    summary: dict[str, Any] = {"spec": asdict(spec), "contenders": {}}
    for name, runs in results.items():
        steps = [s for r in runs for s in r.step_seconds]
        summary["contenders"][name] = {
            "median_s": statistics.median(steps),
            "min_s": min(steps),
            "steps": len(steps),
            "round_medians_s": [statistics.median(r.step_seconds) for r in runs],
            "peak_rss_mb": max(r.peak_rss_mb for r in runs),
            "setup_rss_mb": max(r.setup_rss_mb for r in runs),
            "response_length": statistics.fmean(r.response_length for r in runs),
            "load": [r.load for r in runs],
        }
    med = {n: c["median_s"] for n, c in summary["contenders"].items()}
    rounds = len(next(iter(results.values())))
    ours_like = [n for n in results if n.split("@")[0] == "ours"]
    for mine in ours_like:
        for other in ("trl", "floor"):
            if other in med:
                summary[f"{mine}/{other}"] = med[mine] / med[other]
                summary[f"{mine}/{other}_per_round"] = [
                    statistics.median(results[mine][i].step_seconds)
                    / statistics.median(results[other][i].step_seconds)
                    for i in range(rounds)
                ]
        phases = {}
        for phase in PHASES:
            values = [v for r in results[mine] for v in r.phases.get(phase, [])]
            phases[phase] = statistics.median(values) if values else 0.0
        phases["other"] = max(0.0, med[mine] - sum(phases.values()))
        summary[f"{mine}_breakdown_s"] = phases
    return summary


def _model_line(spec: dict[str, Any]) -> str:
    if spec.get("model", "tiny") == "tiny":
        return "the warm-started tiny Qwen2.5-VL"
    depth = f"{spec['layers'] or 36} layers, {spec['vision_blocks'] or 32} vision blocks"
    return f"Qwen2.5-VL-3B widths, random weights, {depth}, LoRA r 16, images {spec['image_size'] or 'default'} px"


def report(summary: dict[str, Any]) -> str:
    spec = summary["spec"]
    lines = [
        f"step time: {spec['prompts']} prompts x {spec['rollouts']} rollouts, "
        f"{'exactly' if spec['force_length'] else 'up to'} {spec['new_tokens']} new tokens, "
        f"kl_coef {spec['kl_coef']}, {spec['dtype']}, {spec['threads']} thread(s), {spec['steps']} steps after "
        f"{spec['warmup']} warm-up, {len(next(iter(summary['contenders'].values()))['round_medians_s'])} round(s)",
        f"model: {_model_line(spec)}",
        f"{'contender':<14}{'median s':>10}{'min s':>9}{'peak RSS MiB':>14}{'RSS at start':>14}"
        f"{'resp len':>10}  load (before, after)",
    ]
    for name, c in summary["contenders"].items():
        load = ", ".join(f"({a:.2f}, {b:.2f})" for a, b in c["load"])
        lines.append(
            f"{name:<14}{c['median_s']:>10.3f}{c['min_s']:>9.3f}{c['peak_rss_mb']:>14.0f}"
            f"{c['setup_rss_mb']:>14.0f}{c['response_length']:>10.1f}  {load}"
        )
    ours_like = [n for n in summary["contenders"] if n.split("@")[0] == "ours"]
    for mine in ours_like:
        for other in ("trl", "floor"):
            key = f"{mine}/{other}"
            if key in summary:
                per_round = ", ".join(f"{x:.2f}" for x in summary[f"{key}_per_round"])
                lines.append(f"{key:<20}{summary[key]:.2f}   (per round: {per_round})")
    for mine in ours_like:
        total = summary["contenders"][mine]["median_s"]
        parts = ", ".join(
            f"{k} {v:.3f} s ({100 * v / total:.0f}%)" for k, v in summary[f"{mine}_breakdown_s"].items()
        )
        lines.append(f"{mine}, median per phase: {parts}")
    return "\n".join(lines)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--prompts", type=int, default=16)
    p.add_argument("--rollouts", type=int, default=8)
    p.add_argument("--new-tokens", type=int, default=32)
    p.add_argument("--force-length", action="store_true", help="min_new_tokens = new_tokens for all")
    p.add_argument("--steps", type=int, default=12, help="measured steps per round (after warm-up)")
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--rounds", type=int, default=1, help="repeat the contenders in rotated order")
    p.add_argument("--kl-coef", type=float, default=0.0)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument(
        "--dtype",
        choices=("float32", "bfloat16"),
        default="float32",
        help="weights and activations of all three contenders (TRL: bf16=True as well)",
    )
    p.add_argument(
        "--model", choices=("tiny", "3b-random"), default="tiny", help="the policy all three train"
    )
    p.add_argument("--layers", type=int, help="3b-random: decoder layers (default all 36)")
    p.add_argument("--vision-blocks", type=int, help="3b-random: vision blocks (default all 32)")
    p.add_argument("--image-size", type=int, help="image side in pixels (448: 256 image tokens)")
    p.add_argument(
        "--ours-override",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="an extra Hydra override for ours only (repeatable), e.g. module.logprob_token_budget=null",
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--contenders", default=",".join(CONTENDERS))
    p.add_argument(
        "--variant",
        action="append",
        default=[],
        metavar="NAME=SRC",
        help="also run ours from another source tree (e.g. an older commit's src/), as ours@NAME",
    )
    p.add_argument("--quick", action="store_true", help="CI smoke: tiny batch, 3 steps, one round")
    p.add_argument("--json", type=Path, help="also write the summary here")
    p.add_argument("--timeout", type=float, default=1800, help="seconds per contender")
    p.add_argument("--child", choices=CONTENDERS, help=argparse.SUPPRESS)
    p.add_argument("--spec", help=argparse.SUPPRESS)
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    if args.child:
        child_main(args.child, Spec(**json.loads(args.spec)))
        return {}
    if args.quick:
        args.prompts, args.rollouts, args.new_tokens, args.steps, args.warmup = 4, 2, 8, 3, 1
        args.rounds = 1
    if args.steps < 1 or args.warmup < 1 or args.rounds < 1:
        raise SystemExit("--steps, --warmup and --rounds must be >= 1")
    spec = Spec(
        prompts=args.prompts,
        rollouts=args.rollouts,
        new_tokens=args.new_tokens,
        force_length=args.force_length,
        steps=args.steps,
        warmup=args.warmup,
        kl_coef=args.kl_coef,
        seed=args.seed,
        threads=args.threads,
        dtype=args.dtype,
        model=args.model,
        layers=args.layers,
        vision_blocks=args.vision_blocks,
        image_size=args.image_size,
        ours_overrides=list(args.ours_override),
    )
    names = [n.strip() for n in args.contenders.split(",") if n.strip()]
    unknown = set(names) - set(CONTENDERS)
    if unknown:
        raise SystemExit(f"unknown contenders {sorted(unknown)}: expected some of {CONTENDERS}")
    if "trl" in names and not trl_available():
        raise SystemExit("trl is not installed: pip install -e '.[bench]' (or pass --contenders ours,floor)")
    sources: dict[str, Path | None] = {n: None for n in names}
    for variant in args.variant:
        label, _, path = variant.partition("=")
        if not label or not (Path(path) / "speciarl" / "module.py").is_file():
            raise SystemExit(f"--variant expects NAME=SRC with SRC/speciarl/module.py, got {variant!r}")
        sources[f"ours@{label}"] = Path(path).resolve()
    names = list(sources)
    results: dict[str, list[Result]] = {n: [] for n in names}
    for r in range(args.rounds):
        order = names[r % len(names) :] + names[: r % len(names)]
        for name in order:
            started = time.perf_counter()
            results[name].append(run_child(name, spec, args.timeout, sources[name]))
            print(f"[round {r + 1}/{args.rounds}] {name}: {time.perf_counter() - started:.0f} s", flush=True)
    summary = summarise(results, spec)
    summary["machine"] = {"cpus": os.cpu_count(), "python": sys.version.split()[0]}
    print(report(summary))
    if args.json:
        args.json.write_text(json.dumps(summary, indent=1))
    return summary


if __name__ == "__main__":
    main()
