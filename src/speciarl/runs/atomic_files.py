"""Files that appear whole or not at all: written to a temporary name, fsynced, renamed.

A run killed mid-write, or a disk that fills up mid-write, must never leave a truncated file
under a final name (a truncated checkpoint cannot be loaded, a truncated results.json cannot be
parsed). Every writer here stages the content beside the target (same folder, so the rename is
atomic on POSIX file systems), fsyncs it, renames it into place and fsyncs the folder so the
rename itself survives a crash. A failed write removes its temporary file; a disk that is full
(ENOSPC, EDQUOT, EFBIG) is reported as :class:`DiskFullError`, naming the file and the free space.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

# errno values that mean "no room": the disk, the user's quota, or a file-size limit.
NO_SPACE = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)
TMP_MARK = ".tmp-"


class DiskFullError(OSError):
    """A write failed for lack of space; nothing was left under the final name."""

    def __str__(self) -> str:
        return str(self.strerror)  # the whole message, without OSError's "[Errno 28]" prefix


def staging_name(target: Path) -> Path:
    """The temporary name of ``target`` while it is written (hidden, same folder, per process)."""
    return target.with_name(f".{target.name}{TMP_MARK}{os.getpid()}")


def disk_full_message(target: Path, error: OSError) -> str:
    """One line: which file could not be written, why, and how much room the folder has left."""
    try:
        free = shutil.disk_usage(target.parent).free
        room = f"{free / 2**20:.1f} MiB free on the file system of {target.parent}"
    except OSError:
        room = f"the free space of {target.parent} could not be read"
    return (
        f"disk full: could not write {target} ({os.strerror(error.errno or 0)}; {room}). "
        "Nothing was left under that name; free space (or move the run folder) and resume"
    )


def _fsync_folder(folder: Path) -> None:
    """Make a rename in ``folder`` durable (a no-op where folders cannot be opened)."""
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _no_space_errno(error: BaseException | None) -> int | None:
    """The no-room errno in ``error`` or the exceptions it was raised from, else None.

    Writers wrap the OS error: torch.save's archive writer raises a RuntimeError ("unexpected
    pos") while handling the OSError, safetensors raises its own type with the OS message.
    """
    seen = 0
    while error is not None and seen < 10:
        code = getattr(error, "errno", None)
        if code in NO_SPACE:
            return code
        if "No space left on device" in str(error):
            return errno.ENOSPC
        error, seen = error.__cause__ or error.__context__, seen + 1
    return None


def _raise_disk_full(target: Path, error: BaseException) -> None:
    """Re-raise ``error`` as DiskFullError when it (or what it wraps) says there is no room."""
    code = _no_space_errno(error)
    if code is not None:
        raise DiskFullError(code, disk_full_message(target, OSError(code, os.strerror(code)))) from error


@contextlib.contextmanager
def atomic_file(target: str | os.PathLike, mode: str = "wb") -> Iterator[IO[Any]]:
    """Open a staging file for writing; on a clean exit it is fsynced and renamed to ``target``.

    Args:
        target (path): the final name.
        mode (str): ``"wb"`` or ``"w"`` (text, UTF-8).

    Yields:
        IO: the open staging file. An exception inside the block removes it and re-raises
        (a full disk as :class:`DiskFullError`).
    """
    target = Path(target)
    staging = staging_name(target)
    try:
        with open(staging, mode, **({} if "b" in mode else {"encoding": "utf-8"})) as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(staging, target)
    except BaseException as error:
        with contextlib.suppress(OSError):
            staging.unlink()
        if isinstance(error, Exception):
            _raise_disk_full(target, error)
        raise
    _fsync_folder(target.parent)


def write_text_atomically(target: str | os.PathLike, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``target`` whole or not at all; returns the path."""
    with atomic_file(target, "w") as fh:
        fh.write(text)
    return Path(target)


def save_with(target: str | os.PathLike, write: Callable[[IO[bytes]], None]) -> Path:
    """Run ``write(fh)`` into a staging file and rename it to ``target`` (e.g. ``torch.save``)."""
    with atomic_file(target, "wb") as fh:
        write(fh)
    return Path(target)


def publish_folder(staging: Path, target: Path) -> Path:
    """Fsync every file of the staged folder and rename it to ``target`` (replacing an old one).

    A rename cannot replace a non-empty folder: the old one is moved aside first, then removed.
    """
    for path in staging.rglob("*"):
        if path.is_file():
            with path.open("rb") as fh:
                os.fsync(fh.fileno())
    if target.exists():
        retired = target.with_name(f".{target.name}{TMP_MARK}old-{os.getpid()}")
        os.replace(target, retired)
        os.replace(staging, target)
        shutil.rmtree(retired, ignore_errors=True)
    else:
        os.replace(staging, target)
    _fsync_folder(target.parent)
    return target


def write_folder_atomically(target: str | os.PathLike, fill: Callable[[Path], None]) -> Path:
    """Build a folder with ``fill(staging)`` and publish it as ``target`` whole or not at all.

    Temporary folders left by a killed run are removed first. A full disk leaves the previous
    ``target`` (or none) and raises :class:`DiskFullError`.
    """
    target = Path(target)
    for stale in target.parent.glob(f".{target.name}{TMP_MARK}*"):
        shutil.rmtree(stale, ignore_errors=True)
    staging = staging_name(target)
    try:
        fill(staging)
        return publish_folder(staging, target)
    except BaseException as error:
        shutil.rmtree(staging, ignore_errors=True)
        if isinstance(error, Exception):
            _raise_disk_full(target, error)
        raise
