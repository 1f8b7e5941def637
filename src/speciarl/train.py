"""Hydra entry point: ``python -m speciarl.train algorithm=dapo reward=speciarl``.

An experiment is a choice per config group (algorithm, reward, optimizer, data, model...);
``experiment=`` presets set several groups at once. Composes the config, builds policy, data,
judge, reward, algorithm and rollout, measures the held-out split before training (greedy and
best-of-N), trains, measures again, prints the before/after table and writes it to
``results.json`` in the run folder. Every run goes through :func:`train`, the reproduction's
jobs included (they add Lightning callbacks; see ``speciarl.reproduce``).
"""

from __future__ import annotations

from speciarl.cli_help import answer_help

answer_help("train", __name__)  # before torch and Lightning load: --help in about a second

from speciarl.wait_policy import apply_wait_policy

WAIT_POLICY = apply_wait_policy()  # before torch loads libgomp: it reads the policy once

import json
import logging
import os
import signal
import sys
import time
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import hydra
import torch
from hydra.utils import instantiate
from lightning.pytorch import Callback, seed_everything
from lightning.pytorch.utilities import rank_zero_only
from lightning.pytorch.utilities.exceptions import SIGTERMException
from omegaconf import DictConfig, OmegaConf, open_dict

from speciarl.evaluation.loop import evaluate_policy, summarize_records
from speciarl.module import SpeciaRLModule
from speciarl.runs.atomic_files import write_folder_atomically, write_text_atomically
from speciarl.runs.before_cache import cache_folder, measure_once
from speciarl.runs.console import Progress, StepProgress, quiet_console
from speciarl.runs.dashboard import log_run_results
from speciarl.runs.loggers import announce_wandb, config_choice, finish_wandb, name_run
from speciarl.runs.nonfinite import refuse_nonfinite
from speciarl.runs.preemption import Preempted
from speciarl.runs.run_end import close_rollout, report_run_end, run_then_exit, wandb_run
from speciarl.runs.safety import RunSafety
from speciarl.runs.sweep import annotate_sweep_job
from speciarl.verifier.redaction import reject_url_credentials

log = logging.getLogger("speciarl.train")
# Known harmless noise of the pinned stack (pytree, gradient checkpointing and batch-transfer
# notices from torch / transformers / Lightning); real warnings still show.
warnings.filterwarnings("ignore", message=".*LeafSpec.*")
warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*")
warnings.filterwarnings("ignore", message=".*overridden `transfer_batch_to_device`.*")
CONF_DIR = str(Path(__file__).resolve().parent / "conf")


def run_tags(algorithm: DictConfig, reward: DictConfig) -> list[str]:
    """The W&B tags of a run (``tags`` in train.yaml): what it trains with, never restated per file.

    The algorithm's name, ``dynamic_sampling`` when it is on, and the reward's own name (the
    reward object is built to ask it, so ``reward=noisy reward.p=0.05`` reads ``noisy_p0.05``).
    """
    tags = [str(algorithm.name)]
    if OmegaConf.select(algorithm, "dynamic_sampling.enabled"):
        tags.append("dynamic_sampling")
    built = instantiate(reward)
    tags.append(str(getattr(built, "name", type(built).__name__)))
    return tags


def with_run_tags(cfg: DictConfig) -> DictConfig:
    """``cfg`` with ``tags`` filled from what the run trains with when the config leaves it null."""
    if cfg.get("tags") is None:
        with open_dict(cfg):
            cfg.tags = run_tags(cfg.algorithm, cfg.reward)
    return cfg


def build_module(cfg: DictConfig) -> tuple[SpeciaRLModule, Any]:
    """Instantiate everything the module needs from the composed config."""
    # Data and judge first: a config mistake there (no taxonomy) fails before the model loads.
    datamodule = instantiate(cfg.data)
    judge = instantiate(cfg.verifier)
    policy = instantiate(cfg.model)
    reward = instantiate(cfg.reward)
    algorithm = instantiate(cfg.algorithm)
    rollout = instantiate(cfg.rollout)
    module = SpeciaRLModule(
        policy=policy,
        judge=judge,
        reward=reward,
        algorithm=algorithm,
        rollout=rollout,
        optimizer=instantiate(cfg.optimizer),
        lr_scheduler=instantiate(cfg.lr_scheduler) if cfg.get("lr_scheduler") else None,
        **cfg.module,
    )
    return module, datamodule


