"""Waiting until a job is done (jobs/<jobname>/wait): what one wait asks, how long it
may block, and how many waits may hold a FUSE thread at once.

A wait asks the registry again and again: its copy of a running job is
reused for JOB_TTL, and its lookups are single-flight, so however many wait
for a job, it costs one request per JOB_TTL, as `cat status` in a loop would.

How long: a job may run for days, so the wait as a whole has no deadline
(JuliaHub.jl's wait_job has none either). Each check has one operation's
deadline (-o timeout) for its request, retries included, and a failed check
ends the wait with its error. A wait ends when the job is done, when its
process is interrupted or ends (Ctrl-C, `timeout`), and at once when the
mount ends.

How many: libfuse serves a mount with a fixed number of threads (12:
jhfs.mounting's FUSE_MAX_THREADS; more requests queue in the kernel),
and a read that blocks holds one of them. So HOLDERS waits at most block
until the job is done; a wait beyond them blocks for SLICE at most, then
answers EINTR (WaitContinues), and its reader reads again, as cat, cp,
head, tail, grep and Python do for EINTR. The thread serves the requests
queued meanwhile, so waits never stop the mount from answering.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator

from jhfs.client import Job, TransferCancelled
from jhfs.client.pacing import operation_deadline
from jhfs.state.errors import WaitContinues
from jhfs.state.registry import JobRegistry
from jhfs.state.waiting import POLL, pause

HOLDERS = 4  # waits blocking at once: of libfuse's 12 threads, 8 stay for the rest
SLICE = 0.5  # seconds a wait beyond them blocks before its reader reads again


class JobWaits:
    """The mount's waits for jobs to be done. Thread-safe."""

    def __init__(
        self,
        registry: JobRegistry,
        abandoned: Callable[[], bool],
        *,
        check_timeout: float | None = None,
        holders: int = HOLDERS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._registry = registry
        # Whether nobody waits any more; raises once the mount is ending.
        self._abandoned = abandoned
        self._check_timeout = check_timeout  # None: the caller's deadline, if any
        self._holders = threading.BoundedSemaphore(holders)
        self._clock = clock

    def until_done(self, jobname: str) -> Job:
        """The job once it is done (NotFoundError if it does not exist).

        Raises TransferCancelled once nobody waits, ShuttingDownError (from
        `abandoned`) once the mount ends, WaitContinues after SLICE when
        HOLDERS waits block already, and whatever a check raises.
        """
        if self._holders.acquire(blocking=False):
            try:
                return self._wait(jobname, until=None)
            finally:
                self._holders.release()
        return self._wait(jobname, until=self._clock() + SLICE)

    def _wait(self, jobname: str, until: float | None) -> Job:
        while True:
            with self._check_deadline():
                job = self._registry.get(jobname)
                if job.is_done:
                    return job
                if until is not None and self._clock() >= until:
                    raise WaitContinues(f"{jobname} is not done yet: read again")
                # The registry says when to ask the server again.
                if not pause(POLL, self._abandoned):
                    raise TransferCancelled(f"stopped waiting for {jobname} to be done")

    @contextlib.contextmanager
    def _check_deadline(self) -> Iterator[None]:
        """One operation's deadline for one check, not for the whole wait."""
        if self._check_timeout is None:
            yield
        else:
            with operation_deadline(self._check_timeout):
                yield
