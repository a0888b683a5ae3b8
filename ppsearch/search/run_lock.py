"""One driver per run directory: a lock that names its holder and dies with it.

The lock is an exclusive ``flock`` on ``run.lock``, which also holds the holder's host, process id
and start time. The kernel releases a ``flock`` when its holder exits in any way (``kill -9``
included), so a run is never locked by a driver that is gone; a file left naming a holder whose
lock was released says that driver ended without cleaning up, and the next driver takes over and
says so. The descriptor is not inherited by child processes (Python opens files non-inheritable),
so Ray's processes cannot keep a run locked after the driver is gone.
"""
from __future__ import annotations

import datetime
import fcntl
import json
import os
import socket
from pathlib import Path

from ..errors import UserError
from ..rundir import LOCK_FILE


class RunLock:
    """The held lock of a run directory (see :func:`hold_run`); released by :meth:`release` or by
    the process's end."""

    def __init__(self, descriptor: int, taken_over: str | None) -> None:
        self.descriptor = descriptor
        self.taken_over = taken_over  # the holder a driver that ended without cleaning up left named, if any

    def release(self) -> None:
        """Release the lock (once; later calls do nothing)."""
        if self.descriptor < 0:
            return
        os.ftruncate(self.descriptor, 0)  # an empty lock file: nobody to take over from
        os.close(self.descriptor)
        self.descriptor = -1


def check_free(run_dir: str | Path) -> None:
    """Refuse, writing nothing, a run directory whose lock a live driver holds: what a second driver
    checks first, so that it is refused before it starts anything (:func:`hold_run` checks again)."""
    path = Path(run_dir) / LOCK_FILE
    if path.is_file():
        descriptor = os.open(path, os.O_RDONLY)
        try:
            _lock(descriptor, run_dir)
        finally:
            os.close(descriptor)  # which releases the lock, if it was taken


def hold_run(run_dir: str | Path) -> RunLock:
    """Take ``run_dir``'s lock, or refuse in one line naming the driver that holds it."""
    path = Path(run_dir) / LOCK_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        _lock(descriptor, run_dir)
    except UserError:
        os.close(descriptor)
        raise
    previous = _holder(descriptor)
    me = {"host": socket.gethostname(), "pid": os.getpid(),
          "started": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")}
    os.ftruncate(descriptor, 0)
    os.pwrite(descriptor, json.dumps(me).encode(), 0)
    os.fsync(descriptor)
    return RunLock(descriptor, previous or None)


def _lock(descriptor: int, run_dir: str | Path) -> None:
    """Lock ``descriptor``'s file, or refuse naming the holder."""
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = _holder(descriptor)
        raise UserError(f"{run_dir} is in use by another ppsearch run ({holder}); wait for it to end or stop it, "
                        f"then run the same command again") from None


def _holder(descriptor: int) -> str:
    """Who the lock file names: ``pid 123 on host h since 2026-...``; empty when nobody."""
    text = os.pread(descriptor, 4096, 0).decode(errors="replace")
    try:
        holder = json.loads(text)
        return f"pid {holder['pid']} on {holder['host']} since {holder['started']}"
    except (ValueError, KeyError, TypeError):
        return text.strip() and "a holder the lock file does not name clearly"