def train(cfg: DictConfig, callbacks: Sequence[Callback] = ()) -> dict[str, Any]:
    """Run one training job; returns the before/after figures (also written to results.json).

    ``callbacks``: extra Lightning callbacks, the one hook for callers that measure more than the
    run itself (``speciarl.reproduce`` fine-tunes its SFT arm at fit start and measures the held-out
    split by domain at fit end; ``trainer.max_steps=0`` runs no step at all).
    """
    started = time.perf_counter()
    out_dir = _prepare(with_run_tags(cfg))
    table, wandb, module = "", None, None
    safety = RunSafety(cfg, out_dir)
    safety.start()  # run-folder lock; a corrupt or mismatched ckpt_path fails here, before any build
    try:
        module, datamodule = build_module(cfg)
        safety.check_model(module.model)
        setup_seconds = time.perf_counter() - started
        tags = run_tags(cfg.algorithm, cfg.reward)
        trained_name = f"{tags[0]}+{tags[-1]}"  # e.g. dapo+speciarl: the method of the "after" row
        loggers = _loggers(name_run(cfg, trained_name))
        trainer = _trainer(cfg, loggers, out_dir, [*callbacks, *safety.callbacks(module.preemption)])
        safety.attach(trainer)
        results: dict[str, Any] = {"setup_seconds": setup_seconds, "method": trained_name, "reward": tags[-1]}
        results["data"] = config_choice("data", "data")
        results.update(_measure_before(cfg, trainer, module, datamodule, loggers))
        fit_started = time.perf_counter()
        with safety.fitting(trainer, module.preemption):
            trainer.fit(module, datamodule=datamodule, ckpt_path=cfg.get("ckpt_path"))
        results["fit_seconds"] = time.perf_counter() - fit_started
        results["steps"] = int(trainer.global_step)
        if cfg.eval.after:
            results["after"] = _validate(trainer, module, datamodule)
        results["totals"] = dict(module.global_totals)
        if cfg.get("save_policy") and trainer.is_global_zero:
            results["policy_dir"] = str(_save_policy(cfg, module, out_dir / "policy", results))
        results["wall_seconds"] = time.perf_counter() - started
        if trainer.is_global_zero:  # one results file per run, not one per rank
            write_text_atomically(out_dir / "results.json", json.dumps(results, indent=1))
            log_run_results(loggers, results, trained_name, config_choice("data", "data"), out_dir)
            table = format_results(results, cfg)
            wandb = wandb_run(loggers)  # before W&B closes
    finally:
        finish_wandb()
        close_rollout(getattr(module, "rollout", None))
        safety.stop()
    if table:  # last, after W&B has closed: the figures, then where everything went
        report_run_end(table, out_dir, results, wandb)
    return results


