"""Saved policies and models load with the stock ``AutoProcessor``, images included.

In this project's CPU environment torchvision cannot be imported, so the stock video processor
cannot be built there: ``AutoProcessor`` must then fail naming torchvision, never hand back a
tokenizer that drops the image. Where torchvision works (the vLLM CPU environment,
``scripts/vllm_cpu_check.sh``) the stock processor must return ``pixel_values``.
"""

from __future__ import annotations

import json

import pytest
import torch
from PIL import Image

from speciarl.built_models.tiny import TinyQwenSpec, build_tiny_qwen
from speciarl.policy.processor import ImageOnlyQwen2_5_VLProcessor, load_processor, torchvision_works
from speciarl.policy.saved import save_policy

MESSAGES = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "What is it?"}]}]


def _encode(processor) -> dict:
    text = processor.apply_chat_template(MESSAGES, add_generation_prompt=True)
    image = Image.new("RGB", (40, 32), (200, 30, 30))
    return processor(text=[text], images=[image], return_tensors="pt")


@pytest.fixture(scope="module")
def saved_folder(tmp_path_factory):
    """A policy saved the way training saves it (from the project's own processor)."""
    from speciarl.built_models.tiny_loading import tiny_policy

    torch.manual_seed(0)
    policy = tiny_policy(warm_start=False)
    return save_policy(policy, tmp_path_factory.mktemp("policy") / "policy")


def test_saved_metadata_is_stock(saved_folder):
    config = json.loads((saved_folder / "processor_config.json").read_text())
    assert config["processor_class"] == "Qwen2_5_VLProcessor"
    video = config["video_processor"]
    assert video["video_processor_type"] == "Qwen2VLVideoProcessor"
    image = config["image_processor"]
    for key in ("patch_size", "merge_size", "temporal_patch_size", "image_mean", "image_std"):
        assert video[key] == image[key]
    tokenizer = json.loads((saved_folder / "tokenizer_config.json").read_text())
    assert tokenizer["processor_class"] == "Qwen2_5_VLProcessor"


def test_freshly_built_tiny_model_is_stock(tmp_path):
    build_tiny_qwen(TinyQwenSpec(), tmp_path)
    config = json.loads((tmp_path / "processor_config.json").read_text())
    assert config["processor_class"] == "Qwen2_5_VLProcessor" and "video_processor" in config


def test_project_loader_returns_pixel_values(saved_folder):
    encoded = _encode(load_processor(str(saved_folder)))
    assert encoded["pixel_values"].ndim == 2 and encoded["pixel_values"].shape[0] > 0
    assert encoded["image_grid_thw"].tolist() == [[1, 8, 10]]


def test_stock_autoprocessor_never_silently_drops_the_image(saved_folder):
    from transformers import AutoProcessor

    if torchvision_works():
        processor = AutoProcessor.from_pretrained(str(saved_folder))
        assert type(processor).__name__ == "Qwen2_5_VLProcessor"
        stock = _encode(processor)
        ours = _encode(ImageOnlyQwen2_5_VLProcessor.from_pretrained(str(saved_folder)))
        assert torch.equal(stock["input_ids"], ours["input_ids"])
        assert torch.allclose(stock["pixel_values"], ours["pixel_values"], atol=1e-6)
    else:
        with pytest.raises(ImportError, match="[Tt]orchvision"):
            AutoProcessor.from_pretrained(str(saved_folder))


@pytest.mark.skipif(
    not torchvision_works(), reason="torchvision not importable (run scripts/vllm_cpu_check.sh)"
)
def test_stock_autoprocessor_returns_pixel_values(saved_folder):
    from transformers import AutoProcessor

    encoded = _encode(AutoProcessor.from_pretrained(str(saved_folder)))
    assert encoded["pixel_values"].shape[0] > 0 and encoded["image_grid_thw"].tolist() == [[1, 8, 10]]


def _card_snippet(folder) -> str:
    """The python block of the card's "Use" section, pointed at ``folder``."""
    from speciarl.runs.model_card import CardInfo, write_model_card

    card = write_model_card(
        folder, CardInfo("tiny-qwen2.5-vl", "dapo+speciarl", "speciarl", "synthetic", "full")
    )
    use = card.read_text().split("## Use", 1)[1]
    code = use.split("```python\n", 1)[1].split("```", 1)[0]
    return code.replace("<this folder>", str(folder))


def test_card_gives_the_prompt_format_and_a_snippet_that_runs_here(tmp_path, capsys):
    from speciarl.built_models.tiny_loading import tiny_policy
    from speciarl.core.prompts import prompt_text

    folder = save_policy(tiny_policy(), tmp_path / "policy")  # warm-started: it answers in the format
    # the reader's image: one of the synthetic images the tiny model was trained on
    snippet = _card_snippet(folder).replace(
        'image = Image.new("RGB", (64, 64), "red")',
        "from speciarl.data.synthetic import SyntheticShapes; image = SyntheticShapes(1, seed=3)[0].image",
    )
    card = (folder / "README.md").read_text()
    assert "## Prompt format" in card and prompt_text("base") in card and "<answer>" in card
    exec(compile(snippet, "model card snippet", "exec"), {})  # the card's code, as a reader would run it
    answer = capsys.readouterr().out.strip()
    print(f"the card's snippet answered {answer!r}")
    # a label, read from the completion's first <answer> (which label is not the point here)
    assert answer and answer != "None" and "<" not in answer, answer


@pytest.mark.skipif(
    not torchvision_works(), reason="torchvision not importable (run scripts/vllm_cpu_check.sh)"
)
def test_stock_pipeline_loads_the_saved_folder_and_answers(saved_folder):
    from transformers import pipeline

    pipe = pipeline("image-text-to-text", model=str(saved_folder))
    image = Image.new("RGB", (40, 32), (200, 30, 30))
    messages = [
        {"role": "user", "content": [{"type": "image", "image": image}, {"type": "text", "text": "What?"}]}
    ]
    out = pipe(text=messages, max_new_tokens=4, do_sample=False)
    assert isinstance(out[0]["generated_text"], (str, list)) and out[0]["generated_text"]
