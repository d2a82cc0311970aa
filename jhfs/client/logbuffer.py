"""A contiguous run of a job's log messages, extended either way by paging.

The equivalent of the official client's job_logs_buffered / job_logs_newer! /
job_logs_older! / hasfirst / haslast.

STUB: signatures settled, implementation in progress.
"""

from __future__ import annotations

from jhfs.client.api import JuliaHubClient
from jhfs.client.models import LogMessage


class LogBuffer:
    def __init__(self, client: JuliaHubClient, jobname: str) -> None:
        self.messages: list[LogMessage] = []
        ...

    @property
    def has_first(self) -> bool: ...

    @property
    def has_last(self) -> bool: ...

    def extend_newer(self) -> int:
        """Fetch messages after the newest held (the newest page when empty); returns count."""
        ...

    def extend_older(self) -> int:
        """Fetch messages before the oldest held; returns count."""
        ...
