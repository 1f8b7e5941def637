"""Every judge preset spells the LLM's settings one way, ``verifier.llm.*`` (issue 25, item 4)."""

from __future__ import annotations

from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.utils import instantiate

from speciarl.train import CONF_DIR
from speciarl.verifier.llm_http import LLMHttpJudge
from speciarl.verifier.tiered import TieredJudge

HTTP_KEYS = {"base_url", "model", "batch_size", "timeout_s", "max_retries", "max_reply_bytes"}


def compose_train(*overrides: str):
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        return compose(config_name="train", overrides=list(overrides))


@pytest.mark.parametrize("preset", ["llm_http", "tiered"])
def test_the_http_judge_keys_are_under_verifier_llm(preset):
    cfg = compose_train(
        f"verifier={preset}", "verifier.llm.batch_size=3", "verifier.llm.base_url=http://127.0.0.1:9/v1"
    )
    assert HTTP_KEYS <= set(cfg.verifier.llm)
    assert not HTTP_KEYS & set(cfg.verifier)  # nothing spelt at the top level
    judge = instantiate(cfg.verifier)
    http = judge.llm if isinstance(judge, TieredJudge) else judge
    assert isinstance(http, LLMHttpJudge)
    assert http.batch_size == 3 and http.base_url == "http://127.0.0.1:9/v1"
    assert http.client.max_reply_bytes == 1 << 20  # issue 22's default bound


def test_the_local_judge_keys_are_under_verifier_llm_too():
    for preset in ("llm_local", "tiered"):
        overrides = [f"verifier={preset}"] + (["verifier/llm=local"] if preset == "tiered" else [])
        cfg = compose_train(*overrides)
        # model_path is ??? (required): `in` on a DictConfig skips missing values, keys() does not
        assert "model_path" in cfg.verifier.llm.keys() and "model_path" not in cfg.verifier.keys()


def test_no_doc_or_preset_uses_the_old_top_level_spelling():
    root = Path(__file__).resolve().parents[2]
    old = ("verifier.base_url", "verifier.batch_size", "verifier.model_path", "verifier.guided=")
    files = [*root.glob("docs/*.md"), root / "README.md", *Path(CONF_DIR).rglob("*.yaml")]
    offenders = [f"{p.name}: {o}" for p in files for o in old if o in p.read_text(encoding="utf-8")]
    assert offenders == []
