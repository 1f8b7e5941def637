"""Periodic checkpoints that resume exactly, with a shareable policy export beside each.

A checkpoint (``*.ckpt``) holds what Lightning saves (trainable weights, AdamW state, loop
progress: the optimiser step) plus the data module's position (global batches consumed) and
SpeciaRLModule's extras (every rank's RNG states, running totals, rollout-backend state); see
``SpeciaRLModule.on_save_checkpoint``. ``python -m speciarl.train ... ckpt_path=<file>`` resumes
from it. Next to each, ``<name>-policy/`` holds the LoRA adapter in peft format (loadable by
``PeftModel.from_pretrained`` and as a vLLM LoRA request) or, for full fine-tuning, the model.
The export is atomic: it is written to a hidden temporary folder beside the target and renamed
into place, so a run killed mid-export leaves the previous export (or none), never a half-written
folder; a temporary folder left by a killed run is removed by the next export.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

from lightning.pytorch.callbacks import ModelCheckpoint

from speciarl.runs.atomic_files import write_folder_atomically
from speciarl.runs.nonfinite import refuse_nonfinite

log = logging.getLogger(__name__)
# The checkpoint is meant to hold the state *after* the step's updates (what a resumed run
# continues from); Lightning's advice for manual optimisation does not apply.
warnings.filterwarnings("ignore", message=".*no pre-optimization state was saved.*")


class RLCheckpoint(ModelCheckpoint):
    """ModelCheckpoint every ``every_n_train_steps`` optimiser steps, plus ``last.ckpt``.

    Args:
        dirpath: where checkpoints go.
        every_n_train_steps: save period in optimiser steps (Lightning's global step; with
            ``algorithm.mini_batches`` M a rollout batch advances it by M).
        export_policy: also write the adapter (or full model) beside each checkpoint.
        save_top_k: how many periodic checkpoints to keep (-1: all).
        model_path, tags: the base model and the run's tags, for the exports' model cards.
        write_policy: ``(policy, folder) -> None`` writing the export (the LoRA adapter or the
            model; ``speciarl.policy.saved.save_checkpoint_export`` in the config): passed in, so
            that this toolbox imports nothing of the policy.
    """

    def __init__(
        self,
        dirpath: str,
        every_n_train_steps: int = 50,
        export_policy: bool = True,
        save_top_k: int = -1,
        save_last: bool = True,
        model_path: str | None = None,
        tags: list[str] | None = None,
        write_policy: Callable[[Any, Path], Any] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(
            dirpath=dirpath,
            every_n_train_steps=every_n_train_steps,
            save_top_k=save_top_k,
            save_last=save_last,
            filename="step-{step:06d}",  # no "=": the name goes on Hydra command lines
            auto_insert_metric_name=False,
            **kwargs,
        )
        if export_policy and write_policy is None:
            raise ValueError("export_policy=true needs write_policy (checkpoint.write_policy in the config)")
        self.export_policy, self.write_policy = export_policy, write_policy
        self.model_path, self.tags = model_path, [str(t) for t in tags or [] if "=" not in str(t)]

    def _save_checkpoint(self, trainer: Any, filepath: str) -> None:
        super()._save_checkpoint(trainer, filepath)
        if not self.export_policy or not trainer.is_global_zero:
            return
        policy = getattr(trainer.lightning_module, "policy", None)
        if policy is None:
            return
        if type(trainer.strategy).__name__.startswith("FSDP"):
            # Sharded weights would need a full-state gather; export from the checkpoint instead.
            log.info("FSDP run: no policy export beside %s (use python -m speciarl.export)", filepath)
            return
        target = Path(filepath).with_suffix("")
        step = trainer.global_step
        export_policy_atomically(
            policy,
            target.with_name(target.name + "-policy"),
            self.write_policy,
            lambda staged: self._write_card(staged, step),
        )

    def _write_card(self, folder: Path, step: int) -> None:
        """A model card beside the export (no held-out figures: those come at the end of the run)."""
        from speciarl.runs.loggers import config_choice
        from speciarl.runs.model_card import CardInfo, base_model_id, write_model_card

        kind = "adapter" if (folder / "adapter_config.json").is_file() else "full"
        method = f"{self.tags[0]}+{self.tags[-1]}" if self.tags else "unknown"
        reward = self.tags[-1] if self.tags else "unknown"
        info = CardInfo(
            base_model_id({"path": self.model_path}), method, reward, config_choice("data", "unknown"), kind
        )
        info.command += f"  # checkpoint at optimiser step {step}"
        write_model_card(folder, info)


def export_policy_atomically(
    policy: Any,
    target: Path,
    write_policy: Callable[[Any, Path], Any],
    add_files: Callable[[Path], None] | None = None,
) -> Path:
    """Write the policy to ``target`` with ``write_policy`` through a temporary folder and a rename.

    ``add_files`` writes extra files (the model card) into the staged folder, so they appear
    together with the weights.
    """
    target = Path(target)
    refuse_nonfinite(policy.model.state_dict(), str(target))

    def fill(staging: Path) -> None:
        write_policy(policy, staging)
        if add_files is not None:
            add_files(staging)

    return write_folder_atomically(target, fill)