def _prepare(cfg: DictConfig) -> Path:
    """Checks that come before anything is logged or saved, threads, seeds; the run folder."""
    reject_url_credentials(cfg)
    quiet_console()
    out_dir = Path(cfg.paths.output_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    if cfg.get("num_threads"):
        torch.set_num_threads(int(cfg.num_threads))
    seed_everything(cfg.seed, workers=True, verbose=False)
    return out_dir


def _trainer(cfg: DictConfig, loggers: list[Any], out_dir: Path, callbacks: Sequence[Callback]) -> Any:
    """The Lightning Trainer of ``cfg.trainer`` with the run's checkpoints, progress and ``callbacks``."""
    checkpoints = [instantiate(cfg.checkpoint)] if cfg.get("checkpoint") else []
    progress = [StepProgress()] if cfg.trainer.get("enable_progress_bar", True) else []
    return instantiate(
        cfg.trainer,
        logger=loggers or False,
        default_root_dir=str(out_dir),
        callbacks=[*checkpoints, *progress, *callbacks],
        enable_checkpointing=bool(checkpoints),
    )


def _loggers(cfg: DictConfig) -> list[Any]:
    """The experiment loggers of the config, with the run's hyperparameters logged."""
    loggers = [instantiate(spec) for spec in (cfg.logger or {}).values() if spec is not None]
    for logger in loggers:
        logger.log_hyperparams(OmegaConf.to_container(cfg, resolve=True))
    announce_wandb(loggers)
    return loggers


def _save_policy(cfg: DictConfig, module: SpeciaRLModule, folder: Path, results: dict[str, Any]) -> Path:
    """The trained policy (read back by ``speciarl.evaluate ckpt=<run>/policy``) and its model card."""
    from speciarl.policy.saved import save_policy
    from speciarl.runs.model_card import CardInfo, base_model_id, write_model_card

    refuse_nonfinite(module.model.state_dict(), str(folder))

    def fill(staged: Path) -> None:  # written whole under a temporary name, then renamed
        save_policy(module.policy, staged, cfg.model.get("prompt"))
        kind = "adapter" if (staged / "adapter_config.json").is_file() else "full"
        info = CardInfo(
            base_model_id(cfg.model), results["method"], results["reward"], results["data"], kind, results
        )
        write_model_card(staged, info)

    return write_folder_atomically(folder, fill)


def _measure_before(
    cfg: DictConfig, trainer: Any, module: SpeciaRLModule, datamodule: Any, loggers: Sequence[Any]
) -> dict[str, Any]:
    """The "before" rows: greedy and best-of-N, measured, or reused within a sweep (runs.before_cache).

    ``eval_cache`` says where reusable figures live and which rows this run read from there.
    """
    folder, rows, reused = cache_folder(cfg, trainer.world_size), {}, []
    measures = {"before": lambda: _validate(trainer, module, datamodule)} if cfg.eval.before else {}
    if cfg.eval.best_of_n and cfg.eval.best_of_n > 1:
        measures[f"before_best_of_{cfg.eval.best_of_n}"] = lambda: _best_of_n(cfg, module, datamodule)
    for name, compute in measures.items():
        rows[name], was_stored = measure_once(folder, cfg, name, compute)
        reused += [name] if was_stored else []
    for logger in loggers if "before" in reused else ():  # what the validation pass would have logged
        logger.log_metrics(rows["before"], step=trainer.global_step)
    if folder is not None:
        rows["eval_cache"] = {"folder": str(folder), "reused": reused}
    return rows


def _validate(trainer: Any, module: SpeciaRLModule, datamodule: Any) -> dict[str, float]:
    metrics = trainer.validate(module, datamodule=datamodule, verbose=False)[0]
    return {k: float(v) for k, v in metrics.items()}


def _best_of_n(cfg: DictConfig, module: SpeciaRLModule, datamodule: Any) -> dict[str, float]:
    samples = datamodule.val_samples()
    # One progress report per run: rank zero's (each rank measures the whole split).
    progress = (
        Progress(f"best-of-{cfg.eval.best_of_n}", len(samples), "image") if rank_zero_only.rank == 0 else None
    )
    records = evaluate_policy(
        module.policy,
        samples,
        module.judge,
        module.rollout,
        best_of=int(cfg.eval.best_of_n),
        temperature=float(cfg.eval.temperature),
        top_p=float(cfg.eval.top_p),
        progress=progress.update if progress else None,
    )
    if progress:
        progress.close()
    summaries = summarize_records(records, by_tag=cfg.module.get("val_breakdown_tag"))
    flat = {f"val/{k}": v for k, v in summaries["all"].items()} | {"val/n": float(len(samples))}
    for tag, values in summaries.items():
        if tag != "all":
            flat.update({f"val_{tag}/{k}": values[k] for k in ("correctness", "specificity", "hm")})
    return flat


def format_results(results: dict[str, Any], cfg: DictConfig) -> str:
    """A small before/after table of the held-out figures."""
    rows = [(name, results[name]) for name in results if name.startswith(("before", "after"))]
    if not rows:
        return ""
    lines = [
        f"\nheld-out split: {_measured_samples(rows, cfg)} samples; "
        f"{results.get('steps', 0)} steps in {results.get('fit_seconds', 0):.0f} s "
        f"(wall {results.get('wall_seconds', 0):.0f} s)",
        f"{'':<22}{'correctness':>12}{'specificity':>12}{'HM':>8}",
    ]
    for name, values in rows:
        lines.append(
            f"{name:<22}{values.get('val/correctness', float('nan')):>12.3f}"
            f"{values.get('val/specificity', float('nan')):>12.3f}{values.get('val/hm', float('nan')):>8.3f}"
        )
    return "\n".join(lines)


def _measured_samples(rows: list[tuple[str, Any]], cfg: DictConfig) -> str:
    """How many images the rows measured (``val/n``; ``a or b`` when they differ), else the split's size."""
    counts = sorted({int(values["val/n"]) for _, values in rows if values.get("val/n") is not None})
    if counts:
        return " or ".join(str(n) for n in counts)
    return str(cfg.data.get("val", {}).get("size", "?"))


@hydra.main(config_path=CONF_DIR, config_name="train", version_base="1.3")
def main(cfg: DictConfig) -> float | None:
    log.info("OpenMP wait policy: %s", WAIT_POLICY)
    try:
        results = train(annotate_sweep_job(with_run_tags(cfg)))
    except SIGTERMException:  # Lightning's, outside training (a held-out measurement): not 0
        logging.shutdown()
        os._exit(128 + signal.SIGTERM)
    except Preempted as stop:
        # Judge requests still in flight would hold the interpreter's exit until their deadline:
        # everything worth keeping is written, so leave now, non-zero (runs.preemption).
        logging.shutdown()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(stop.exit_code)
    after = results.get("after", {})
    return after.get("val/hm")


if __name__ == "__main__":
    run_then_exit(main)  # no interpreter teardown after the figures (runs.run_end)
