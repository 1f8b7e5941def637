"""Hydra entry point: ``python -m speciarl.evaluate model=... data=... [ckpt=...]``.

Predicts every image of the evaluated split (greedy, or the best of ``eval.best_of_n`` samples at
temperature 0.6 and top-p 0.95, more specific ranking above specific), writes each prediction to
``predictions_<method>.jsonl`` as it is made (a rerun in the same folder resumes), judges, and
reports C/S/HM per dataset and per group, the category breakdown, text inclusion and (when an
embedding model is on disk) semantic similarity: ``eval_<method>.json``, ``report.md``,
``plots/*.png``, and the same figures and plots in W&B. With ``ckpt=<run>/policy`` the base model
is evaluated too (``compare_base=true``) and the report shows both side by side.
"""

from __future__ import annotations

from speciarl.cli_help import answer_help

answer_help("evaluate", __name__)  # before torch and Lightning load: --help in about a second

from speciarl.wait_policy import apply_wait_policy

WAIT_POLICY = apply_wait_policy()  # before torch loads libgomp: it reads the policy once

import json
import logging
import re
import time
import warnings
from collections import Counter, defaultdict
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import hydra
import torch
from hydra.utils import instantiate
from lightning.pytorch import seed_everything
from omegaconf import DictConfig, OmegaConf
from torch.utils.data import DataLoader, Dataset

from speciarl.core.categories import parse_judgement
from speciarl.core.samples import Sample
from speciarl.evaluation.checks import require_readable, rollout_overrides
from speciarl.evaluation.figures import dataset_figures, group_figures, text_inclusion
from speciarl.evaluation.loop import Decoding, EvalRecord, evaluate_batch
from speciarl.evaluation.prediction_log import PredictionLog
from speciarl.evaluation.report import write_report
from speciarl.evaluation.semantic_similarity import SentenceEmbedder, load_embedder
from speciarl.evaluation.split_config import data_for_split, evaluation_split
from speciarl.policy.policy import Policy
from speciarl.runs.config_checks import check_run_values
from speciarl.runs.console import quiet_console
from speciarl.runs.loggers import announce_wandb, finish_wandb
from speciarl.runs.run_end import close_rollout, run_then_exit
from speciarl.train import CONF_DIR
from speciarl.verifier.redaction import reject_url_credentials

log = logging.getLogger("speciarl.evaluate")
warnings.filterwarnings("ignore", message=".*LeafSpec.*")


def _meta(data: Dataset, index: int, default_name: str) -> tuple[str, str]:
    """(sample id, dataset name) of an item without loading it, when the dataset can tell."""
    if hasattr(data, "meta"):
        sample_id, _, tags = data.meta(index)
        return sample_id, tags.get("dataset", default_name)
    return f"{default_name}-{index}", default_name


class _Pending(Dataset):
    """The not yet evaluated items of a dataset, each with its index."""

    def __init__(self, data: Dataset, indices: Sequence[int]) -> None:
        self.data = data
        self.indices = list(indices)

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, k: int) -> tuple[int, Any]:
        index = self.indices[k]
        return index, self.data[index]


def _as_list(items: list) -> list:
    return items


def _split_readable(
    batch: Sequence[tuple[int, Any]], data: Dataset, dataset_name: str
) -> tuple[list[dict[str, Any]], list[tuple[int, Sample]]]:
    """Rows for the unreadable items of a batch (marked skipped), and the readable (index, sample)s."""
    skipped, readable = [], []
    for index, sample in batch:
        if sample is None:
            sample_id, name = _meta(data, index, dataset_name)
            skipped.append({"index": index, "dataset": name, "sample_id": sample_id, "skipped": True})
        else:
            readable.append((index, sample))
    return skipped, readable


