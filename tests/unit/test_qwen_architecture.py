"""The real-width Qwen2.5-VL presets: the card's numbers, the real special-token ids, 256 image tokens at 448x448."""

import pytest
from PIL import Image

from speciarl.built_models.random_qwen import build_qwen_processor
from speciarl.memory import model_sizes
from speciarl.policy.qwen_architecture import QWEN2_5_VL_3B, QWEN2_5_VL_7B, architecture, qwen_vl_config


@pytest.mark.parametrize(
    ("arch", "billions"),
    # The model cards list 3.75B and 8.29B parameters (safetensors metadata).
    [(QWEN2_5_VL_3B, 3.75), (QWEN2_5_VL_7B, 8.29)],
)
def test_parameter_count_is_the_model_cards(arch, billions):
    sizes = model_sizes(qwen_vl_config(arch), lora_r=16)
    assert sizes.parameters / 1e9 == pytest.approx(billions, abs=0.005)
    assert sizes.vocab == arch.vocab_size


def test_config_carries_the_published_widths():
    config = qwen_vl_config(QWEN2_5_VL_3B)
    text, vision = config.text_config, config.vision_config
    assert (text.hidden_size, text.intermediate_size, text.num_hidden_layers) == (2048, 11008, 36)
    assert (text.num_attention_heads, text.num_key_value_heads, text.vocab_size) == (16, 2, 151936)
    assert text.rope_parameters["mrope_section"] == [16, 24, 24]
    assert text.rope_parameters["rope_theta"] == 1_000_000.0
    assert set(text.layer_types) == {"full_attention"}
    assert (vision.depth, vision.hidden_size, vision.out_hidden_size) == (32, 1280, 2048)
    assert list(vision.fullatt_block_indexes) == [7, 15, 23, 31]
    assert (config.image_token_id, config.vision_start_token_id) == (151655, 151652)
    assert config.tie_word_embeddings
    assert not qwen_vl_config(QWEN2_5_VL_7B).tie_word_embeddings


def test_cut_down_keeps_widths_and_a_full_attention_block():
    arch = QWEN2_5_VL_3B.cut_down(layers=2, vision_blocks=2)
    assert (arch.num_layers, arch.vision_depth, arch.fullatt_block_indexes) == (2, 2, (1,))
    assert (arch.hidden_size, arch.vocab_size) == (2048, 151936)
    with pytest.raises(ValueError, match="layers must be in 1..36"):
        QWEN2_5_VL_3B.cut_down(layers=0)
    with pytest.raises(ValueError, match=r"one of \['3b', '7b'\]"):
        architecture("14b")


def test_tokenizer_has_the_real_ids_and_448_pixels_give_256_image_tokens():
    processor = build_qwen_processor()
    tok = processor.tokenizer
    assert len(tok) == 151665
    expected = {"<|endoftext|>": 151643, "<|im_start|>": 151644, "<|im_end|>": 151645}
    expected |= {"<|vision_start|>": 151652, "<|image_pad|>": 151655, "<|video_pad|>": 151656}
    assert {t: tok.convert_tokens_to_ids(t) for t in expected} == expected
    messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "What is it?"}]}]
    text = processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    assert text.startswith("<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\n")
    assert text.endswith("What is it?<|im_end|>\n<|im_start|>assistant\n")
    enc = processor(text=[text], images=[Image.new("RGB", (448, 448))], return_tensors="pt")
    assert int((enc["input_ids"] == 151655).sum()) == 256  # (448 / 14)^2 patches / (2 x 2 merge)
    assert enc["image_grid_thw"].tolist() == [[1, 32, 32]]
