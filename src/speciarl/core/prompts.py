"""Policy prompts: the paper's classification prompt and the "be specific" baseline."""

from __future__ import annotations

from typing import Any

from PIL import Image

FORMAT_INSTRUCTION = (
    "Think about it inside <think> </think> tags, then give your final answer inside "
    "<answer> </answer> tags: a single label, or None if you cannot tell. "
    "Follow this format strictly."
)
PROMPTS: dict[str, str] = {
    "base": "Classify the image. " + FORMAT_INSTRUCTION,
    "be_specific": "Classify the image, be specific. " + FORMAT_INSTRUCTION,
}


def prompt_text(preset: str) -> str:
    """The user text of a prompt preset (``base`` or ``be_specific``)."""
    try:
        return PROMPTS[preset]
    except KeyError:
        raise ValueError(f"unknown prompt preset {preset!r}: expected one of {sorted(PROMPTS)}") from None


def chat_messages(image: Image.Image, text: str) -> list[dict[str, Any]]:
    """One user turn: the image first, then the text (as in the paper)."""
    return [
        {
            "role": "user",
            "content": [{"type": "image", "image": image}, {"type": "text", "text": text}],
        }
    ]


def format_answer(label: str, thought: str = "") -> str:
    """The completion format the policy is asked to follow."""
    return f"<think>{thought}</think><answer>{label}</answer>"
