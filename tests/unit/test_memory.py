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
    # logits: one vocabulary chunk of 2**26 // 152064 = 441 tokens x 14 B x 152064 = 0.87 GiB
    # (not all 8192 completion tokens' rows: vocab_chunks keeps one chunk alive)
    assert logits == pytest.approx(441 * 14 * 152064 / 1024**3)
    assert vllm == pytest.approx(0.3 * 80)
    table = format_table(memory_rows(sizes, token_budget=16384))
    assert "peak while training" in table and "estimated" in table


def test_host_rows_by_hand():
    from speciarl.memory_host import HostRun, host_peak_gib, host_rows

    sizes = model_sizes(qwen2_5_vl_7b_config(), lora_r=64)
    run = HostRun(prompts=2, group_size=4, prompt_tokens=100, new_tokens=10, weight_bytes=2)
    process, weights, lora, kv, acts, logits, decoding, training = (
        gib for _, gib, _ in host_rows(sizes, run)
    )
    assert weights == pytest.approx(8_292_166_656 * 2 / 1024**3)
    assert lora == pytest.approx(161_480_704 * 16 / 1024**3)
    # 8 rows x 110 positions x 28 layers x (K, V) x 512 x 2 B = 2,523,136 * 2 * ... by hand:
    assert kv == pytest.approx(8 * 110 * 28 * 2 * 512 * 2 / 1024**3)
    # 2 x 100 + 8 x 10 = 280 tokens x 28 layers x 320,512 B saved (bf16 with LoRA, next test),
    # x 1.0 resident per saved byte with retain_host_memory=false (both measured: memory_host)
    assert acts == pytest.approx(1.0 * 280 * 28 * 320_512 / 1024**3)
    assert logits == pytest.approx(3 * 4 * 80 * 152064 / 1024**3)  # 80 tokens < one chunk
    assert decoding == pytest.approx(process + weights + lora + kv)
    assert (
        host_peak_gib(host_rows(sizes, run))
        == training
        == pytest.approx(process + weights + lora + acts + logits)
    )


def test_saved_bytes_a_token_and_layer_by_hand():
    from speciarl.memory_host import saved_bytes_per_token_layer
    from speciarl.policy.qwen_architecture import architecture, qwen_vl_config

    # 7B: h 3584, kv 512, I 18944. bf16 with LoRA: 2 B x (2h + 2kv + 3I) = 2 x 65,024 = 130,048 and
    # 4 B x (8h + I) = 4 x 47,616 = 190,464: 320,512 B (measured: 130,048 + 191,032).
    sizes7 = model_sizes(qwen2_5_vl_7b_config(), lora_r=64)
    assert saved_bytes_per_token_layer(sizes7, 2) == 320_512
    # 3B (h 2048, kv 256, I 11008): 2 x 37,632 + 4 x 27,392 = 184,832 (measured 75,264 + 110,088);
    # float32: 4 x (6.5 x 2048 + 512 + 44,032) = 231,424 (measured 231,516 on the completion pass).
    sizes3 = model_sizes(qwen_vl_config(architecture("3b")), lora_r=16)
    assert saved_bytes_per_token_layer(sizes3, 2) == 184_832
    assert saved_bytes_per_token_layer(sizes3, 4) == 231_424


def test_host_activations_count_the_largest_micro_batch_by_hand():
    from speciarl.memory_host import HostRun, host_rows

    sizes = model_sizes(qwen2_5_vl_7b_config(), lora_r=64)
    per_token = 28 * 320_512  # resident bytes a token, as above
    # Rows are 100 + 10 = 110 tokens wide. Budget 440: 4 rows a micro-batch, rows 0-3 and 4-7,
    # one prompt each: 1 x 100 + 4 x 10 = 140 tokens; logits for 40 tokens.
    run = HostRun(2, 4, 100, 10, 2, token_budget=440)
    assert run.pass_rows_and_prompts() == (4, 1)
    rows = host_rows(sizes, run)
    assert rows[4][1] == pytest.approx(140 * per_token / 1024**3)
    assert rows[5][1] == pytest.approx(3 * 4 * 40 * 152064 / 1024**3)
    # Budget 330: 3 rows a micro-batch (0-2, 3-5, 6-7); rows 3-5 span prompts 0 and 1:
    # 2 x 100 + 3 x 10 = 230 tokens.
    run = HostRun(2, 4, 100, 10, 2, token_budget=330)
    assert run.pass_rows_and_prompts() == (3, 2)
    assert host_rows(sizes, run)[4][1] == pytest.approx(230 * per_token / 1024**3)
    # A budget below one row still runs one row at a time; none (or 8192 here) keeps all 8 rows.
    assert HostRun(2, 4, 100, 10, 2, token_budget=50).pass_rows_and_prompts() == (1, 1)
    assert HostRun(2, 4, 100, 10, 2, token_budget=None).pass_rows_and_prompts() == (8, 2)


def test_a_retaining_allocator_counts_182_resident_bytes_per_saved_byte():
    from speciarl.memory_host import HostRun, host_rows

    sizes = model_sizes(qwen2_5_vl_7b_config(), lora_r=64)
    released = host_rows(sizes, HostRun(2, 4, 100, 10, 2, retain_host_memory=False))[4][1]
    retained = host_rows(sizes, HostRun(2, 4, 100, 10, 2, retain_host_memory=True))[4][1]
    assert retained == pytest.approx(1.82 * released)
