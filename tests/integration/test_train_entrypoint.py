"""A few real training steps of the tiny model through the Hydra entry point."""

import csv
import json
import math

import pytest
import torch
from hydra.errors import ConfigCompositionException

from speciarl.train import train

FAST = [
    "model.warm_start=false",
    "trainer.max_steps=3",
    "trainer.val_check_interval=2",
    "data.batch_size=4",
    "data.val.size=16",
    "data.val_batch_size=16",
    "eval.best_of_n=2",
    "module.log_completions_every=1",
]


def _metrics(tmp_path):
    (path,) = list(tmp_path.glob("csv/version_*/metrics.csv"))
    return list(csv.DictReader(path.open()))


@pytest.mark.parametrize("algorithm", ["dapo", "grpo"])
def test_experiment_runs_real_steps(make_config, tmp_path, algorithm):
    cfg = make_config(f"algorithm={algorithm}", "reward=speciarl", "logger=csv", *FAST)
    results = train(cfg)
    assert results["steps"] == 3
    for phase in ("before", "after", "before_best_of_2"):
        assert 0.0 <= results[phase]["val/correctness"] <= 1.0
    saved = json.loads((tmp_path / "results.json").read_text())
    assert saved["steps"] == 3
    rows = [r for r in _metrics(tmp_path) if r.get("train/loss")]
    assert len(rows) == 3
    assert all(math.isfinite(float(r["train/loss"])) for r in rows)
    # GRPO computes a KL to the frozen reference, DAPO does not.
    kl = [float(r["train/kl"]) for r in rows]
    if algorithm == "dapo":
        assert kl == [0.0, 0.0, 0.0]
    completions = [
        json.loads(line) for line in (tmp_path / "completions_train.jsonl").read_text().splitlines()
    ]
    assert {c["step"] for c in completions} == {0, 1, 2}
    assert all(c["category"] for c in completions)


def test_wandb_offline_logger_and_table(make_config, tmp_path):
    cfg = make_config("experiment=dapo_speciarl", *FAST, "trainer.max_steps=1", "eval.best_of_n=0")
    train(cfg)
    runs = list((tmp_path / "wandb").glob("offline-run-*"))
    assert len(runs) == 1
    tables = list(runs[0].rglob("*completions*.table.json"))
    assert tables, "the completion table should be logged to W&B"
    assert list(tmp_path.glob("csv/version_*/metrics.csv"))


def test_unknown_config_name_is_a_clear_error(make_config):
    with pytest.raises(ConfigCompositionException, match="experiment_that_does_not_exist"):
        make_config("experiment=experiment_that_does_not_exist")


def test_missing_dataset_folder_is_a_clear_error(make_config, tmp_path):
    missing = tmp_path / "nowhere" / "train.jsonl"
    cfg = make_config(
        "data=manifest", f"data.train.path={missing}", f"data.val.path={missing}", "model.warm_start=false"
    )
    with pytest.raises(Exception, match="no manifest at .*nowhere"):
        train(cfg)


def test_lora_grpo_with_minibatches_trains_only_the_adapter(make_config, tmp_path):
    """LoRA policy: the reference is the adapter disabled; two mini-batches use stored old log-probs."""
    cfg = make_config(
        "algorithm=grpo",
        "reward=speciarl",
        "logger=csv",
        *FAST,
        "eval.best_of_n=0",
        "model.lora={r: 4, alpha: 8}",
        "algorithm.mini_batches=2",
        "optimizer.lr=1e-2",
    )
    from speciarl.train import build_module

    module, datamodule = build_module(cfg)
    with torch.no_grad():  # a non-zero adapter, so the policy differs from its reference
        for name, p in module.model.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.05)
    frozen = {n: p.detach().clone() for n, p in module.model.named_parameters() if not p.requires_grad}
    lora = {n: p.detach().clone() for n, p in module.model.named_parameters() if p.requires_grad}
    assert lora and all("lora_" in n for n in lora)
    from hydra.utils import instantiate

    trainer = instantiate(cfg.trainer, logger=False, default_root_dir=str(tmp_path))
    trainer.fit(module, datamodule=datamodule)
    params = dict(module.model.named_parameters())
    assert all(torch.equal(params[n], before) for n, before in frozen.items())
    assert any(not (params[n] == v).all() for n, v in lora.items())
    rows = trainer.logged_metrics
    assert rows["train/updates"].item() == 2.0
    # The adapter is non-zero, so the reference (adapter disabled) differs from the policy: KL > 0.
    assert rows["train/kl"].item() > 0.0
