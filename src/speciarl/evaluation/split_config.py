"""The data config that evaluation builds: only the split it reads.

``python -m speciarl.evaluate data=image_folder data.train.folder=<root>`` reads ``<root>/test``;
building the whole data module would also demand ``<root>/train`` and ``<root>/val``, which an
evaluation folder need not have. For the plain data module (``SamplesDataModule``) the splits
that are not read are set to null before it is built (``val`` is kept when there is no ``test``:
it is what evaluation falls back to). Other data modules (the benchmarks) read their splits
lazily and are left as they are.
"""

from __future__ import annotations

import logging
from typing import Any

from omegaconf import DictConfig, OmegaConf
from torch.utils.data import Dataset

log = logging.getLogger("speciarl.evaluate")

SPLITS = ("train", "val", "test")


def data_for_split(data: DictConfig, split: str) -> DictConfig:
    """``data`` resolved, with only what evaluating ``split`` reads.

    Args:
        data (DictConfig): the ``data`` group of the composed config.
        split (str): ``eval.split``: ``test`` (falls back to ``val``), ``val`` or ``train``.
    """
    if not str(data.get("_target_", "")).endswith("SamplesDataModule") or split not in SPLITS:
        return data
    # Resolved first: val and test interpolate train's folder, which is about to be dropped.
    plain = OmegaConf.create(OmegaConf.to_container(data, resolve=True))
    keep = split if split != "test" or plain.get("test") is not None else "val"
    for name in SPLITS:
        if name != keep and plain.get(name) is not None:
            plain[name] = None
    if keep != "train" and "train_subset" in plain:
        plain["train_subset"] = None
    return plain


def evaluation_split(datamodule: Any, split: str) -> Dataset:
    """The ``test`` (or ``val``) dataset of a data config's DataModule."""
    if split == "test":
        data = getattr(datamodule, "test_set", None) or datamodule.val_set
        if getattr(datamodule, "test_set", None) is None:
            log.warning("the data config has no test split: evaluating its validation split")
    elif split == "val":
        data = datamodule.val_set
    elif split == "train":
        data = datamodule.train_set
    else:
        raise ValueError(f"eval.split must be test, val or train, got {split!r}")
    if data is None:
        raise ValueError(f"the data config has no {split} split")
    return data
