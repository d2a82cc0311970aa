"""`jhfs umount`: unmount with fusermount, detaching lazily when the mount is busy."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path


def unmount(mountpoint: Path) -> int:
    """`jhfs umount`: unmount, or detach lazily (with a message) when busy."""
    fusermount = shutil.which("fusermount") or shutil.which("fusermount3")
    command = [fusermount, "-u"] if fusermount else ["umount"]
    lazy = [fusermount, "-uz"] if fusermount else ["umount", "-l"]
    result = subprocess.run([*command, str(mountpoint)], capture_output=True, text=True)
    if result.returncode == 0:
        return 0
    if "busy" in result.stderr.lower():
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
