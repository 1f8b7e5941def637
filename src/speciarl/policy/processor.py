"""A Qwen2.5-VL processor that needs no torchvision.

The stock processor builds a video processor whose base class imports torchvision, which cannot
be installed beside the CPU torch build. Images are all this project feeds the policy, so the
video processor is simply left out.
"""

from __future__ import annotations

from typing import Any

from transformers import Qwen2_5_VLProcessor


class ImageOnlyQwen2_5_VLProcessor(Qwen2_5_VLProcessor):
    """``Qwen2_5_VLProcessor`` without a video processor."""

    def __init__(
        self,
        image_processor: Any = None,
        tokenizer: Any = None,
        chat_template: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(image_processor, tokenizer, None, chat_template=chat_template, **kwargs)

    @classmethod
    def get_attributes(cls) -> list[str]:
        return ["image_processor", "tokenizer"]


def load_processor(path: str) -> Any:
    """Load a processor from a local folder, without torchvision when it is not installed."""
    try:
        import torchvision  # noqa: F401
        from transformers import AutoProcessor

        return AutoProcessor.from_pretrained(path)
    except Exception:  # torchvision missing or broken: the image-only processor does the job
        return ImageOnlyQwen2_5_VLProcessor.from_pretrained(path)
