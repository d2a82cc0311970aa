"""What every node needs from the mount: the state layer, the owner, the mount time."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

from jhfs.client import JuliaHubClient
from jhfs.state.files import FileCache
from jhfs.state.logs import LogStore
from jhfs.state.registry import JobRegistry


@dataclass(frozen=True)
class MountContext:
    client: JuliaHubClient
    registry: JobRegistry
    logs: LogStore
    files: FileCache
    cache_dir: Path  # statfs reports its file system: the room left for downloads
    uid: int
    gid: int
    mounted_at_ns: int


def to_ns(timestamp: dt.datetime | None, default: int) -> int:
    """A timestamp as nanoseconds since the epoch (fusepy's use_ns form)."""
    if timestamp is None:
        return default
    return int(timestamp.timestamp() * 1_000_000) * 1000