def _row(index: int, sample: Sample, record: EvalRecord, dataset_name: str) -> dict[str, Any]:
    """The prediction-log line of one evaluated item."""
    row = {
        "index": index,
        "dataset": sample.tags.get("dataset", dataset_name),
        "sample_id": sample.sample_id,
        "label": sample.label,
        "prediction": record.prediction,
        "completion": record.completion,
        "category": record.judgement.value,
        "tags": {k: v for k, v in sample.tags.items() if k != "dataset"},
    }
    if len(record.group) > 1:
        row["sample_categories"] = dict(Counter(v.value for v in record.group))
    return row


def predict(
    policy: Policy,
    data: Dataset,
    judge: Any,
    rollout: Any,
    plog: PredictionLog,
    decoding: Decoding,
    dataset_name: str,
    batch_size: int = 32,
    num_workers: int = 0,
    limit: int | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> int:
    """Predict, judge and log every item not yet in ``plog``; returns how many were added."""
    total = len(data) if limit is None else min(limit, len(data))
    pending = [i for i in range(total) if i not in plog.done]
    loader = DataLoader(
        _Pending(data, pending),
        batch_size=batch_size,
        shuffle=False,
        num_workers=num_workers,
        collate_fn=_as_list,
    )
    added = 0
    for batch in loader:
        rows, readable = _split_readable(batch, data, dataset_name)
        if readable:
            records = evaluate_batch(policy, rollout, judge, [s for _, s in readable], decoding)
            rows += [_row(i, s, r, dataset_name) for (i, s), r in zip(readable, records, strict=True)]
        plog.append(rows)
        added += len(rows)
        if progress is not None:
            progress(len(plog.done), total)
    return added


def summarize(
    rows: Sequence[Mapping[str, Any]],
    embedder: SentenceEmbedder | None = None,
    groups: Mapping[str, Sequence[str]] | None = None,
    breakdown_tags: Sequence[str] = (),
) -> dict[str, Any]:
    """Per-dataset figures, group means and per-tag breakdowns from logged predictions."""
    by_dataset: dict[str, list[Mapping[str, Any]]] = defaultdict(list)
    skipped: Counter[str] = Counter()
    for row in rows:
        if row.get("skipped"):
            skipped[row["dataset"]] += 1
        else:
            by_dataset[row["dataset"]].append(row)
    similarity: dict[int, float] = {}
    if embedder is not None:
        answered = [r for r in rows if not r.get("skipped")]
        values = embedder.similarities([r["label"] for r in answered], [r["prediction"] for r in answered])
        similarity = {id(r): v for r, v in zip(answered, values, strict=True)}

    def figures(items: Sequence[Mapping[str, Any]], skipped_count: int) -> dict[str, Any]:
        return dataset_figures(
            [parse_judgement(r["category"]) for r in items],
            [text_inclusion(r["label"], r["prediction"]) for r in items],
            [similarity[id(r)] for r in items] if embedder is not None else None,
            skipped_count,
        )

    datasets = {name: figures(items, skipped[name]) for name, items in sorted(by_dataset.items())}
    for name in sorted(set(skipped) - set(datasets)):
        datasets[name] = figures([], skipped[name])
    breakdown: dict[str, dict[str, dict[str, Any]]] = {}
    for tag in breakdown_tags:
        for name, items in by_dataset.items():
            values = sorted({str(r.get("tags", {}).get(tag)) for r in items if tag in r.get("tags", {})})
            for value in values:
                part = [r for r in items if str(r.get("tags", {}).get(tag)) == value]
                breakdown.setdefault(name, {})[f"{tag}={value}"] = figures(part, 0)
    out: dict[str, Any] = {
        "datasets": datasets,
        "groups": group_figures(datasets, groups) if groups is not None else group_figures(datasets),
        "skipped_images": sum(skipped.values()),
    }
    if breakdown:
        out["breakdown"] = breakdown
    return out


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("_") or "method"


def _prediction_log(
    cfg: DictConfig, method: str, decoding: Decoding, rollout: Any, out_dir: Path, ckpt: str | None
) -> PredictionLog:
    """The method's resumable prediction log, fingerprinted by everything that makes a prediction."""
    fingerprint = {
        "method": method,
        "model": OmegaConf.to_container(cfg.model, resolve=True),
        "ckpt": ckpt,
        "decoding": decoding.__dict__,
        "max_new_tokens": getattr(rollout, "max_new_tokens", None),
        "data": OmegaConf.to_container(cfg.data, resolve=True),
        "split": cfg.eval.split,
    }
    return PredictionLog(
        out_dir / f"predictions_{_safe(method)}.jsonl", fingerprint, resume=bool(cfg.eval.resume)
    )


def _progress_logger(method: str) -> Callable[[int, int], None]:
    """A progress callback that logs at most every 30 s, and once at the end."""
    last = [time.perf_counter()]

    def progress(done: int, total: int) -> None:
        if time.perf_counter() - last[0] > 30 or done == total:
            log.info("%s: %d / %d evaluated", method, done, total)
            last[0] = time.perf_counter()

    return progress


def evaluate_method(
    cfg: DictConfig,
    method: str,
    policy: Policy,
    data: Dataset,
    judge: Any,
    rollout: Any,
    out_dir: Path,
    embedder: SentenceEmbedder | None,
    embedder_note: str,
    ckpt: str | None,
) -> dict[str, Any]:
    """Predict (resuming), summarise and write ``eval_<method>.json``; returns the result."""
    started = time.perf_counter()
    e = cfg.eval
    decoding = Decoding(int(e.best_of_n), float(e.temperature), float(e.top_p))
    plog = _prediction_log(cfg, method, decoding, rollout, out_dir, ckpt)
    seed_everything(int(cfg.seed), verbose=False)
    t = time.perf_counter()
    added = predict(
        policy,
        data,
        judge,
        rollout,
        plog,
        decoding,
        str(e.dataset_name),
        batch_size=int(e.batch_size),
        num_workers=int(cfg.data.get("num_workers", 0) or 0),
        limit=e.limit,
        progress=_progress_logger(method),
    )
    predict_seconds = time.perf_counter() - t
    rows = require_readable(plog.rows(), str(e.split))
    groups = {k: list(v) for k, v in e.groups.items()} if e.get("groups") else None
    result = {
        "method": method,
        "model": cfg.model.get("path") or cfg.model.get("_target_"),
        "ckpt": ckpt,
        "prompt": cfg.model.get("prompt"),
        "decoding": decoding.__dict__,
        "split": e.split,
        **summarize(rows, embedder, groups, list(e.get("breakdown_tags") or [])),
        "semantic_similarity_note": embedder_note,
        "predictions": str(plog.path),
        "items": len(plog.done),
        "predicted_now": added,
        "seconds": {"predict": predict_seconds, "total": time.perf_counter() - started},
    }
    (out_dir / f"eval_{_safe(method)}.json").write_text(json.dumps(result, indent=1))
    return result


def build_policy(cfg: DictConfig, ckpt: str | None) -> Policy:
    """The ``model`` config's policy, or the saved policy at ``ckpt`` (an adapter goes on that model)."""
    if not ckpt:
        return instantiate(cfg.model)
    from speciarl.policy.saved import load_saved_policy

    return load_saved_policy(
        ckpt,
        prompt=str(cfg.model.get("prompt", "base")),
        base=lambda: instantiate(cfg.model, lora=None) if "lora" in cfg.model else instantiate(cfg.model),
        dtype=str(cfg.eval.get("ckpt_dtype", "auto")),
    )


def evaluate(cfg: DictConfig) -> dict[str, Any]:
    """Evaluate the model (and ``ckpt``), write the report, log it; returns {method: result}."""
    started = time.perf_counter()
    reject_url_credentials(cfg)  # before anything is logged or saved
    quiet_console()
    out_dir = Path(cfg.paths.output_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    if cfg.get("num_threads"):
        torch.set_num_threads(int(cfg.num_threads))
    loggers: list[Any] = []
    rollout: Any = None
    try:
        check_run_values(cfg.rollout, cfg.eval)  # each error under the option's own name
        overrides = rollout_overrides(cfg.eval)
        datamodule = instantiate(data_for_split(cfg.data, str(cfg.eval.split)))
        data = evaluation_split(datamodule, str(cfg.eval.split))
        judge = instantiate(cfg.verifier)
        rollout = instantiate(cfg.rollout, **overrides)
        embedder, note = load_embedder(cfg.eval.get("semantic_similarity", "auto"))
        log.info(note)
        ckpt = str(cfg.ckpt) if cfg.get("ckpt") else None
        runs: list[tuple[str, str | None]] = []
        if ckpt and cfg.get("compare_base", True):
            runs.append(("base", None))
        default = "trained" if ckpt else "base"
        runs.append((str(cfg.method) if cfg.get("method") else default, ckpt))
        results: dict[str, Any] = {}
        for method, path in runs:
            policy = build_policy(cfg, path)
            results[method] = evaluate_method(
                cfg, method, policy, data, judge, rollout, out_dir, embedder, note, path
            )
            del policy
        paths = write_report(list(results.values()), out_dir, plots=bool(cfg.eval.get("plots", True)))
        loggers = [instantiate(spec) for spec in (cfg.logger or {}).values() if spec is not None]
        announce_wandb(loggers)
        _log(loggers, cfg, results, paths)
    finally:
        for logger in loggers:
            logger.finalize("success")
        finish_wandb()
        close_rollout(rollout)
    print(paths["markdown"].read_text())  # last, after W&B has closed: what the terminal ends with
    print(f"evaluation written to {out_dir} in {time.perf_counter() - started:.1f} s")
    return results


def _log(
    loggers: Sequence[Any], cfg: DictConfig, results: Mapping[str, Any], paths: Mapping[str, Path]
) -> None:
    """Figures (every logger), plots and a table of predictions (W&B)."""
    flat: dict[str, float] = {}
    for method, r in results.items():
        for kind in ("datasets", "groups"):
            for name, figures in r[kind].items():
                for key in ("correctness", "specificity", "hm", "text_inclusion", "semantic_similarity"):
                    if isinstance(figures.get(key), int | float):
                        flat[f"eval/{method}/{name}/{key}"] = float(figures[key])
                for cat, share in figures.get("fractions", {}).items():
                    flat[f"eval/{method}/{name}/frac_{cat}"] = float(share)
        flat[f"eval/{method}/skipped_images"] = float(r["skipped_images"])
    for logger in loggers:
        logger.log_hyperparams(OmegaConf.to_container(cfg, resolve=True))
        logger.log_metrics(flat, step=0)
        if type(logger).__name__ == "WandbLogger":
            for name in ("tradeoff", "categories"):
                if name in paths:
                    logger.log_image(key=f"eval/{name}", images=[str(paths[name])])
            columns = ["method", "dataset", "sample_id", "label", "prediction", "category"]
            data = [
                [method, *(row[c] for c in columns[1:])]
                for method, r in results.items()
                for row in PredictionLog.read_rows(r["predictions"])[:200]
                if not row.get("skipped")
            ]
            logger.log_table(key="eval/predictions", columns=columns, data=data)


@hydra.main(config_path=CONF_DIR, config_name="evaluate", version_base="1.3")
def main(cfg: DictConfig) -> float | None:
    log.info("OpenMP wait policy: %s", WAIT_POLICY)
    results = evaluate(cfg)
    last = list(results.values())[-1]
    first = next(iter(last["datasets"].values()), {})
    return first.get("hm")


if __name__ == "__main__":
    run_then_exit(main)  # no interpreter teardown after the figures (runs.run_end)
