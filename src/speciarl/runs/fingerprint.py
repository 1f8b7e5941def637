"""What shapes a run's trajectory, recorded in its checkpoints and compared when it resumes.

A checkpoint holds the weights, the optimiser state and the positions of the data and RNG
streams, not the settings that produced them. Resuming with another algorithm, reward, group
size, batch size, model, optimiser, data or seed would silently continue a different experiment
from the first one's state. :func:`run_fingerprint` flattens those settings to dotted keys
(``algorithm.group_size: 8``); :class:`FingerprintCallback` stores them in every checkpoint and
:func:`check_resume` refuses a resume whose settings differ, listing the changed keys and the
override that accepts them on purpose (``resume_accept_changes=[algorithm.group_size]``).

The optimiser cannot be changed on resume at all: Lightning restores the optimiser's state,
including its hyperparameters (learning rate, betas, weight decay), from the checkpoint, and a
different optimiser class has a different state (Adam's moments are no SGD momentum).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from lightning.pytorch import Callback

CHECKPOINT_KEY = "speciarl_fingerprint"
SECTIONS = ("algorithm", "reward", "model", "optimizer", "data", "seed")
# Settings of the data group that do not touch training: the held-out splits and the loaders.
DATA_EXCLUDED = ("data.val", "data.test", "data.val_batch_size", "data.num_workers")
NEVER_ACCEPTED = ("optimizer",)


class ResumeMismatchError(ValueError):
    """The checkpoint was written by a run with other trajectory-shaping settings."""


def _flatten(value: Any, prefix: str, out: dict[str, str]) -> None:
    if isinstance(value, Mapping):
        for key, item in value.items():
            _flatten(item, f"{prefix}.{key}", out)
    else:
        out[prefix] = json.dumps(value, sort_keys=True, default=str)


def run_fingerprint(config: Mapping[str, Any]) -> dict[str, str]:
    """The trajectory-shaping settings of a resolved run config, as dotted key -> JSON value.

    Args:
        config (mapping): the run config as plain containers (``OmegaConf.to_container(cfg,
            resolve=True)``); only the sections of ``SECTIONS`` are read.
    """
    flat: dict[str, str] = {}
    for section in SECTIONS:
        if section in config:
            _flatten(config[section], section, flat)
    return {
        key: value
        for key, value in sorted(flat.items())
        if not any(key == skip or key.startswith(skip + ".") for skip in DATA_EXCLUDED)
    }


def _covered(key: str, accepted: Sequence[str]) -> bool:
    return any(key == item or key.startswith(str(item) + ".") for item in accepted)


def check_resume(
    saved: Mapping[str, str] | None, current: Mapping[str, str], accepted: Sequence[str], ckpt: str
) -> list[str]:
    """Refuse a resume whose settings differ from the checkpoint's, unless accepted on purpose.

    Args:
        saved (mapping or None): the checkpoint's fingerprint (None: written before fingerprints).
        current (mapping): this run's fingerprint.
        accepted (sequence of str): keys (or section prefixes) whose change is intended.
        ckpt (str): the checkpoint path, for the message.

    Returns:
        list of str: the accepted changes, one ``key: old -> new`` line each.

    Raises:
        ResumeMismatchError: listing every changed key and the override that accepts them.
    """
    if saved is None:
        return []
    changed = sorted(k for k in set(saved) | set(current) if saved.get(k) != current.get(k))
    lines = [f"  {k}: {saved.get(k, '(unset)')} -> {current.get(k, '(unset)')}" for k in changed]
    optimiser = [k for k, line in zip(changed, lines, strict=True) if _covered(k, NEVER_ACCEPTED)]
    if optimiser:
        raise ResumeMismatchError(
            f"ckpt_path={ckpt} was trained with another optimiser setting:\n"
            + "\n".join(line for k, line in zip(changed, lines, strict=True) if k in optimiser)
            + "\nThe optimiser's state (and its hyperparameters) is restored from the checkpoint, so "
            "it cannot change on resume: resume with the checkpoint's optimizer settings, or start a "
            "new run from the exported policy (<checkpoint>-policy/)"
        )
    refused = [k for k in changed if not _covered(k, accepted)]
    if refused:
        raise ResumeMismatchError(
            f"ckpt_path={ckpt} was written by a run with other settings:\n"
            + "\n".join(line for k, line in zip(changed, lines, strict=True) if k in refused)
            + "\nResuming would continue a different experiment from its state. To do so on purpose, "
            f"add: 'resume_accept_changes=[{','.join(refused)}]'"
        )
    return lines


class FingerprintCallback(Callback):
    """Stores the run's fingerprint in every checkpoint it writes.

    Args:
        fingerprint (mapping): from :func:`run_fingerprint`.
    """

    def __init__(self, fingerprint: Mapping[str, str]) -> None:
        self.fingerprint = dict(fingerprint)

    def on_save_checkpoint(self, trainer: Any, pl_module: Any, checkpoint: dict[str, Any]) -> None:
        checkpoint[CHECKPOINT_KEY] = dict(self.fingerprint)
