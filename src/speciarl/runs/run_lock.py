"""One run folder, one run: a lock file that a second run into the same folder refuses.

Two runs writing one folder interleave their metrics, overwrite each other's checkpoints and
completion tables, and both exit 0. :class:`RunFolderLock` creates ``<run>/.run.lock`` with
O_EXCL (atomic, also on NFS v3+) holding the owner's host, process id and start time. A second
run refuses with a message naming the owner. A lock whose process is gone (same host, no such
process) is stale: it is taken over with a warning. A lock from another host cannot be checked
and is refused; the message says how to remove it if that run is known to be dead.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import time
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)
LOCK_NAME = ".run.lock"


class RunFolderBusyError(RuntimeError):
    """Another live run holds the run folder."""


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, owned by someone else
    return True


class RunFolderLock:
    """Hold ``<folder>/.run.lock`` while a run writes the folder (a context manager).

    Args:
        folder (path): the run folder.
    """

    def __init__(self, folder: str | os.PathLike) -> None:
        self.path = Path(folder) / LOCK_NAME
        self.held = False

    def _owner(self) -> dict[str, Any]:
        try:
            return json.loads(self.path.read_text())
        except (OSError, ValueError):
            return {}

    def acquire(self) -> None:
        """Take the lock, or take over a stale one.

        Raises:
            RunFolderBusyError: a live run (or one on another host) holds the folder.
        """
        me = {"host": socket.gethostname(), "pid": os.getpid(), "started": time.strftime("%Y-%m-%d %H:%M:%S")}
        for _ in range(3):  # a takeover races another run's: retry the exclusive create
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                self._check_stale()
                continue
            with os.fdopen(fd, "w") as fh:
                fh.write(json.dumps(me))
            self.held = True
            return
        raise RunFolderBusyError(f"could not take {self.path}: other runs keep taking it")

    def _check_stale(self) -> None:
        owner = self._owner()
        host, pid = owner.get("host"), owner.get("pid")
        where = self.path.parent
        if host == socket.gethostname() and isinstance(pid, int) and not _alive(pid):
            log.warning("run folder %s: taking over the lock of process %d, which is gone", where, pid)
            self.path.unlink(missing_ok=True)
            return
        if not owner:
            # Being written this instant, or left empty by a crash: give the writer a moment.
            time.sleep(0.2)
            if not self._owner():
                log.warning("run folder %s: removing an unreadable lock file", where)
                self.path.unlink(missing_ok=True)
            return
        raise RunFolderBusyError(
            f"run folder {where} is in use by another run (host {host}, pid {pid}, started "
            f"{owner.get('started')}): two runs in one folder overwrite each other's checkpoints "
            f"and results. Use another folder (hydra.run.dir=...), or, if that run is dead, delete {self.path}"
        )

    def release(self) -> None:
        if self.held:
            if self._owner().get("pid") == os.getpid():
                self.path.unlink(missing_ok=True)
            self.held = False

    def __enter__(self) -> RunFolderLock:
        self.acquire()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.release()
