"""Whether a mount uses a server's cache directory: a `flock` on <cache_dir>/jhfs.lock.

Every mount holds a shared lock on it for its whole life, from the process
that serves (`hold_shared`); mounts sharing the directory share the lock.
`jhfs cache clear` takes it exclusively without waiting (`exclusive`): it
gets it only when no mount holds it, and while it holds it no mount starts
(`hold_shared` waits up to LOCK_WAIT for the clear to end). The kernel drops
a lock with the last descriptor of its open file, so a mount killed with
SIGKILL, or crashed, holds nothing: no stale lock to clean up.

Who holds it (`holders`) is in /proc/locks: the processes of the mounts
using the directory, which `jhfs cache` names.

The lock file itself is never deleted: a mount waiting on it must get the
lock of the file a later clear locks too, not of an unlinked one.
"""

from __future__ import annotations

import errno
import fcntl
import logging
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

logger = logging.getLogger(__name__)

LOCK_NAME = "jhfs.lock"
LOCK_WAIT = 10.0  # seconds a mount waits for a `jhfs cache clear` to end
_RETRY = 0.05  # seconds between tries while waiting


class CacheLockedError(Exception):
    """The cache directory is being cleared: a mount of it cannot start now."""


def _open(cache_dir: Path, create: bool) -> int:
    flags = os.O_RDWR | os.O_NOFOLLOW | os.O_CLOEXEC | (os.O_CREAT if create else 0)
    return os.open(cache_dir / LOCK_NAME, flags, 0o600)


def _try(fd: int, operation: int) -> bool:
    try:
        fcntl.flock(fd, operation | fcntl.LOCK_NB)
    except OSError as exc:
        if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
            return False
        raise
    return True


def hold_shared(cache_dir: Path, wait: float = LOCK_WAIT) -> int:
    """Take the shared lock of a mount on `cache_dir`; the descriptor that holds it
    (closing it, or the process ending, lets it go). CacheLockedError if a clear
    still holds it after `wait` seconds."""
    fd = _open(cache_dir, create=True)
    deadline = time.monotonic() + wait
    told = False
    while not _try(fd, fcntl.LOCK_SH):
        if time.monotonic() >= deadline:
            os.close(fd)
            raise CacheLockedError(
                f"{cache_dir} is being cleared (`jhfs cache clear`); mount again once it is done"
            )
        if not told:
            logger.info("%s is being cleared: waiting for that to end", cache_dir)
            told = True
        time.sleep(_RETRY)  # flock has no timeout of its own
    return fd


@contextmanager
def exclusive(cache_dir: Path) -> Iterator[bool]:
    """Hold the lock on `cache_dir` exclusively for the block, if no mount holds it:
    yields whether it got it (False: a mount uses the directory)."""
    fd = _open(cache_dir, create=True)
    try:
        yield _try(fd, fcntl.LOCK_EX)
    finally:
        os.close(fd)


def in_use(cache_dir: Path) -> bool:
    """Whether a mount (or a clear) holds the lock on `cache_dir` now. Creates nothing:
    a directory without a lock file was never locked."""
    try:
        fd = _open(cache_dir, create=False)
    except FileNotFoundError:
        return False
    try:
        return not _try(fd, fcntl.LOCK_EX)
    finally:
        os.close(fd)


def holders(cache_dir: Path) -> set[int]:
    """The pids holding the lock on `cache_dir` (the mounts using it), from /proc/locks."""
    try:
        info = os.stat(cache_dir / LOCK_NAME, follow_symlinks=False)
        with open("/proc/locks") as table:
            lines = table.readlines()
    except OSError:
        return set()
    # "1: FLOCK  ADVISORY  READ 16528 fe:00:2548755 0 EOF": the device in hex, the inode
    # in decimal; a "->" line is a process waiting for the lock, not holding it.
    wanted = f"{os.major(info.st_dev):02x}:{os.minor(info.st_dev):02x}:{info.st_ino}"
    found = set()
    for line in lines:
        fields = line.split()
        if len(fields) >= 6 and fields[1] == "FLOCK" and fields[5] == wanted:
            found.add(int(fields[4]))
    return found
