"""The judging protocol over chat completions: what one request asks, and how its reply is read.

The wording of the prompt and the strict reading of answers live in ``judge_prompt`` (shared with
the in-process judge); this module adds what a chat-completions request needs around them: the
guided-decoding fields (vLLM ``structured_outputs``, older ``guided_choice`` / ``guided_json``),
the answer's token budget, and the validation that turns a reply text into a verdict, or into
None for a malformed reply that is asked again.

One pair: the reply must be exactly one of the six labels. A batch: the reply must be a JSON
array of ``{"id", "category"}`` with ids in order; a reply that cannot be trusted as a whole is
asked again, one with holes is accepted and its holes are judged singly. A guided batch is
constrained by a regular expression that admits only the compact answer (exactly n items, ids in
order, no whitespace), and its budget is that answer's length in characters, so no tokenisation
can cut it short.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from speciarl.verifier.judge_prompt import (
    BATCH_PROMPT_VERSION,
    LABELS,
    PROMPT_VERSION,
    BatchReading,
    batch_answer_chars,
    batch_answer_regex,
    batch_messages,
    pair_messages,
    read_batch,
    read_label,
)

GUIDED_MODES = ("structured_outputs", "guided_choice", "none")
Pair = tuple[str, str]


@dataclass
class JudgeRequest:
    """One chat-completions request of the judge, and how its reply text is validated."""

    messages: list[dict[str, str]]
    max_tokens: int
    guidance: dict[str, Any]
    validate: Callable[[str | None], Any]
    # Batched requests keep every reading, so a rejected answer's problem can be reported.
    readings: list[BatchReading] = field(default_factory=list)
    temperature: float = 0.0


class JudgeProtocol:
    """Builds single-pair and batched judge requests for one guided mode and one token budget.

    Args:
        guided: ``structured_outputs`` (vLLM >= 0.12), ``guided_choice`` (older vLLM) or ``none``.
        batch_size: pairs per request; 1 is the paper's one-pair prompt.
        max_tokens: answer budget; None picks 8 for one pair and, for a batch of n, the characters of
            the longest compact answer + 16 (``batch_answer_chars``: 109 + 16 for n = 3).
    """

    def __init__(
        self, guided: str = "structured_outputs", batch_size: int = 1, max_tokens: int | None = None
    ):
        if guided not in GUIDED_MODES:
            raise ValueError(f"guided must be one of {GUIDED_MODES}, got {guided!r}")
        self.guided = guided
        self.batch_size = batch_size
        self.max_tokens = max_tokens

    @property
    def prompt_version(self) -> str:
        return PROMPT_VERSION if self.batch_size == 1 else BATCH_PROMPT_VERSION

    def token_budget(self, pairs: int) -> int:
        if self.max_tokens is not None:
            return self.max_tokens
        # A token is at least one character: a guided batch always fits, whatever tokens the model
        # picks (a random model spells it letter by letter); 16 more for an unguided fence.
        return 8 if pairs == 1 else batch_answer_chars(pairs) + 16

    def pair_request(self, pair: Pair) -> JudgeRequest:
        """Ask for one label; the reply validates to a Category."""
        return JudgeRequest(pair_messages(*pair), self.token_budget(1), self._pair_guidance(), read_label)

    def batch_request(self, pairs: Sequence[Pair]) -> JudgeRequest:
        """Ask for a JSON array of verdicts; the reply validates to a BatchReading."""
        n = len(pairs)
        readings: list[BatchReading] = []

        def validate(text: str | None) -> BatchReading | None:
            reading = read_batch(text, n)
            readings.append(reading)
            # A partly good answer is accepted (its holes go back singly); only an answer that
            # cannot be trusted at all is retried as a batch.
            return None if reading.whole_answer_rejected else reading

        return JudgeRequest(
            batch_messages(pairs), self.token_budget(n), self._batch_guidance(n), validate, readings
        )

    def _pair_guidance(self) -> dict[str, Any]:
        if self.guided == "structured_outputs":
            return {"structured_outputs": {"choice": list(LABELS)}}
        if self.guided == "guided_choice":
            return {"guided_choice": list(LABELS)}
        return {}

    def _batch_guidance(self, n: int) -> dict[str, Any]:
        # A regular expression, not a JSON schema: vLLM 0.32 compiles a schema with whitespace
        # allowed between tokens (a request's disable_any_whitespace is ignored; only the server
        # flag counts), and a model may then pad the answer until the budget runs out (measured:
        # "[" then carriage returns). The expression admits only the compact answer.
        if self.guided == "structured_outputs":
            return {"structured_outputs": {"regex": batch_answer_regex(n)}}
        if self.guided == "guided_choice":
            return {"guided_regex": batch_answer_regex(n)}
        return {}
