"""The job listing and per-job status cache.

Owns which jobs exist and how fresh their metadata is: one get_jobs call feeds
the listing and every job in it, finished jobs are kept for the life of the
mount, running jobs are re-read once their copy is `ttl` seconds old, and
unknown names are remembered briefly so that probing names does not flood the
server, and so is a failed request: the kernel repeats a failed operation
(revalidate, then lookup), and the repeat fails at once instead of running
the client's retries again.

With a SavedJobs, what is seen is also kept on disk, for when the server
cannot be reached (ServerUnreachableError, timeouts included): jobs/ then
shows the listing saved last, by this mount or an earlier one, and a final
job seen before is served from disk. Anything else (a refused token, a
server error, a running job's fresh status) is not masked.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time
from collections.abc import Callable
from typing import TypeVar

from cachetools import LRUCache, TTLCache

from jhfs.client import (
    Job,
    JuliaHubClient,
    JuliaHubError,
    NotFoundError,
    ServerUnreachableError,
)
from jhfs.state.flight import SingleFlight
from jhfs.state.freshness import (
    FAILURE_MEMORY,
    JOB_TTL,
    LISTING_TTL,
    NEGATIVE_TTL,
    OFFLINE_RETRY,
)
from jhfs.state.saved import SavedJobs
from jhfs.state.waiting import Waiter

logger = logging.getLogger(__name__)

_T = TypeVar("_T")
_LISTING = "listing"  # the listing's single-flight key


class JobRegistry:
    """Jobs by name, as fresh as the filesystem promises, with as few requests as possible.

    - list_jobs(): one get_jobs call (limit=jobs_limit), reused for up to
      `listing_ttl` seconds; every job in it also answers
      get() without a request while it is fresh enough for get().
    - get(name): final jobs (done, every file uploaded) are cached for the life
      of the mount (they never change); any other job's copy is at most `ttl`
      seconds old. A job not in
      the listing is looked up with client.job(); unknown names raise
      NotFoundError and are remembered for `negative_ttl` seconds in a bounded
      cache. Timeouts / 5xx propagate (never cached as not-found), and are
      given again for FAILURE_MEMORY seconds.
    - refresh(name): fetch now (after a ctl command).
    - forget(name): drop what is held (the server had no log or file it listed).
    - on_change(name) hears of a job whose new copy differs from the one held
      (so that the kernel forgets what it caches of the job's files).
    - Offline (with `saved`): while the server cannot be reached, list_jobs()
      gives the saved listing (asking the server again every OFFLINE_RETRY
      seconds) and get() a saved final job; one warning per outage.
    Thread-safe; no lock is held across an HTTP call. With a Waiter, callers
    wait for requests on its pool and may give up (Ctrl-C, deadline).
    """

    def __init__(
        self,
        client: JuliaHubClient,
        *,
        jobs_limit: int = 1000,
        ttl: float = JOB_TTL,
        listing_ttl: float = LISTING_TTL,
        negative_ttl: float = NEGATIVE_TTL,
        negative_max: int = 1024,
        lookups_max: int = 4096,
        failures_max: int = 1024,
        waiter: Waiter | None = None,
        saved: SavedJobs | None = None,
        on_change: Callable[[str], None] = lambda jobname: None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._client = client
        self._on_change = on_change
        self._jobs_limit = jobs_limit
        self._ttl = ttl
        self._listing_ttl = listing_ttl
        self._clock = clock
        self._lock = threading.Lock()  # guards everything below; never held across HTTP
        # The latest listing, in the server's order, and when its request started.
        self._listing: tuple[Job, ...] = ()
        self._listed: dict[str, Job] = {}
        self._listing_at: float | None = None
        # Jobs read one by one (or finished jobs that fell out of the listing),
        # with the time their request started. Bounded: an evicted job costs one
        # request when it is next looked at.
        self._lookups: LRUCache[str, tuple[Job, float]] = LRUCache(maxsize=lookups_max)
        self._missing: TTLCache[str, bool] = TTLCache(
            maxsize=negative_max, ttl=negative_ttl, timer=clock
        )
        # What failed lately, by job name or _LISTING.
        self._failures: TTLCache[str, JuliaHubError] = TTLCache(
            maxsize=failures_max, ttl=FAILURE_MEMORY, timer=clock
        )
        self._waiter = waiter
        self._saved = saved
        # Since when the server could not be reached (None: it answers), and
        # until when the listing is not asked for again.
        self._offline_since: float | None = None
        self._listing_retry_at = float("-inf")
        self._listing_flight: SingleFlight[str, None] = SingleFlight()
        self._job_flight: SingleFlight[str, Job] = SingleFlight()

    # -- the listing ---------------------------------------------------------

    def list_jobs(self) -> list[Job]:
        """The latest jobs, newest first, at most `ttl` seconds old; while the
        server cannot be reached, the saved listing."""
        try:
            return self._current_listing()
        except ServerUnreachableError as error:
            saved = self._saved.listing() if self._saved is not None else None
            if saved is None:
                raise
            jobs, saved_at = saved
            with self._lock:
                now = self._clock()
                if now >= self._listing_retry_at:  # the server was asked: not before then
                    self._listing_retry_at = now + OFFLINE_RETRY
            when = dt.datetime.fromtimestamp(saved_at).isoformat(sep=" ", timespec="seconds")
            self._went_offline(
                f"cannot reach the server ({error}): jobs/ shows the jobs listed at {when}, "
                "and finished jobs seen before stay readable; the server is asked again "
                f"every {OFFLINE_RETRY:g} s"
            )
            return jobs

    def _current_listing(self) -> list[Job]:
        with self._lock:
            if self._listing_fresh():
                return list(self._listing)
            if self._clock() < self._listing_retry_at:
                raise ServerUnreachableError("the server could not be reached; not asked yet")
            self._raise_recent_failure(_LISTING)
        self._listing_flight.do(
            _LISTING, lambda: self._remembering(_LISTING, self._fetch_listing), self._waiter
        )
        with self._lock:
            return list(self._listing)

    def names(self) -> list[str]:
        """Job names of list_jobs(), in its order."""
        return [job.jobname for job in self.list_jobs()]

    def _listing_fresh(self) -> bool:
        return self._listing_at is not None and self._clock() - self._listing_at < self._listing_ttl

    def _fetch_listing(self) -> None:
        with self._lock:
            # A caller that found the listing stale may arrive just after another
            # flight finished: don't ask again.
            if self._listing_fresh():
                return
        started = self._clock()
        jobs = tuple(self._client.jobs(limit=self._jobs_limit))
        listed = {job.jobname: job for job in jobs}
        with self._lock:
            if self._listing_at is not None and self._listing_at > started:
                return  # a newer listing landed meanwhile
            changed = [job.jobname for job in jobs if self._differs(job)]
            # Finished jobs that fell out of the listing stay known without a request.
            for name, job in self._listed.items():
                if name not in listed and job.is_final:
                    self._lookups[name] = (job, self._listing_at or started)
            self._listing, self._listed, self._listing_at = jobs, listed, started
            for name in [name for name in self._missing if name in listed]:
                self._missing.pop(name, None)  # created since it was looked up
        for name in changed:
            self._on_change(name)
        self._answered()
        if self._saved is not None:
            self._saved.save_listing(jobs)

    # -- single jobs ---------------------------------------------------------

    def cached(self, jobname: str) -> Job | None:
        """The newest copy held, however old (no request)."""
        with self._lock:
            found = self._newest(jobname)
        if found is not None:
            return found[0]
        return self._saved.listed(jobname) if self._saved is not None else None

    def get(self, jobname: str) -> Job:
        """The job, from the cache when fresh enough, else from the server.

        NotFoundError when the server says it does not exist (remembered for
        negative_ttl); the client's other errors propagate and are not cached.
        A final job saved before is the answer when the server cannot be reached.
        """
        try:
            return self._get(jobname)
        except ServerUnreachableError as error:
            job = self._saved.job(jobname) if self._saved is not None else None
            if job is None:
                raise
            with self._lock:
                self._lookups[jobname] = (job, self._clock())  # final: kept for the mount
            self._went_offline(
                f"cannot reach the server ({error}): finished jobs seen before are read "
                "from the cache"
            )
            return job

    def _get(self, jobname: str) -> Job:
        with self._lock:
            found = self._newest(jobname)
            if found is not None:
                job, fetched_at = found
                if job.is_final or self._clock() - fetched_at < self._ttl:
                    return job
            elif jobname in self._missing:
                raise NotFoundError(f"no job named {jobname!r}")
            self._raise_recent_failure(jobname)
        return self._job_flight.do(
            jobname,
            lambda: self._remembering(jobname, lambda: self._fetch_job(jobname)),
            self._waiter,
        )

    def refresh(self, jobname: str) -> Job:
        """Fetch the job now, bypassing the cache (after a ctl command changed it).

        Not shared with a lookup already in flight: that one may have started
        before the change.
        """
        return self._fetch_job(jobname)

    def forget(self, jobname: str) -> None:
        """The server had no log or file it listed for the job: what is held of the
        job may be out of date, even for a final job, so the next look asks again."""
        with self._lock:
            self._lookups.pop(jobname, None)
            self._listed.pop(jobname, None)
        if self._saved is not None:
            self._saved.forget(jobname)

    def _went_offline(self, message: str) -> None:
        """Say once per outage (the first time something is served from disk)."""
        with self._lock:
            first = self._offline_since is None
            if first:
                self._offline_since = self._clock()
        if first:
            logger.warning("%s", message)

    def _answered(self) -> None:
        with self._lock:
            since, self._offline_since = self._offline_since, None
            self._listing_retry_at = float("-inf")
        if since is not None:
            logger.info("the server answers again after %.0f s", self._clock() - since)

    def _raise_recent_failure(self, key: str) -> None:
        # Lock held.
        failure = self._failures.get(key)
        if failure is not None:
            # A new instance: the remembered one may be raised in other threads too.
            raise type(failure)(f"{failure} (failed moments ago; not asked again yet)")

    def _remembering(self, key: str, fetch: Callable[[], _T]) -> _T:
        try:
            return fetch()
        except NotFoundError:
            raise  # remembered as missing where that is known
        except JuliaHubError as error:
            with self._lock:
                self._failures[key] = error
            raise

    def _newest(self, jobname: str) -> tuple[Job, float] | None:
        lookup = self._lookups.get(jobname)
        listed = self._listed.get(jobname)
        if (
            listed is not None
            and self._listing_at is not None
            and (lookup is None or lookup[1] < self._listing_at)
        ):
            return listed, self._listing_at
        return lookup

    def _differs(self, job: Job) -> bool:
        """Whether `job` is news: a copy held of it says something else. Lock held."""
        held = self._newest(job.jobname)
        return held is not None and held[0] != job

    def _fetch_job(self, jobname: str) -> Job:
        started = self._clock()
        job = self._client.job(jobname)
        changed = False
        with self._lock:
            if job is None:
                self._missing[jobname] = True
                self._lookups.pop(jobname, None)
            else:
                self._missing.pop(jobname, None)
                changed = self._differs(job)
                known = self._lookups.get(jobname)
                if known is None or known[1] <= started:
                    self._lookups[jobname] = (job, started)
        if job is not None and changed:
            self._on_change(jobname)
        self._answered()
        if job is None:
            logger.debug("job %s does not exist", jobname)
            raise NotFoundError(f"no job named {jobname!r}")
        if self._saved is not None:
            self._saved.save_job(job)
        return job
