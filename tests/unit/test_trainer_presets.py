"""Trainer presets compose and their strategies build (the GPU ones cannot run here)."""

import pytest
from hydra.utils import instantiate
from lightning.pytorch.strategies import DDPStrategy, FSDPStrategy
from transformers.models.qwen2_5_vl import modeling_qwen2_5_vl as qwen

from speciarl.runs.distributed import layer_classes


@pytest.mark.parametrize(
    "preset, strategy, accelerator",
    [
        ("gpu", None, "gpu"),
        ("ddp", DDPStrategy, "gpu"),
        ("fsdp", FSDPStrategy, "gpu"),
        ("ddp_cpu", DDPStrategy, "cpu"),
    ],
)
def test_trainer_presets(make_config, preset, strategy, accelerator):
    cfg = make_config(f"trainer={preset}")
    assert cfg.trainer.accelerator == accelerator
    # the data module shards global batches itself; Lightning must not wrap its sampler
    assert cfg.trainer.use_distributed_sampler is False
    if accelerator == "gpu":
        assert cfg.trainer.precision == "bf16-mixed"
    if strategy is None:
        assert "strategy" not in cfg.trainer
        return
    built = instantiate(cfg.trainer.strategy)
    assert isinstance(built, strategy)
    if preset == "fsdp":
        assert built.kwargs["use_orig_params"] is True  # LoRA mixes frozen and trainable weights


def test_fsdp_wraps_decoder_and_vision_blocks(make_config):
    cfg = make_config("trainer=fsdp")
    assert instantiate(cfg.trainer.strategy.auto_wrap_policy) == {
        qwen.Qwen2_5_VLDecoderLayer,
        qwen.Qwen2_5_VLVisionBlock,
    }
    with pytest.raises(ValueError, match="no class 'NoSuchBlock'"):
        layer_classes(["NoSuchBlock"])
