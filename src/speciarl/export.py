"""Export a trained policy for sharing: the LoRA adapter, or a merged / full model folder.

    python -m speciarl.export model=qwen2_5_vl_7b model.path=/models/Qwen2.5-VL-7B-Instruct \\
        ckpt_path=outputs/.../checkpoints/last.ckpt out_dir=exports/speciarl-7b merge=false

An adapter folder (``adapter_config.json`` + ``adapter_model.safetensors``, written by peft's
``save_pretrained``) loads with ``PeftModel.from_pretrained(base, folder)`` and, as a LoRA
request, in vLLM. A merged folder is a plain transformers model (base weights + B A * alpha / r)
that loads with ``from_pretrained`` and serves anywhere. The processor is saved beside either,
and a model card (``README.md``: license, base model, method, held-out figures, command) that
the Hub reads; ``run_dir=<the training run folder>`` fills in its method and figures.
"""

from __future__ import annotations

from speciarl.cli_help import answer_help

answer_help("export", __name__)  # before torch and Lightning load: --help in about a second

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import hydra
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig

from speciarl.policy.policy import Policy, is_peft_model
from speciarl.policy.saved import save_adapter, save_model
from speciarl.runs.checkpointing import export_policy_atomically
from speciarl.runs.run_end import copy_to_log, run_then_exit

log = logging.getLogger("speciarl.export")
CONF_DIR = str(Path(__file__).resolve().parent / "conf")
_MODEL_PREFIX = "model."


def load_checkpoint_weights(policy: Policy, ckpt_path: str | Path) -> None:
    """Put the trained weights of a training checkpoint into ``policy.model``.

    LoRA checkpoints hold only the trainable weights; every one of them must match the policy
    (same LoRA settings), or this fails naming the first missing or unexpected key.
    """
    path = Path(ckpt_path)
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {path} (ckpt_path=...)")
    checkpoint: dict[str, Any] = torch.load(path, map_location="cpu", weights_only=True)
    weights = {
        k[len(_MODEL_PREFIX) :]: v for k, v in checkpoint["state_dict"].items() if k.startswith(_MODEL_PREFIX)
    }
    trainable_only = bool(checkpoint.get("speciarl", {}).get("trainable_only"))
    result = policy.model.load_state_dict(weights, strict=not trainable_only)
    if trainable_only:
        expected = {n for n, p in policy.model.named_parameters() if p.requires_grad}
        missing = sorted(expected - set(weights))
        if missing or result.unexpected_keys:
            raise ValueError(
                f"checkpoint {path} does not match the policy: missing {missing[:1]}, unexpected "
                f"{list(result.unexpected_keys)[:1]} (build the policy with the LoRA settings it was trained with)"
            )


def export(
    policy: Policy,
    ckpt_path: str | None,
    out_dir: str,
    merge: bool,
    add_files: Callable[[Path], None] | None = None,
) -> Path:
    """Load ``ckpt_path`` (if given) into ``policy`` and write the adapter, or the merged model.

    The folder appears whole or not at all: it is written under a temporary name (with
    ``add_files``, e.g. the model card, inside it) and renamed to ``out_dir``; a full disk leaves
    the previous ``out_dir`` (or none) and raises ``DiskFullError``. Weights that are not finite
    are refused before anything is written.
    """
    if ckpt_path:
        load_checkpoint_weights(policy, ckpt_path)
    if is_peft_model(policy.model) and not merge:
        write: Callable[[Policy, Path], Path] = save_adapter
    else:
        write = lambda policy, folder: save_model(policy, folder, merge=True)  # noqa: E731
    return export_policy_atomically(policy, Path(out_dir), write, add_files)


@hydra.main(config_path=CONF_DIR, config_name="export", version_base="1.3")
def main(cfg: DictConfig) -> None:
    from speciarl.runs.console import quiet_console
    from speciarl.runs.model_card import card_info_from_run, write_model_card

    quiet_console()
    policy = instantiate(cfg.model)

    def add_card(staged: Path) -> None:  # the card appears with the weights, in the same rename
        kind = "adapter" if (staged / "adapter_config.json").is_file() else "full"
        write_model_card(staged, card_info_from_run(cfg.get("run_dir"), cfg.model, kind))

    out = export(policy, cfg.ckpt_path, cfg.out_dir, bool(cfg.merge), add_card)
    done = f"exported to {out} (with README.md, ready for `huggingface_hub.upload_folder` / push_to_hub)"
    print(done)
    copy_to_log(done)  # the run's export.log says it too (nothing else logs at INFO)


if __name__ == "__main__":
    run_then_exit(main)  # no interpreter teardown after the last line (runs.run_end)
