"""Job logs as files: on disk in the cache directory, growing while the job runs.

STUB: signatures settled, implementation in progress.
"""

from __future__ import annotations

from pathlib import Path

from jhfs.client import JuliaHubClient
from jhfs.state.registry import JobRegistry


class JobLog:
    """One job's log as bytes: every message + "\\n", oldest first."""

    @property
    def size(self) -> int:
        """Bytes known so far (never blocks, never makes a request)."""
        ...

    def load(self) -> None:
        """Make the log readable from its start: for a finished job fetch all of it
        (once, to disk); for a running job fetch the backlog up to now. Blocks."""
        ...

    def read(self, offset: int, size: int) -> bytes:
        """Bytes known at [offset, offset+size); b"" past the known end (never blocks)."""
        ...

    def watch(self) -> None:
        """Someone opened or read the file: follow a running job for the next minute."""
        ...

    def open(self) -> None:
        """A file handle opened: follow while it stays open (and a minute after)."""
        ...

    def release(self) -> None: ...


class LogStore:
    """All jobs' logs; background following, about once a second, only for watched running jobs."""

    def __init__(self, client: JuliaHubClient, registry: JobRegistry, cache_dir: Path) -> None: ...

    def log(self, jobname: str) -> JobLog: ...

    def close(self) -> None:
        """Stop background followers."""
        ...
