"""Sizes behind the memory table: exact counts, checked against real models and hand arithmetic."""

import pytest

from speciarl.memory import format_table, memory_rows, model_sizes, qwen2_5_vl_7b_config


def test_counts_match_the_real_tiny_model_and_its_lora(tiny_policy_fresh):
    from speciarl.policy.loading import apply_lora

    model = tiny_policy_fresh.model
    sizes = model_sizes(model.config, lora_r=8)
    assert sizes.parameters == sum(p.numel() for p in model.parameters())
    wrapped = apply_lora(model, r=8, alpha=16)
    assert sizes.lora_parameters == sum(p.numel() for p in wrapped.parameters() if p.requires_grad)


def test_7b_sizes_by_hand():
    sizes = model_sizes(qwen2_5_vl_7b_config(), lora_r=64)
    assert round(sizes.parameters / 1e9, 2) == 8.29  # the model card's 8.29B
    # LoRA r 64, per layer r x (in + out) with h 3584, kv 4 x 128 = 512, I 18944:
    # q 7168 + k 4096 + v 4096 + o 7168 + gate 22528 + up 22528 + down 22528 = 90112
    # 64 x 90112 = 5,767,168 per layer, x 28 layers = 161,480,704
    assert sizes.lora_parameters == 161_480_704


def test_table_rows_by_hand():
    sizes = model_sizes(qwen2_5_vl_7b_config(), lora_r=64)
    base, lora, grads, adam, _, logits, vllm = (gib for _, gib, _ in memory_rows(sizes, token_budget=16384))
    assert base == pytest.approx(8_292_166_656 * 2 / 1024**3)  # 15.4 GiB
    assert lora == grads == pytest.approx(161_480_704 * 4 / 1024**3)  # 0.6 GiB
    assert adam == pytest.approx(161_480_704 * 8 / 1024**3)  # 1.2 GiB
    # logits: 8192 completion tokens x 14 B x 152064 vocab = 16.2 GiB
    assert logits == pytest.approx(8192 * 14 * 152064 / 1024**3)
    assert vllm == pytest.approx(0.3 * 80)
    table = format_table(memory_rows(sizes, token_budget=16384))
    assert "peak while training" in table and "estimated" in table
