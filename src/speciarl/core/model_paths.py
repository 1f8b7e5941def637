"""Where a model's weights are: a local folder or the local Hugging Face cache, never a download.

Used by the policy loader and by the in-process judge alike.
"""

from __future__ import annotations

from pathlib import Path


def resolve_model_path(path: str | Path, allow_download: bool = False) -> str:
    """A local folder, or a hub id found in the local cache; never a silent download."""
    local = Path(str(path)).expanduser()
    if local.is_dir():
        if not (local / "config.json").is_file():
            raise FileNotFoundError(
                f"model folder {local} has no config.json: expected a transformers model folder "
                "(set model.path to one)"
            )
        return str(local)
    if allow_download:
        return str(path)
    try:
        from huggingface_hub import snapshot_download

        return snapshot_download(str(path), local_files_only=True)
    except Exception as err:
        raise FileNotFoundError(
            f"model {path!r} is not a local folder and is not in the Hugging Face cache. Set "
            "model.path=/path/to/local/folder, or model.allow_download=true on a machine with "
            "network access."
        ) from err
