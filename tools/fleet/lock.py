"""One render at a time, and nobody reads rendered/ while it is swapped: an flock on `.rendered.lock`.

`fleet render` holds the lock exclusively; `fleet lint` and `fleet render --check` share it, so
they never read a half-swapped tree and any number of them run together. Whoever first holds it
exclusively finishes what a killed render left (writer.recover) before anything is read. The
kernel drops an flock when its holder dies, so a killed render never leaves a stale lock; the
file itself stays (deleting a lock file races with the next taker) and is ignored by git.
"""
from __future__ import annotations

import fcntl
import os
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from .errors import InputError, SourceRef
from .writer import journal_path, recover

LOCK_NAME = ".rendered.lock"


@contextmanager
def rendered_lock(root: Path, command: str, *, write: bool) -> Iterator[list[str]]:
    """Hold the render lock while the block runs; yields what recovery did (lines for the user).

    Busy is exit 2 with the holder's pid. A reader in a checkout where the lock cannot be created
    (read-only) runs without it: nobody can render there either."""
    rendered = root / "rendered"
    if not root.is_dir():  # nothing to lock; loading the inputs says what is wrong
        yield []
        return
    try:
        fd = os.open(root / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:
        if write:
            raise InputError(f"cannot create the render lock: {exc.strerror or exc}", SourceRef(LOCK_NAME)) from None
        if journal_path(rendered).exists():
            raise InputError("a killed render left rendered/ half-swapped and the lock cannot be created to "
                             f"complete it ({exc.strerror or exc}); run `fleet render` where you can write",
                             SourceRef(journal_path(rendered).name)) from None
        yield []
        return
    try:
        yield _acquire(fd, root, command, write)
    finally:
        os.close(fd)  # releases the lock


def _acquire(fd: int, root: Path, command: str, write: bool) -> list[str]:
    rendered = root / "rendered"
    if write:
        _take(fd, fcntl.LOCK_EX, root)
        _record_owner(fd, command)
        return recover(rendered)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:  # held: by readers (share it) or by a render (busy)
        _take(fd, fcntl.LOCK_SH, root)
        notes: list[str] = []
    else:
        _record_owner(fd, command)
        notes = recover(rendered)
        fcntl.flock(fd, fcntl.LOCK_SH)  # a render slipping in here is waited for, then read whole
    if journal_path(rendered).exists():  # only if a render was killed in that instant
        raise InputError("a killed render left rendered/ half-swapped while another fleet command reads it; "
                         "rerun when it ends", SourceRef(journal_path(rendered).name))
    return notes


def _take(fd: int, mode: int, root: Path) -> None:
    try:
        fcntl.flock(fd, mode | fcntl.LOCK_NB)
    except BlockingIOError:
        raise InputError(_busy_message(root), SourceRef(LOCK_NAME)) from None


def _record_owner(fd: int, command: str) -> None:
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()} {command}\n".encode(), 0)


def _busy_message(root: Path) -> str:
    """Name the holder: the last exclusive taker recorded its pid and command; a reader that only
    shares the lock records nothing, so a dead or absent pid means readers hold it."""
    try:
        pid_text, _, command = (root / LOCK_NAME).read_text(encoding="utf-8").strip().partition(" ")
        pid = int(pid_text)
        if pid == os.getpid():  # recorded by an earlier command of this process (tests), not a holder
            raise ValueError(pid)
        os.kill(pid, 0)
    except PermissionError:  # alive, another user's
        pass
    except (OSError, ValueError):
        return "another fleet command (lint or render --check) is reading rendered/; rerun when it ends"
    if command == "render":
        return f"another fleet render is running (pid {pid}); rerun when it ends"
    return f"another fleet command is using rendered/ (pid {pid}, fleet {command}); rerun when it ends"
