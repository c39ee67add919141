"""One writer per run folder: an exclusive ``fcntl.flock`` on ``<run>/.persrm.lock``, released by the
operating system when the holder exits, however it exits. A second writer is refused at once with
:class:`RunFolderBusyError`, naming the holder (pid, command, since when, recorded in the file).

A process may take its lock again, and the processes it starts inherit it (``$PERSRM_RUN_LOCKS``):
the runner's kernels and a notebook's subprocesses are part of its writer. Under ``accelerate
launch`` rank 0 holds it for all ranks.
"""

from __future__ import annotations

import fcntl
import functools
import json
import os
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

LOCK_FILE = ".persrm.lock"
INHERITED_ENV = "PERSRM_RUN_LOCKS"  # run folders held by this process or an ancestor, os.pathsep-separated

T = TypeVar("T")
_held: dict[Path, tuple[int, int]] = {}  # run folder -> (file descriptor, times taken)
_mutex = threading.Lock()


class RunFolderBusyError(RuntimeError):
    """Another process writes to the run folder; the message names it (pid, command, since when)."""


def _inherited() -> set[str]:
    return {p for p in os.environ.get(INHERITED_ENV, "").split(os.pathsep) if p}


def _set_inherited(folders: set[str]) -> None:
    if folders:
        os.environ[INHERITED_ENV] = os.pathsep.join(sorted(folders))
    else:
        os.environ.pop(INHERITED_ENV, None)


def _holder(fd: int) -> str:
    """Who holds the lock, from what the holder wrote into the file."""
    try:
        info = json.loads(os.pread(fd, 65536, 0).decode("utf-8"))
        return f"pid {info['pid']} ({info['command']}, since {info['since']})"
    except (OSError, ValueError, KeyError, TypeError):
        return "another process (it has not recorded itself yet)"


def holder(run_dir: str | Path) -> str | None:
    """Who holds a run folder's lock now, or None when nobody does."""
    path = Path(run_dir) / LOCK_FILE
    if not path.is_file():
        return None
    fd = os.open(path, os.O_RDONLY)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return _holder(fd)
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)


def acquire(run_dir: str | Path, command: str | None = None) -> Path:
    """Take a run folder's lock (creating the folder) and return the folder, resolved; ``command``
    is how a refused writer names this one (default: this process's command line).

    Raises:
        RunFolderBusyError: ``<run> is in use by pid N (<command>, since <time>): ...``.
    """
    run = Path(run_dir).resolve()
    with _mutex:
        if run in _held:
            fd, count = _held[run]
            _held[run] = (fd, count + 1)
            return run
        if str(run) in _inherited():  # a process started by the holder: part of that writer
            return run
        if os.environ.get("RANK", "0") != "0":  # accelerate launch: rank 0 holds it for the whole group
            return run
        run.mkdir(parents=True, exist_ok=True)
        fd = os.open(run / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            who = _holder(fd)
            os.close(fd)
            raise RunFolderBusyError(
                f"{run} is in use by {who}: one writer at a time; wait for it to finish, or use another run folder"
            ) from None
        record = {
            "pid": os.getpid(),
            "command": command or " ".join(getattr(sys, "orig_argv", sys.argv)),
            "since": time.strftime("%Y-%m-%d %H:%M:%S"),
        }
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(record).encode("utf-8"), 0)
        _held[run] = (fd, 1)
        _set_inherited(_inherited() | {str(run)})
    return run


def release(run_dir: str | Path) -> None:
    """Give back one :func:`acquire` of this process; the lock goes when the last one is given back."""
    run = Path(run_dir).resolve()
    with _mutex:
        if run not in _held:
            return  # inherited from the holder, or never taken
        fd, count = _held[run]
        if count > 1:
            _held[run] = (fd, count - 1)
            return
        del _held[run]
        _set_inherited(_inherited() - {str(run)})
        try:
            os.ftruncate(fd, 0)
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)


@contextmanager
def run_lock(run_dir: str | Path, command: str | None = None) -> Iterator[Path]:
    """:func:`acquire` for a ``with`` block; released when the block ends, however it ends."""
    run = acquire(run_dir, command)
    try:
        yield run
    finally:
        release(run)


def holds_run_lock(function: Callable[..., T]) -> Callable[..., T]:
    """Decorate a function whose second argument (or ``run=``) is a run folder it writes: it runs
    holding that folder's lock (:func:`run_lock`)."""

    @functools.wraps(function)
    def locked(*args: Any, **kwargs: Any) -> T:
        run = kwargs["run"] if "run" in kwargs else args[1]
        with run_lock(run):
            return function(*args, **kwargs)

    return locked
