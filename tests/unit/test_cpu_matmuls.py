"""Frozen bf16 Linears multiplied in float32 on the CPU (``speciarl.policy.cpu_matmuls``)."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from speciarl.policy import cpu_matmuls
from speciarl.policy.cpu_matmuls import Float32MatmulLinear, cpu_has_bf16_arithmetic, route_frozen_linears


def _frozen_linear(weight: list[list[float]], bias: list[float] | None, dtype=torch.bfloat16) -> nn.Linear:
    layer = nn.Linear(len(weight[0]), len(weight), bias=bias is not None).to(dtype)
    with torch.no_grad():
        layer.weight.copy_(torch.tensor(weight))
        if bias is not None:
            layer.bias.copy_(torch.tensor(bias))
    layer.requires_grad_(False)
    return layer


def test_hand_worked_forward_and_input_gradient_across_slabs(monkeypatch):
    # W = [[1, 2, 3], [4, 5, 6]], b = [0.5, 0], x = [1, 0, -1]:
    #   y = W x + b = [1 - 3 + 0.5, 4 - 6 + 0] = [-1.5, -2]
    #   dL/dx for L = 1.y + 2.y2... with upstream grad g = [1, 2]: W^T g = [1 + 8, 2 + 10, 3 + 12] = [9, 12, 15]
    monkeypatch.setattr(cpu_matmuls, "SLAB_ELEMENTS", 3)  # one weight row a slab: two slabs
    layer = _frozen_linear([[1, 2, 3], [4, 5, 6]], [0.5, 0.0])
    assert route_frozen_linears(layer, True) == 1 and type(layer) is Float32MatmulLinear
    x = torch.tensor([[1.0, 0.0, -1.0]], dtype=torch.bfloat16, requires_grad=True)
    y = layer(x)
    assert y.dtype == torch.bfloat16
    assert y.tolist() == [[-1.5, -2.0]]
    y.backward(torch.tensor([[1.0, 2.0]], dtype=torch.bfloat16))
    assert x.grad.dtype == torch.bfloat16
    assert x.grad.tolist() == [[9.0, 12.0, 15.0]]
    assert layer.weight.grad is None


def test_result_is_the_float32_product_rounded_once():
    # bf16 has 8 significant bits: 1 + 2^-8 is not representable. Products summed in float32 and
    # rounded once: 1*1 + 2^-8 * 1 + 2^-8 * 1 = 1 + 2^-7, exact in bf16. Rounding after each
    # product would give 1 (1 + 2^-8 rounds to 1, twice).
    layer = _frozen_linear([[1.0, 2.0**-8, 2.0**-8]], None)
    route_frozen_linears(layer, True)
    x = torch.ones(1, 3, dtype=torch.bfloat16)
    assert layer(x).item() == 1.0 + 2.0**-7


def test_equals_torch_bf16_at_real_width_to_rounding():
    # One Qwen2.5-VL-3B MLP projection (2048 -> 11008), 8 tokens: forward and input gradient against
    # torch's own bf16 kernels. Both accumulate in float32 and round once, in a different order:
    # they agree to one bf16 ulp of the output's scale (2^-8 relative).
    torch.manual_seed(0)
    stock = nn.Linear(2048, 11008, bias=False).to(torch.bfloat16).requires_grad_(False)
    routed = copy.deepcopy(stock)
    assert route_frozen_linears(routed, True) == 1
    x = torch.randn(8, 2048, dtype=torch.bfloat16)
    grad = torch.randn(8, 11008, dtype=torch.bfloat16)
    outs, grads = [], []
    for layer in (stock, routed):
        leaf = x.clone().requires_grad_(True)
        out = layer(leaf)
        out.backward(grad)
        outs.append(out.float())
        grads.append(leaf.grad.float())
    assert (outs[0] - outs[1]).abs().max() <= 2**-8 * outs[0].abs().max()
    assert (grads[0] - grads[1]).abs().max() <= 2**-8 * grads[0].abs().max()


def test_lora_gradients_equal_the_stock_route():
    from peft import LoraConfig, get_peft_model

    class Block(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.q_proj = nn.Linear(64, 64)
            self.down_proj = nn.Linear(64, 32)

        def forward(self, x):
            return self.down_proj(torch.relu(self.q_proj(x)))

    torch.manual_seed(1)
    config = LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "down_proj"], init_lora_weights=False)
    stock = get_peft_model(Block().to(torch.bfloat16), config)
    routed = copy.deepcopy(stock)
    assert route_frozen_linears(routed, True) == 2  # the two base layers; LoRA's A and B are trainable
    assert {k: v.shape for k, v in routed.state_dict().items()} == {
        k: v.shape for k, v in stock.state_dict().items()
    }
    x = torch.randn(5, 64, dtype=torch.bfloat16)
    for model in (stock, routed):
        model(x).float().square().sum().backward()
    pairs = [
        (a.grad.float(), b.grad.float())
        for a, b in zip(stock.parameters(), routed.parameters())
        if a.requires_grad
    ]
    assert len(pairs) == 4
    for a, b in pairs:
        assert torch.allclose(a, b, rtol=0.02, atol=0.02 * a.abs().max().item())


def test_float32_and_trainable_layers_keep_torchs_call():
    model = nn.Sequential(nn.Linear(4, 4), nn.Linear(4, 4).to(torch.bfloat16))
    assert route_frozen_linears(model, True) == 0  # float32, and a trainable bf16 layer
    model[1].requires_grad_(False)
    assert route_frozen_linears(model, False) == 0 and type(model[1]) is nn.Linear
    assert route_frozen_linears(model, True) == 1 and type(model[1]) is Float32MatmulLinear
    assert type(copy.deepcopy(model)[1]) is Float32MatmulLinear  # a copy keeps the route, with its own weight
    model[1].weight.requires_grad_(True)  # unfrozen later: torch's own kernel, with a weight gradient
    out = model[1](torch.ones(1, 4, dtype=torch.bfloat16))
    out.sum().backward()
    assert model[1].weight.grad is not None


def test_auto_follows_the_cpu_flags(monkeypatch):
    model = nn.Sequential(nn.Linear(4, 4).to(torch.bfloat16).requires_grad_(False))
    monkeypatch.setattr(cpu_matmuls, "cpu_has_bf16_arithmetic", lambda: True)
    assert route_frozen_linears(model, "auto") == 0
    monkeypatch.setattr(cpu_matmuls, "cpu_has_bf16_arithmetic", lambda: False)
    assert route_frozen_linears(model, "auto") == 1


def test_cpu_flags_are_read_from_cpuinfo():
    avx2 = "processor\t: 0\nflags\t\t: fpu sse2 avx avx2 fma\n"
    assert cpu_has_bf16_arithmetic(avx2) is False
    assert cpu_has_bf16_arithmetic(avx2.replace("fma", "fma avx512f avx512_bf16")) is True
    assert cpu_has_bf16_arithmetic(avx2.replace("fma", "fma amx_bf16 amx_tile")) is True
    assert cpu_has_bf16_arithmetic("processor\t: 0\nFeatures\t: fp asimd bf16 i8mm\n") is True
    assert cpu_has_bf16_arithmetic("processor\t: 0\nFeatures\t: fp asimd\n") is False


def test_a_bad_setting_is_refused():
    with pytest.raises(ValueError, match="auto, true, false"):
        route_frozen_linears(nn.Linear(2, 2), "yes")
