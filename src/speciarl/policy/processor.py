"""The policy's processor: saved as the stock ``Qwen2_5_VLProcessor``, loaded without torchvision.

Saved folders must load with ``AutoProcessor.from_pretrained`` and with vLLM, so they name the
stock class (``processor_class: Qwen2_5_VLProcessor``) and carry a video-processor entry: without
one the stock processor cannot be built, and a project class name makes ``AutoProcessor`` fall
back to the tokenizer alone, which silently drops the image.

Building the stock video processor needs torchvision, which cannot be imported beside the CPU
torch build of this project's environment. There the folder is read by
``ImageOnlyQwen2_5_VLProcessor`` (the stock class minus the video processor: this project feeds
only images), and writing it back restores the stock metadata, so a folder saved here loads
stock wherever torchvision works (any standard install, the vLLM CPU environment).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from transformers import PreTrainedTokenizerFast, Qwen2_5_VLProcessor

STOCK_PROCESSOR_CLASS = "Qwen2_5_VLProcessor"
STOCK_VIDEO_PROCESSOR = "Qwen2VLVideoProcessor"
# Settings the video processor shares with the image processor (same patches, same normalisation).
_SHARED_WITH_VIDEO = (
    "do_convert_rgb",
    "do_normalize",
    "do_rescale",
    "do_resize",
    "image_mean",
    "image_std",
    "merge_size",
    "patch_size",
    "resample",
    "rescale_factor",
    "size",
    "temporal_patch_size",
)


# The special tokens of the Qwen2.5-VL chat template (the tiny tokenizer has these, in this order).
SPECIAL_TOKENS = [
    "<|endoftext|>",
    "<|im_start|>",
    "<|im_end|>",
    "<|vision_start|>",
    "<|vision_end|>",
    "<|image_pad|>",
    "<|video_pad|>",
]


class ImageOnlyQwen2_5_VLProcessor(Qwen2_5_VLProcessor):
    """``Qwen2_5_VLProcessor`` without a video processor; saves as the stock class."""

    def __init__(
        self,
        image_processor: Any = None,
        tokenizer: Any = None,
        chat_template: str | None = None,
        **kwargs: Any,
    ) -> None:
        kwargs.pop("video_processor", None)  # a stock folder's entry: not built without torchvision
        super().__init__(image_processor, tokenizer, None, chat_template=chat_template, **kwargs)

    @classmethod
    def get_attributes(cls) -> list[str]:
        return ["image_processor", "tokenizer"]

    def save_pretrained(self, save_directory: Any, *args: Any, **kwargs: Any) -> Any:
        result = super().save_pretrained(save_directory, *args, **kwargs)
        make_stock(Path(save_directory))
        return result


def video_processor_entry(image_processor: dict[str, Any]) -> dict[str, Any]:
    """The stock video processor's settings, derived from the image processor's."""
    entry = {key: image_processor[key] for key in _SHARED_WITH_VIDEO if key in image_processor}
    entry["video_processor_type"] = STOCK_VIDEO_PROCESSOR
    return entry


def make_stock(folder: Path) -> None:
    """Rewrite a saved processor's metadata so that the stock classes load it."""
    config_path = folder / "processor_config.json"
    if not config_path.is_file():
        raise FileNotFoundError(f"{folder} has no processor_config.json: not a saved processor")
    config = json.loads(config_path.read_text())
    if "image_processor" not in config:
        raise ValueError(f"{config_path} has no image_processor entry: cannot derive the video processor")
    config["processor_class"] = STOCK_PROCESSOR_CLASS
    config.setdefault("video_processor", video_processor_entry(config["image_processor"]))
    config_path.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
    tokenizer_path = folder / "tokenizer_config.json"
    if tokenizer_path.is_file():
        tokenizer = json.loads(tokenizer_path.read_text())
        tokenizer["processor_class"] = STOCK_PROCESSOR_CLASS
        tokenizer_path.write_text(json.dumps(tokenizer, indent=2, sort_keys=True) + "\n")


def torchvision_works() -> bool:
    """Whether torchvision imports (it carries the stock video processor)."""
    try:
        import torchvision  # noqa: F401
    except Exception:  # missing, or a CUDA build that cannot load beside the CPU torch
        return False
    return True


def load_processor(path: str) -> Any:
    """Load a processor from a local folder: the stock one where torchvision works."""
    if torchvision_works():
        from transformers import AutoProcessor

        return AutoProcessor.from_pretrained(path)
    return ImageOnlyQwen2_5_VLProcessor.from_pretrained(path)


def suppressed_token_ids(tokenizer: PreTrainedTokenizerFast) -> list[int]:
    """Special tokens a completion must never contain (all but the end-of-turn token)."""
    return [tokenizer.convert_tokens_to_ids(t) for t in SPECIAL_TOKENS if t != "<|im_end|>"]
