"""Partial downloads kept to resume: <cache_dir>/partial/<hex sha256>, one file each.

A download stopped for good before its end (the mount ends, or it was paused
longest) keeps its bytes here for a later open, in this mount or the next,
which resumes it with Range requests. The file is the download's sparse file
with a trailer after its last byte: what is on disk, as JSON (digest, size,
the ranges present), its length and a magic number. One file makes taking it
atomic: a mount claims a partial by renaming it into its own tmp/ (so two
mounts never resume the same bytes, and a claimant that crashes leaves a
stale temporary for clean_stale_temp); eviction deletes it with one unlink.
Nothing here is trusted: resumed bytes are hashed from the first before any
read reaches the end, like any download's.
"""

from __future__ import annotations

import json
import logging
import os
import struct
from dataclasses import dataclass
from pathlib import Path

from jhfs.state.cachedir import durable_rename, temp_file

logger = logging.getLogger(__name__)

MAGIC = b"JHFSPRT1"
_TAIL = struct.Struct(">Q8s")  # the JSON's length, MAGIC
MAX_METADATA = 1 << 20  # a trailer longer than this is not one of ours


@dataclass
class Claimed:
    """A partial download now owned by this process: its open file in tmp/ and what is in it."""

    fd: int
    path: Path
    ranges: list[tuple[int, int]]  # [start, end) on disk, ascending


def park(
    fd: int, path: Path, directory: Path, key: str, size: int, ranges: list[tuple[int, int]]
) -> int:
    """Keep the download file `path` (open as `fd`, read-write) as <directory>/<key>;
    its bytes on disk in `ranges`. Returns the size kept. The bytes are fsynced
    before the name appears: the trailer never claims bytes a crash lost."""
    metadata = json.dumps({"digest": key, "size": size, "ranges": ranges}).encode()
    trailer = metadata + _TAIL.pack(len(metadata), MAGIC)
    os.pwrite(fd, trailer, size)
    os.fsync(fd)
    durable_rename(path, directory / key)
    return size + len(trailer)


def claim(directory: Path, tmp_dir: Path, key: str, size: int) -> Claimed | None:
    """Take the partial download of digest `key` if there is a usable one; None otherwise
    (a partial that does not describe itself as this file is deleted)."""
    source = directory / key
    fd, path = temp_file(tmp_dir, ".part")
    os.close(fd)
    try:
        os.replace(source, path)
    except FileNotFoundError:  # none, or another mount took it first
        path.unlink(missing_ok=True)
        return None
    fd = os.open(path, os.O_RDWR)
    try:
        ranges = _read_trailer(fd, key, size)
        if ranges is None:
            logger.warning("%s: partial download without a valid description; deleted", key)
            raise ValueError(key)
        os.ftruncate(fd, size)  # the trailer goes; bytes arrive at their offsets again
    except (OSError, ValueError):
        os.close(fd)
        path.unlink(missing_ok=True)
        return None
    return Claimed(fd, path, ranges)


def _read_trailer(fd: int, key: str, size: int) -> list[tuple[int, int]] | None:
    total = os.fstat(fd).st_size
    if total < size + _TAIL.size:
        return None
    length, magic = _TAIL.unpack(os.pread(fd, _TAIL.size, total - _TAIL.size))
    if magic != MAGIC or length > MAX_METADATA or size + length + _TAIL.size != total:
        return None
    try:
        metadata = json.loads(os.pread(fd, length, size))
        if metadata["digest"] != key or metadata["size"] != size:
            return None
        ranges = [(int(start), int(end)) for start, end in metadata["ranges"]]
    except (ValueError, KeyError, TypeError):
        return None
    previous = 0
    for start, end in ranges:
        if not previous <= start < end <= size:
            return None
        previous = end
    return ranges
