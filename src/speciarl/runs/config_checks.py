"""Config values checked when a run starts, each error under the option's own name.

A value out of range otherwise surfaces late and elsewhere: ``rollout.max_new_tokens=1e8`` as a
409 GB allocation in the first generate call, ``rollout.top_p=2`` as a silently disabled filter,
``eval.best_of_n=-3`` as no measurement, ``rollout.max_new_tokens=0`` as an error about
``algorithm.overlong``. :func:`check_run_values` runs on the composed config before anything is
built; :func:`check_context_length` once the model is loaded (its context is known then).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


class ConfigValueError(ValueError):
    """A config value outside its range; the message names the option."""


def _number(value: Any, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigValueError(f"{name} must be a number, got {value!r}")
    return float(value)


def check_top_p(value: Any, name: str) -> None:
    """Nucleus sampling keeps the smallest token set of probability >= top_p: top_p in (0, 1]."""
    if value is None:
        return
    top_p = _number(value, name)
    if not 0 < top_p <= 1:
        raise ConfigValueError(f"{name} must be in (0, 1] (1 keeps every token), got {value}")


def check_count(value: Any, name: str, minimum: int) -> None:
    """An integer option (a YAML ``1e8`` is a float: refused, as are fractions) of at least ``minimum``."""
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    if value < minimum:
        raise ConfigValueError(f"{name} must be an integer >= {minimum}, got {value}")


def check_run_values(rollout: Mapping[str, Any], evaluation: Mapping[str, Any] | None) -> None:
    """The sampling and evaluation values of a run (``rollout.*``, ``eval.*``).

    Args:
        rollout (mapping): the ``rollout`` config group.
        evaluation (mapping or None): the ``eval`` section of train.yaml.

    Raises:
        ConfigValueError: naming the first option out of range and its range.
    """
    check_count(rollout.get("max_new_tokens"), "rollout.max_new_tokens", 1)
    check_count(rollout.get("min_new_tokens"), "rollout.min_new_tokens", 0)
    check_top_p(rollout.get("top_p"), "rollout.top_p")
    if rollout.get("temperature") is not None and _number(rollout["temperature"], "rollout.temperature") <= 0:
        raise ConfigValueError(f"rollout.temperature must be positive, got {rollout['temperature']}")
    if evaluation:
        check_count(evaluation.get("best_of_n"), "eval.best_of_n", 0)
        check_top_p(evaluation.get("top_p"), "eval.top_p")


def model_context(model: Any) -> int | None:
    """The model's context length in tokens (``max_position_embeddings`` of its text config), if known."""
    config = getattr(model, "config", None)
    for part in (getattr(config, "text_config", None), config):
        length = getattr(part, "max_position_embeddings", None)
        if isinstance(length, int) and length > 0:
            return length
    return None


def check_context_length(max_new_tokens: int, model: Any) -> None:
    """Prompt plus completion must fit the model's context: ``max_new_tokens`` alone must be below it."""
    context = model_context(model)
    if context is not None and max_new_tokens >= context:
        raise ConfigValueError(
            f"rollout.max_new_tokens={max_new_tokens} does not fit the model's context of {context} "
            "tokens (the prompt and its image tokens come first): use a value well below it"
        )
