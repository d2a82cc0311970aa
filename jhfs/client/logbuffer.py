"""A contiguous run of a job's log messages, extended either way by paging.

The equivalent of the official client's job_logs_buffered / job_logs_newer! /
job_logs_older! / hasfirst / haslast: each extend is one get_logs request of
up to LOG_PAGE_CAP messages, using the newest or oldest message held as the
paging reference (its eventId and timestamp in milliseconds). Reading a
finished job's whole log of N lines therefore takes about N / 10,000
requests: one extend_newer, then extend_older until has_first.
"""

from __future__ import annotations

import logging

from jhfs.client.api import LOG_PAGE_CAP, JuliaHubClient
from jhfs.client.errors import ServerError
from jhfs.client.models import LogMessage

logger = logging.getLogger(__name__)


class LogBuffer:
    """One job's messages, oldest first, in `messages`. Not thread-safe: the owner locks.

    Paging continues from the oldest and newest messages ever fetched, so the
    owner may remove messages it has consumed from `messages` (e.g. after
    writing them to disk) without breaking extend_newer / extend_older.
    """

    def __init__(self, client: JuliaHubClient, jobname: str) -> None:
        self.messages: list[LogMessage] = []
        self._client = client
        self._jobname = jobname
        self._oldest: LogMessage | None = None
        self._newest: LogMessage | None = None
        self._has_first = False
        self._has_last = False

    def __repr__(self) -> str:
        ends = ("F" if self._has_first else "-") + ("L" if self._has_last else "-")
        return f"LogBuffer({self._jobname!r}, {len(self.messages)} messages, {ends})"

    @property
    def jobname(self) -> str:
        return self._jobname

    @property
    def has_first(self) -> bool:
        """The run starts at the job's first message (the `top` marker was seen)."""
        return self._has_first

    @property
    def has_last(self) -> bool:
        """The run ends at the finished job's last message (the `bottom` marker was seen)."""
        return self._has_last

    def extend_newer(self) -> int:
        """Fetch messages after the newest held (the newest page when empty); returns count.

        One request, none once has_last. An empty buffer is filled with the
        newest page, which may or may not reach the start (has_first).
        """
        if self._has_last:
            return 0
        if self._newest is None:
            page = self._client.log_page(self._jobname, nentries=LOG_PAGE_CAP)
            # Nothing held yet, so this page alone decides where the run starts.
            self._has_first = page.has_top
        else:
            page = self._client.log_page(self._jobname, after=self._newest, nentries=LOG_PAGE_CAP)
        self._has_last = page.has_bottom
        if page.messages:
            self.messages.extend(page.messages)
            self._newest = page.messages[-1]
            if self._oldest is None:
                self._oldest = page.messages[0]
        return len(page.messages)

    def extend_older(self) -> int:
        """Fetch messages before the oldest held; returns count.

        One request, none once has_first. With nothing held yet this is
        extend_newer (the newest page is where an empty run starts).
        """
        if self._has_first:
            return 0
        if self._oldest is None:
            return self.extend_newer()
        page = self._client.log_page(self._jobname, before=self._oldest, nentries=LOG_PAGE_CAP)
        if not page.messages and not page.has_top:
            # Paging on would loop forever; the official client warns and stops here.
            raise ServerError(
                f"the log of job {self._jobname} has no messages before eventId "
                f"{self._oldest.event_id} but the server did not mark its start"
            )
        self._has_first = page.has_top
        if page.messages:
            self.messages[:0] = page.messages
            self._oldest = page.messages[0]
        return len(page.messages)
