"""The job listing and per-job status cache.

STUB: signatures settled, implementation in progress.
"""

from __future__ import annotations

from jhfs.client import Job, JuliaHubClient


class JobRegistry:
    """Jobs by name, as fresh as the filesystem promises, with as few requests as possible.

    - list_jobs(): one get_jobs call (limit=jobs_limit), reused for up to
      `ttl` seconds; every job in it also answers get() without a request.
    - get(name): finished jobs are cached for the life of the mount (they never
      change); a running job's copy is at most `ttl` seconds old. A job not in
      the listing is looked up with client.job(); unknown names raise
      NotFoundError and are remembered for `negative_ttl` seconds in a bounded
      cache. Timeouts / 5xx propagate (never cached as not-found).
    - refresh(name): fetch now (after a ctl command).
    Thread-safe; no lock is held across an HTTP call.
    """

    def __init__(
        self,
        client: JuliaHubClient,
        *,
        jobs_limit: int = 1000,
        ttl: float = 2.0,
        negative_ttl: float = 10.0,
        negative_max: int = 1024,
    ) -> None: ...

    def list_jobs(self) -> list[Job]: ...

    def get(self, jobname: str) -> Job: ...

    def refresh(self, jobname: str) -> Job: ...
