"""`jhfs umount`: unmount with fusermount; a busy mount's process is asked to end.

A mount is busy while a program has a file or directory of it open, a
reader waiting on a download say. Then the process serving the mount (which
names itself through the root's user.jhfs.pid attribute) gets SIGTERM, as
from `kill`: it lets waiting reads go with EIO, keeps partial downloads for
the next mount, unmounts and exits. A mount that does not answer is detached
lazily instead.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from jhfs.nodes.tree import XATTR_PID

ANSWER_WITHIN = 2.0  # seconds a mount has to name its process
END_WITHIN = 10.0  # seconds a mount's process has to end after SIGTERM
_OCTAL = re.compile(rb"\\([0-7]{3})")  # an escaped byte in /proc/self/mountinfo


def unmount(mountpoint: Path) -> int:
    """`jhfs umount`: 0 once the mount is gone (or detached), else 1 with a message."""
    fusermount = shutil.which("fusermount3") or shutil.which("fusermount")
    command = [fusermount, "-u"] if fusermount else ["umount"]
    lazy = [fusermount, "-uz"] if fusermount else ["umount", "-l"]
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
    message = result.stderr.strip().splitlines()[-1] if result.stderr.strip() else "failed"
    print(f"jhfs: could not unmount {mountpoint}: {message}", file=sys.stderr)
    return 1


def _serving_process(mountpoint: Path) -> int | None:
    """The pid of the jhfs process serving `mountpoint`, if it says so in time."""
    answer: list[bytes] = []

    def ask() -> None:
        with contextlib.suppress(OSError):  # not jhfs, or not answering
            answer.append(os.getxattr(mountpoint, XATTR_PID))

    # A hung mount never answers: ask from a thread that may be left behind.
    asking = threading.Thread(target=ask, daemon=True)
    asking.start()
    asking.join(ANSWER_WITHIN)
    text = answer[0].decode(errors="replace") if answer else ""
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


def mounted(mountpoint: Path) -> bool:
    """Whether `mountpoint` is a mount point, from /proc/self/mountinfo (a stat
    of a mount whose process is ending could block)."""
    target = os.fsencode(os.path.abspath(mountpoint))
    with open("/proc/self/mountinfo", "rb") as table:
        for line in table:
            # The fifth field; spaces and the like in it are octal escapes (\040).
            field = _OCTAL.sub(lambda m: bytes([int(m[1], 8)]), line.split()[4])
            if field == target:
                return True
    return False
