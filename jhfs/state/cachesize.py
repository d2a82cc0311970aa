"""The cache directory's size: a running total, its two bounds, and LRU eviction.

The bounds: the files kept (verified blobs, finished logs, partial downloads)
stay within `max_size` bytes, and the cache's file system is never filled past
MAX_FILL (statvfs). Before new bytes come in (`make_room`) the least recently
used files go until both hold; recency is a file's mtime, which the owners
touch at every open (atime is often not kept: relatime, noatime). Whether a
file may go is the owner's call (`evict`, which deletes it unless an open
handle uses it).

The total is kept running for this mount (what it adds and deletes, and the
downloads in progress it has reserved room for) and recounted from the
directories only when something must go: at start, and before evicting. So
what other mounts sharing the directory add is seen at the next recount, and
a read never costs a scan.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable
from pathlib import Path

logger = logging.getLogger(__name__)

MAX_FILL = 0.95  # of the file system holding the cache
# The subdirectories of a server's cache directory that max_size bounds (the
# saved listing and jobs, temporary files and the mount's log are not counted).
COUNTED = ("blobs", "logs", "partial")


class CacheSpace:
    """The size bounds of the files under `directories` (see the module docstring).

    `evict(path)` deletes one file and says whether it did (False: in use, or
    gone already).
    """

    def __init__(
        self, directories: list[Path], max_size: int, evict: Callable[[Path], bool]
    ) -> None:
        self._directories = directories
        self.max_size = max_size
        self._evict = evict
        self._lock = threading.Lock()  # guards the counts
        self._evicting = threading.Lock()  # one eviction pass at a time
        self._stored = 0  # bytes of the files in the directories
        self._reserved = 0  # bytes of this mount's downloads in progress
        with self._evicting:
            self._stored = sum(size for _, size, _ in self._scan())
        self.make_room(0)

    @property
    def used(self) -> int:
        with self._lock:
            return self._stored + self._reserved

    def added(self, size: int) -> None:
        """A file of `size` bytes appeared in the directories (or left them: negative)."""
        with self._lock:
            self._stored += size

    def reserve(self, size: int) -> None:
        """A download of `size` bytes starts (its bytes are in tmp/ until it ends)."""
        with self._lock:
            self._reserved += size

    def unreserve(self, size: int) -> None:
        with self._lock:
            self._reserved -= size

    def over(self) -> bool:
        """Whether the total is past max_size (a file larger than it, in use until now)."""
        return self.used > self.max_size

    def make_room(self, incoming: int) -> None:
        """Evict least recently used files until `incoming` more bytes fit in both
        bounds, or nothing more may go (what is in use stays: the bounds are then
        exceeded until it is released)."""
        if self._fits(incoming):
            return
        with self._evicting:
            files = sorted(self._scan())  # oldest mtime first
            with self._lock:
                self._stored = sum(size for _, size, _ in files)
            freed = 0
            for _, size, path in files:
                if self._fits(incoming):
                    break
                if self._evict(path):
                    self.added(-size)
                    freed += size
            fits = self._fits(incoming)
        logger.log(
            logging.INFO if freed else logging.DEBUG,
            "cache: evicted %d bytes; %d of %d bytes used%s",
            freed,
            self.used,
            self.max_size,
            "" if fits else " (the rest is in use)",
        )

    def _fits(self, incoming: int) -> bool:
        if self.used + incoming > self.max_size:
            return False
        fs = os.statvfs(self._directories[0])
        used = (fs.f_blocks - fs.f_bfree) * fs.f_frsize
        capacity = (fs.f_blocks - fs.f_bfree + fs.f_bavail) * fs.f_frsize
        # A file system that reports no blocks (some network or FUSE ones) has no fill to keep.
        return capacity == 0 or used + incoming <= MAX_FILL * capacity

    def _scan(self) -> list[tuple[int, int, Path]]:
        """(mtime ns, size, path) of every file in the directories."""
        found = []
        for directory in self._directories:
            try:
                entries = list(os.scandir(directory))
            except FileNotFoundError:
                continue  # logs/ before the first finished log
            for entry in entries:
                try:
                    info = entry.stat(follow_symlinks=False)
                except FileNotFoundError:
                    continue  # evicted by another mount meanwhile
                if entry.is_file(follow_symlinks=False):
                    found.append((info.st_mtime_ns, info.st_size, Path(entry.path)))
        return found
