"""One log-prob route and one rollout path, chosen once at setup from the device, the model and the settings.

Our fast paths are measured on CPU: the completion pass (``completion_pass``: completion tokens
layer by layer after a shared prompt pass) and the own decode loop (``rollout.decode``). On a GPU
the stock calls keep their fused kernels (the decoder's own cached call; ``generate`` or vLLM),
unless a setting asks for ours. Whatever a path does not model (another architecture,
sliding-window layers, a scaled rope, a generation setting it does not apply, a sharded model)
takes the stock call. The entropy bonus is computed on the same route as the log-probs (each
vocabulary chunk's logits give both), so ``entropy_coef`` never silently switches paths.

The choice is logged once, e.g. ``log-probs: completion pass, CPU; entropy: same route;
rollouts: own decode loop``, and the update and the rollout backend follow it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import torch
from torch import nn

from speciarl.policy.completion_pass import unsupported_decoder_reason
from speciarl.policy.shared_images import direct_calls_allowed

log = logging.getLogger(__name__)

AUTO = "auto"


@dataclass(frozen=True)
class LogprobRoute:
    """Where log-probs, entropy and rollouts are computed for the run.

    ``completion_pass``: completion tokens through our layer pass (else the decoder's own call);
    ``own_decode``: rollouts by our decode loop (else ``generate``); ``why_not``: the reasons a
    fast path is off, for the log line.
    """

    device: str
    completion_pass: bool
    own_decode: bool | None
    entropy: bool
    why_not: tuple[str, ...] = ()

    def describe(self) -> str:
        """One line for the run's log: the route, the device, the entropy and the rollout path."""
        route = "completion pass" if self.completion_pass else "stock forward"
        parts = [f"log-probs: {route}, {self.device.upper()}"]
        if self.entropy:
            parts.append("entropy: same route (from each vocabulary chunk's logits)")
        if self.own_decode is not None:
            parts.append(f"rollouts: {'own decode loop' if self.own_decode else 'generate'}")
        line = "; ".join(parts)
        return f"{line} ({'; '.join(self.why_not)})" if self.why_not else line


def text_decoder(model: nn.Module) -> nn.Module | None:
    """The language model of a Qwen2-VL-style policy (LoRA-wrapped or not); None when it has none."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    backbone = getattr(base, "model", None)
    return getattr(backbone, "language_model", None)


def model_reason(model: nn.Module) -> str | None:
    """Why our layer-by-layer paths cannot run this model at all (None: they can)."""
    if not direct_calls_allowed(model):
        return "a sharded model"
    return unsupported_decoder_reason(text_decoder(model))


def path_enabled(
    setting: bool | str, device: torch.device, name: str, why_not: list[str] | None = None
) -> bool:
    """A path's setting: True (asked for, any device), False (off) or "auto" (CPU only)."""
    why_not = [] if why_not is None else why_not
    if setting == AUTO:
        if device.type != "cpu":
            why_not.append(f"{name} off on {device.type.upper()}: the stock call keeps its fused kernels")
            return False
        return True
    if not isinstance(setting, bool):
        raise ValueError(f"{name} must be true, false or {AUTO!r}, got {setting!r}")
    if not setting:
        why_not.append(f"{name} off by setting")
    return setting


def choose_route(
    model: nn.Module,
    device: torch.device | str,
    entropy: bool = False,
    completion_pass: bool | str = AUTO,
    fast_decode: bool | str | None = None,
) -> LogprobRoute:
    """The route for ``model`` on ``device``; ``fast_decode`` None: the rollout backend is not ours to choose.

    ``completion_pass`` / ``fast_decode``: True (use it on any device), False, or "auto" (on CPU
    only). A model our paths do not fit takes the stock calls whatever the setting.
    """
    device = torch.device(device)
    why_not: list[str] = []
    reason = model_reason(model)
    use_pass = path_enabled(completion_pass, device, "completion pass", why_not)
    if use_pass and reason is not None:
        why_not.append(f"completion pass does not fit the model: {reason}")
        use_pass = False
    if use_pass and any(getattr(m, "gradient_checkpointing", False) for m in model.modules()):
        # The layer pass continues the prompt's KV cache, which checkpointed layers do not keep.
        why_not.append("completion pass off: gradient checkpointing recomputes the layers")
        use_pass = False
    own_decode = None
    if fast_decode is not None:
        own_decode = path_enabled(fast_decode, device, "own decode loop", why_not)
        if own_decode and reason is not None:
            why_not.append(f"own decode loop does not fit the model: {reason}")
            own_decode = False
    return LogprobRoute(device.type, use_pass, own_decode, entropy, tuple(why_not))


def announce(route: LogprobRoute) -> LogprobRoute:
    """Log the route (once per setup) and return it."""
    log.info(route.describe())
    return route
