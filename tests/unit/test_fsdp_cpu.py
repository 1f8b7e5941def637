"""Lightning's FSDP on CPU: refused at Trainer construction (the exact refusal is quoted in docs/scaling.md)."""

import pytest
from hydra.errors import InstantiationException
from hydra.utils import instantiate
from tests.conftest import compose_config


def test_lightning_refuses_the_fsdp_preset_on_cpu(tmp_path):
    cfg = compose_config(["trainer=fsdp", "trainer.accelerator=cpu", "trainer.devices=2"], tmp_path)
    with pytest.raises(InstantiationException) as refusal:
        instantiate(cfg.trainer)
    assert isinstance(refusal.value.__cause__, ValueError)
    assert str(refusal.value.__cause__) == (
        "The strategy `fsdp` requires a GPU accelerator, but received `accelerator='cpu'`. Please set "
        "`accelerator='cuda'`, `accelerator='gpu'`, or pass a `CUDAAccelerator()` instance to use FSDP."
    )
