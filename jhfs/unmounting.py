"""Mounts on a path: what /proc/self/mountinfo says is there, whether its process still
answers, and unmounting it (`jhfs umount`, and a dead jhfs's mount before a new one).

`jhfs umount` unmounts with fusermount; a busy mount's process is asked to
end. A mount is busy while a program has a file or directory of it open, a
reader waiting on a download say. Then the process serving the mount (which
names itself through the root's user.jhfs.pid attribute) gets SIGTERM, as
from `kill`: it lets waiting reads go with EIO, keeps partial downloads for
the next mount, unmounts and exits. A mount that does not answer is detached
lazily instead.

A FUSE mount outlives its process when that is killed (SIGKILL, a crash):
the kernel then answers every request with ENOTCONN until it is unmounted.
`answers` tells such a dead mount from a live one without ever blocking on
a hung one, and `unmount_dead` clears it.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar
from urllib.parse import urlsplit

from jhfs.nodes.tree import XATTR_PID

T = TypeVar("T")

SUBTYPE = "jhfs"  # the FUSE subtype of a jhfs mount: "fuse.jhfs" in mountinfo
ANSWER_WITHIN = 2.0  # seconds a mount has to answer (name its process, a statfs)
END_WITHIN = 10.0  # seconds a mount's process has to end after SIGTERM
_OCTAL = re.compile(rb"\\([0-7]{3})")  # an escaped byte in /proc/self/mountinfo
_GONE = (errno.ENOTCONN, errno.ECONNABORTED)  # the kernel's word for a FUSE process gone


@dataclass(frozen=True)
class MountEntry:
    """The topmost mount on a path, as /proc/self/mountinfo describes it."""

    fstype: str  # "fuse.jhfs" for jhfs
    source: str  # the file system's name: jhfs:<host[:port]> for jhfs
    options: frozenset[str]  # the file system's own, e.g. user_id=1000 for FUSE

    @property
    def is_jhfs(self) -> bool:
        return self.fstype == f"fuse.{SUBTYPE}"

    def is_jhfs_of(self, uid: int) -> bool:
        return self.is_jhfs and f"user_id={uid}" in self.options


def mount_table() -> list[tuple[bytes, MountEntry]]:
    """Every mount as /proc/self/mountinfo lists it: (its path, what it is), a mount
    on top of another after it. Reading it never blocks on a hung mount, as a stat
    of one could."""
    mounts = []
    with open("/proc/self/mountinfo", "rb") as table:
        for line in table:
            # id parent major:minor root mountpoint options [optional...] - fstype source super
            fields = line.split()
            tail = fields[fields.index(b"-", 6) + 1 :]
            entry = MountEntry(
                fstype=tail[0].decode(errors="replace"),
                source=_unescape(tail[1]).decode(errors="replace"),
                options=frozenset(tail[2].decode(errors="replace").split(",")),
            )
            mounts.append((_unescape(fields[4]), entry))
    return mounts


def _unescape(field: bytes) -> bytes:
    # Spaces and the like in a path are octal escapes (\040).
    return _OCTAL.sub(lambda m: bytes([int(m[1], 8)]), field)


def mount_entry(mountpoint: Path) -> MountEntry | None:
    """What is mounted on `mountpoint` (the topmost mount), from mount_table."""
    # The kernel lists resolved paths; the last component is left as it is,
    # since resolving it would stat the mount itself.
    absolute = Path(os.path.abspath(mountpoint))
    target = os.fsencode(Path(os.path.realpath(absolute.parent)) / absolute.name)
    found = None
    for path, entry in mount_table():
        if path == target:
            found = entry  # a later line is a mount on top of an earlier one
    return found


def fsname(server: str) -> str:
    """The file system name of a mount of `server` (`jhfs:<host[:port]>`), as `mount` shows it."""
    return f"jhfs:{urlsplit(server).netloc}"


def mounts_of(server: str, pids: set[int]) -> list[Path]:
    """The mount points of the jhfs mounts of `server` that the processes `pids` serve
    (the mounts of one cache directory: other mounts of the server may use another)."""
    of_server = [
        Path(os.fsdecode(path))
        for path, entry in mount_table()
        if entry.is_jhfs and entry.source == fsname(server)
    ]
    return [path for path in of_server if _serving_process(path) in pids]


def mounted(mountpoint: Path) -> bool:
    """Whether `mountpoint` is a mount point (see mount_entry)."""
    return mount_entry(mountpoint) is not None


def answers(mountpoint: Path) -> bool | None:
    """Whether the process serving the mount at `mountpoint` answers a statfs (which
    the kernel never answers from its caches): False when the kernel says that
    process is gone, None when no answer came within ANSWER_WITHIN (hung, busy,
    or still starting)."""

    def statfs() -> bool:
        try:
            os.statvfs(mountpoint)
        except OSError as exc:
            if exc.errno in _GONE:
                return False
        return True  # any other answer came from a live process

    return within(statfs)


def unmount_dead(mountpoint: Path) -> str | None:
    """Unmount the mount at `mountpoint`, whose process is gone: plainly, or lazily
    when a program still uses it. None once it is gone, else why not."""
    command, lazy = _commands()
    result = subprocess.run([*command, str(mountpoint)], capture_output=True, text=True)
    if result.returncode != 0 and _dead_mount(mountpoint):
        result = subprocess.run([*lazy, str(mountpoint)], capture_output=True, text=True)
    # Another jhfs recovering the same mount point may have been first.
    if result.returncode == 0 or not _dead_mount(mountpoint):
        return None
    return _last_line(result.stderr)


def unmount(mountpoint: Path) -> int:
    """`jhfs umount`: 0 once the mount is gone (or detached), else 1 with a message."""
    command, lazy = _commands()
    result = subprocess.run([*command, str(mountpoint)], capture_output=True, text=True)
    if result.returncode == 0:
        return 0
    if "busy" in result.stderr.lower():
        pid = _serving_process(mountpoint)
        if pid is not None and _ended(pid, mountpoint):
            print(
                f"jhfs: {mountpoint} was busy: its process ended it; programs still using "
                "it get errors",
                file=sys.stderr,
            )
            return 0
        lazy_result = subprocess.run([*lazy, str(mountpoint)], capture_output=True, text=True)
        if lazy_result.returncode == 0:
            print(
                f"jhfs: {mountpoint} is busy; detached it lazily: it goes away once nothing "
                "uses it any more",
                file=sys.stderr,
            )
            return 0
        result = lazy_result
    print(f"jhfs: could not unmount {mountpoint}: {_last_line(result.stderr)}", file=sys.stderr)
    return 1


def _commands() -> tuple[list[str], list[str]]:
    """The commands that unmount: plainly, and lazily."""
    fusermount = shutil.which("fusermount3") or shutil.which("fusermount")
    if fusermount:
        return [fusermount, "-u"], [fusermount, "-uz"]
    return ["umount"], ["umount", "-l"]


def _last_line(stderr: str) -> str:
    return stderr.strip().splitlines()[-1] if stderr.strip() else "failed"


def _dead_mount(mountpoint: Path) -> bool:
    # Not compared by mount id: the kernel gives a freed one to the next mount.
    return mounted(mountpoint) and answers(mountpoint) is False


def within(call: Callable[[], T]) -> T | None:
    """call()'s result, or None if it has not returned within ANSWER_WITHIN (`call`
    must not raise)."""
    answer: list[T] = []
    # A hung mount never answers: ask from a thread that may be left behind.
    asking = threading.Thread(target=lambda: answer.append(call()), daemon=True)
    asking.start()
    asking.join(ANSWER_WITHIN)
    return answer[0] if answer else None


def _serving_process(mountpoint: Path) -> int | None:
    """The pid of the jhfs process serving `mountpoint`, if it says so in time."""

    def ask() -> bytes:
        with contextlib.suppress(OSError):  # not jhfs, or not answering
            return os.getxattr(mountpoint, XATTR_PID)
        return b""

    text = (within(ask) or b"").decode(errors="replace")
    return int(text) if text.isdigit() else None


def _ended(pid: int, mountpoint: Path) -> bool:
    """SIGTERM to the mount's process; whether the mount is gone within END_WITHIN."""
    try:
        os.kill(pid, signal.SIGTERM)
    except OSError:
        return False  # gone already, or not ours to end
    deadline = time.monotonic() + END_WITHIN
    while time.monotonic() < deadline:
        if not mounted(mountpoint):
            return True
        time.sleep(0.05)
    return False
