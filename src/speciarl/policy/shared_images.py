"""Encode each distinct image once per training forward.

The G rollouts of a prompt carry G copies of its image, and the stock forward runs the vision
tower on every copy: G times the vision work, forward and backward. ``generate`` already encodes
before expanding to G sequences; this does the same for the log-prob passes. The features of a
distinct image are computed once and handed to the language model once per copy, so gradients
from all G rows add up in the one vision pass: the same values and gradients as the stock
forward (up to float summation order), for 1/G of the vision compute and activations.
"""

from __future__ import annotations

import inspect
from typing import Any

import torch
from torch import Tensor


def distinct_image_index(pixel_values: Tensor, image_grid_thw: Tensor) -> list[int]:
    """For every image, the index of the distinct image it copies; a run of equal consecutive images is one.

    Images are the blocks of ``pixel_values`` split by ``image_grid_thw.prod(-1)``. Only
    neighbours are compared (rows of one prompt are consecutive), so the cost is one comparison
    per image.
    """
    sizes = image_grid_thw.prod(-1).tolist()
    blocks = torch.split(pixel_values, sizes)
    index: list[int] = []
    distinct = -1
    for i, block in enumerate(blocks):
        same = (
            i > 0
            and sizes[i] == sizes[i - 1]
            and torch.equal(image_grid_thw[i], image_grid_thw[i - 1])
            and torch.equal(block, blocks[i - 1])
        )
        if not same:
            distinct += 1
        index.append(distinct)
    return index


def direct_calls_allowed(model: torch.nn.Module) -> bool:
    """True when the model's parts may be called directly (no FSDP wrapper, no sharded DTensor parameters).

    The fast paths call the vision tower, the backbone and the LM head one by one; sharded
    models gather their parameters only in the root forward, so they take the stock call.
    """
    for module in model.modules():
        if "FullyShardedDataParallel" in type(module).__name__ or hasattr(module, "_fsdp_wrapped_module"):
            return False
    return not any(type(p).__name__ == "DTensor" for p in model.parameters())


def _accepts_encoder_outputs(model: torch.nn.Module) -> bool:
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    return hasattr(base, "get_image_features") and (
        "mm_encoder_outputs" in inspect.signature(base.forward).parameters
    )


def image_inputs(model: torch.nn.Module, pixel_values: Tensor, image_grid_thw: Tensor) -> dict[str, Any]:
    """Forward kwargs for the images: pre-encoded once per distinct image when that saves work.

    Returns ``{"pixel_values", "image_grid_thw"}`` (the stock path) when every image is distinct
    or the model cannot take pre-computed features, else ``{"mm_encoder_outputs",
    "image_grid_thw"}``; ``image_grid_thw`` stays per image since positions need it.
    """
    stock = {"pixel_values": pixel_values, "image_grid_thw": image_grid_thw}
    if image_grid_thw.shape[0] < 2 or not _accepts_encoder_outputs(model) or not direct_calls_allowed(model):
        return stock
    index = distinct_image_index(pixel_values, image_grid_thw)
    if index[-1] + 1 == len(index):
        return stock
    from transformers.modeling_outputs import BaseModelOutputWithPooling

    first = [index.index(d) for d in range(index[-1] + 1)]
    blocks = torch.split(pixel_values, image_grid_thw.prod(-1).tolist())
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    encoded = base.get_image_features(torch.cat([blocks[i] for i in first]), image_grid_thw[first])
    features = encoded.pooler_output
    per_image = tuple(features[d] for d in index)
    return {
        "mm_encoder_outputs": {"image": BaseModelOutputWithPooling(pooler_output=per_image)},
        "image_grid_thw": image_grid_thw,
    }
