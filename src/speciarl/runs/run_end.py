"""What a run says last: where everything it wrote went, and the same lines in its log file.

A run ends with its before/after table and then this block, so whoever ran it knows where to look
without reading docs::

    run folder   outputs/2026-12-07/12-30-00
    results      outputs/2026-12-07/12-30-00/results.json
    policy       not saved (save_policy=true saves it, with its model card)
    checkpoint   none (checkpoint=periodic keeps them; speciarl.export reads last.ckpt)
    W&B          outputs/2026-12-07/12-30-00/wandb/offline-run-20261207_123000-abc123
                 upload: wandb sync outputs/2026-12-07/12-30-00/wandb/offline-run-20261207_123000-abc123
    log          outputs/2026-12-07/12-30-00/train.log

The log is Hydra's job log (``<run>/<job>.log``); nothing in a run logs at INFO, so without
:func:`copy_to_log` it would stay empty.
"""

from __future__ import annotations

import atexit
import logging
import os
import sys
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

LABEL_WIDTH = 13


@dataclass(frozen=True)
class WandbRun:
    """Where a W&B run lives: its local folder (offline runs), or its URL (online runs)."""

    folder: Path | None
    url: str | None


def wandb_run(loggers: Sequence[Any]) -> WandbRun | None:
    """The W&B run of ``loggers`` (read before ``wandb.finish``), or None without a W&B logger."""
    from lightning.pytorch.loggers import WandbLogger

    for logger in loggers:
        if isinstance(logger, WandbLogger):
            run = logger.experiment
            offline = getattr(run, "offline", False) or run.settings.mode == "offline"
            folder = Path(run.dir.rsplit("/files", 1)[0]) if getattr(run, "dir", None) else None
            return WandbRun(folder, None if offline else getattr(run, "url", None))
    return None


def last_checkpoint(run_dir: Path) -> Path | None:
    """The checkpoint a resume or an export would take: ``last.ckpt`` if any, else the newest ``.ckpt``."""
    found = sorted(run_dir.rglob("*.ckpt"), key=lambda p: (p.name == "last.ckpt", p.stat().st_mtime))
    return found[-1] if found else None


def job_log_file() -> Path | None:
    """The file Hydra's job logging writes (``<run>/train.log``), None when logging has no file."""
    for handler in logging.getLogger().handlers:
        if isinstance(handler, logging.FileHandler):
            return Path(handler.baseFilename)
    return None


def _line(label: str, text: str) -> str:
    return f"  {label:<{LABEL_WIDTH}}{text}"


def where_things_are(
    run_dir: Path, results: Mapping[str, Any], wandb: WandbRun | None, log_file: Path | None
) -> str:
    """The closing block of a run (the module docstring shows one); every path as it exists."""
    lines = ["where things are:", _line("run folder", str(run_dir))]
    results_file = run_dir / "results.json"
    lines.append(_line("results", str(results_file) if results_file.is_file() else "not written"))
    policy = results.get("policy_dir")
    lines.append(_line("policy", policy or "not saved (save_policy=true saves it, with its model card)"))
    checkpoint = last_checkpoint(run_dir)
    lines.append(
        _line(
            "checkpoint",
            str(checkpoint)
            if checkpoint
            else "none (checkpoint=periodic keeps them; speciarl.export reads them)",
        )
    )
    if wandb is None:
        lines.append(_line("W&B", "off (logger=default logs to W&B)"))
    elif wandb.url:
        lines.append(_line("W&B", wandb.url))
    else:
        lines.append(_line("W&B", str(wandb.folder)))
        lines.append(_line("", f"upload: wandb sync {wandb.folder}"))
    if log_file is not None:
        lines.append(_line("log", str(log_file)))
    return "\n".join(lines)


def copy_to_log(text: str) -> None:
    """Append ``text`` to the job log's files only (the terminal has it already)."""
    for handler in logging.getLogger().handlers:
        if isinstance(handler, logging.FileHandler):
            handler.flush()  # whatever it holds first, then our lines after it
            with open(handler.baseFilename, "a", encoding="utf-8") as log:
                log.write(text.rstrip("\n") + "\n")


def report_run_end(table: str, run_dir: Path, results: Mapping[str, Any], wandb: WandbRun | None) -> None:
    """Print the figures table, then where things are; both also go to the job log."""
    closing = where_things_are(run_dir, results, wandb, job_log_file())
    print(f"{table}\n\n{closing}", flush=True)
    copy_to_log(f"{table}\n\n{closing}")


def close_rollout(rollout: Any) -> None:
    """Shut a rollout backend's engine down when it has one (vLLM), so none outlives its run."""
    close = getattr(rollout, "close", None)
    if callable(close):
        close()


def run_then_exit(main: Callable[[], Any]) -> NoReturn:
    """Run an entry point's ``main``, then leave without the interpreter's teardown.

    At exit Python walks and frees every object torch, transformers, Lightning and W&B made
    (``Py_FinalizeEx``: a full garbage collection of the modules, then clearing them), and writes
    nothing: 10 s after the quickstart on 2 cores shared with other jobs, more on a busier machine.
    What does write runs first: thread pools are shut down and other non-daemon threads joined,
    the atexit handlers run (W&B, multiprocessing, logging), the streams are flushed; then
    ``os._exit(0)``. A failure (an exception, Hydra's ``sys.exit``) takes Python's normal path.
    """
    main()
    # What Python itself runs at exit, in its order, before the teardown skipped here: the threading
    # exit hooks (a thread pool's workers wait for them) and the join of non-daemon threads, then
    # the atexit handlers.
    threading._shutdown()
    atexit._run_exitfuncs()
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        stream.flush()
    os._exit(0)
