"""Frozen bf16 / fp16 Linear layers multiplied in float32 on CPUs without native bf16 arithmetic.

A CPU with AVX2 but neither AVX512-BF16 nor AMX has no bf16 multiply: torch's bf16 ``x @ W.T``
(a Linear's forward) runs at 9-20 GFLOP/s on such a CPU and its ``grad @ W`` (a frozen layer's
input gradient, the whole of a LoRA backward through the base model) at ~0.26 GFLOP/s, against
40-68 GFLOP/s for the same products in float32 (measured: docs/scaling.md). A 3B LoRA step in
bf16 would take hours; in float32 the weights no longer fit beside a vLLM engine.

So the weights stay bf16 (their memory) and the products run in float32 (its speed): each
frozen ``nn.Linear`` of a half-precision model becomes a :class:`Float32MatmulLinear`, which
upcasts its weight a slab of rows at a time (one slab of float32 at once: 64 MiB), multiplies in
float32 and rounds the result to the input's dtype, as torch's own bf16 kernels round their
float32 accumulators. Its backward gives only the input gradient (the weight is frozen), computed
the same way. Trainable Linears (LoRA's A and B, full fine-tuning) are left alone, and on any
device but the CPU the layer calls ``F.linear`` unchanged: a GPU run is not touched.
"""

from __future__ import annotations

import logging
import platform
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

log = logging.getLogger(__name__)

SLAB_ELEMENTS = 2**24  # float32 weight elements upcast at once: 64 MiB (the 7B LM head: 4,681 rows)
HALF = (torch.bfloat16, torch.float16)
# /proc/cpuinfo flags that mean a native bf16 multiply (x86: AVX512-BF16, AMX; Arm: BF16).
BF16_FLAGS = {"avx512_bf16", "amx_bf16", "bf16"}
CHOICES = ("auto", True, False)


def cpu_has_bf16_arithmetic(cpuinfo: str | None = None) -> bool:
    """Whether the CPU multiplies bf16 natively, from the ``flags`` / ``Features`` lines of /proc/cpuinfo.

    Where /proc/cpuinfo cannot be read (not Linux), the answer is True: the float32 route is only
    taken where its need was seen.
    """
    if cpuinfo is None:
        path = Path("/proc/cpuinfo")
        if platform.system() != "Linux" or not path.exists():
            return True
        cpuinfo = path.read_text(errors="replace")
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        if key.strip() in ("flags", "Features") and BF16_FLAGS & set(value.split()):
            return True
    return False


def _slabs(weight: Tensor) -> list[slice]:
    rows = max(1, SLAB_ELEMENTS // max(1, weight.shape[1]))
    return [slice(start, start + rows) for start in range(0, weight.shape[0], rows)]


class _Float32Linear(torch.autograd.Function):
    """y = x W^T + b with W frozen: the products in float32 by slabs of W's rows, y in x's dtype."""

    @staticmethod
    def forward(ctx, x: Tensor, weight: Tensor, bias: Tensor | None) -> Tensor:
        ctx.save_for_backward(weight)
        flat = x.reshape(-1, x.shape[-1]).float()
        out = torch.empty(flat.shape[0], weight.shape[0], dtype=torch.float32, device=x.device)
        for rows in _slabs(weight):
            out[:, rows] = flat @ weight[rows].float().T
        if bias is not None:
            out += bias.float()
        return out.to(x.dtype).reshape(*x.shape[:-1], weight.shape[0])

    @staticmethod
    def backward(ctx, grad: Tensor):
        (weight,) = ctx.saved_tensors
        flat = grad.reshape(-1, grad.shape[-1]).float()
        grad_x = torch.zeros(flat.shape[0], weight.shape[1], dtype=torch.float32, device=grad.device)
        for rows in _slabs(weight):
            grad_x += flat[:, rows] @ weight[rows].float()
        return grad_x.to(grad.dtype).reshape(*grad.shape[:-1], weight.shape[1]), None, None


class Float32MatmulLinear(nn.Linear):
    """An ``nn.Linear`` whose frozen half-precision weight is multiplied in float32 on the CPU.

    Same parameters, same state-dict keys, an ``nn.Linear`` to ``isinstance`` (peft, saving);
    made by :func:`route_frozen_linears` swapping the class of existing layers.
    """

    def forward(self, x: Tensor) -> Tensor:
        weight = self.weight
        if weight.device.type != "cpu" or weight.requires_grad or weight.dtype not in HALF:
            return F.linear(x, weight, self.bias)
        return _Float32Linear.apply(x, weight, self.bias)


def route_frozen_linears(model: nn.Module, setting: str | bool = "auto") -> int:
    """Give ``model``'s frozen half-precision ``nn.Linear`` layers float32 products; returns how many.

    ``setting``: ``"auto"`` (when the weights are on the CPU and it has no bf16 arithmetic), ``True``
    (always, e.g. to test the route) or ``False`` (never: torch's own kernels). Logs its choice once.
    """
    if setting not in CHOICES:
        raise ValueError(f"model.cpu_float32_matmuls must be one of auto, true, false; got {setting!r}")
    frozen = [
        m
        for m in model.modules()
        if type(m) is nn.Linear and m.weight.dtype in HALF and not m.weight.requires_grad
    ]
    if not frozen or setting is False:
        return 0
    if setting == "auto":
        on_cpu = frozen[0].weight.device.type == "cpu"
        if not on_cpu or cpu_has_bf16_arithmetic():
            return 0
    for module in frozen:
        module.__class__ = Float32MatmulLinear
    log.info(
        "matmuls: %d frozen %s Linear layers multiply in float32 on the CPU (no native bf16 arithmetic here; "
        "model.cpu_float32_matmuls=false for torch's own kernels)",
        len(frozen),
        str(frozen[0].weight.dtype).removeprefix("torch."),
    )
    return len(frozen)
