"""The JuliaHub HTTP client: one requests.Session, timeouts, retries, error mapping.

STUB: signatures settled, implementation in progress.
"""

from __future__ import annotations

from typing import Any, BinaryIO

from jhfs.client.auth import TokenSource
from jhfs.client.models import Job, JobFile, LogMessage, LogPage

LOG_PAGE_CAP = 10_000


class JuliaHubClient:
    """Thread-safe client for the jobs API (requests.Session is shared)."""

    def __init__(
        self,
        server: str,
        tokens: TokenSource,
        *,
        timeout: float = 30.0,
        retries: int = 3,
    ) -> None: ...

    @classmethod
    def from_environment(
        cls, server: str | None = None, token: str | None = None, **kwargs: Any
    ) -> JuliaHubClient:
        """A client for the server and token that auth.discover finds."""
        ...

    @property
    def server(self) -> str: ...

    def whoami(self) -> dict[str, Any]:
        """GET /api/v1: the identity check (AuthenticationError on a bad token)."""
        ...

    def jobs(self, limit: int | None = None) -> list[Job]:
        """The latest jobs, newest first."""
        ...

    def job(self, jobname: str) -> Job | None:
        """One job, or None when the server says it does not exist."""
        ...

    def kill_job(self, jobname: str) -> None:
        """Stop a job (PermissionDeniedError for unknown jobs, as the server says 403)."""
        ...

    def extend_job(self, jobname: str, hours: int) -> None:
        """Extend the time limit by whole hours >= 1 (ValueError otherwise). Never retried."""
        ...

    def log_page(
        self,
        jobname: str,
        *,
        after: LogMessage | None = None,
        before: LogMessage | None = None,
        nentries: int | None = None,
    ) -> LogPage:
        """One page of logs: the newest, or those after / up to and before a reference."""
        ...

    def download_file(self, file: JobFile, out: BinaryIO) -> int:
        """Stream a job file into `out` (positioned at 0); returns bytes written.

        Retries on connection trouble: resumes with a Range request when the
        server honours it, otherwise starts over with out.seek(0);
        out.truncate(). Raises ServerUnreachableError when the body stays
        short of Content-Length after retries. Does not check the hash.
        """
        ...

    def close(self) -> None: ...
