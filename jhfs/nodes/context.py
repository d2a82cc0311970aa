"""What every node needs from the mount: the state layer, the owner, the mount time."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field

from jhfs.client import Job, JuliaHubClient
from jhfs.state.files import FileCache
from jhfs.state.jobwait import JobWaits
from jhfs.state.logs import LogStore
from jhfs.state.outcomes import Outcomes
from jhfs.state.registry import JobRegistry

EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


@dataclass(frozen=True)
class MountContext:
    client: JuliaHubClient
    registry: JobRegistry
    logs: LogStore
    files: FileCache
    waits: JobWaits
    uid: int
    gid: int
    mounted_at_ns: int
    # Whether nobody waits any more for the request being served (its process
    # got a signal or ended); the binding's answer for the calling libfuse thread.
    abandoned: Callable[[], bool] = field(default=lambda: False)
    # Makes the kernel forget what it caches of a path of the mount (its
    # attributes and pages): for what a ctl command changed.
    forget: Callable[[str], None] = field(default=lambda path: None)
    ctl_outcomes: Outcomes = field(default_factory=Outcomes)  # what reading ctl shows
    mountpoint: str = ""  # where it is mounted, and whose account: for .jhfs/status.json
    user: str = "?"

    def submit_time(self, job: Job) -> int:
        """A job's submit time in ns (the mount time if the server gives none)."""
        return to_ns(job.submitted, self.mounted_at_ns)

    def status_time(self, job: Job) -> int:
        """The submit time, then the end time once the job is done."""
        return to_ns(job.ended, self.submit_time(job))


def to_ns(timestamp: dt.datetime | None, default: int) -> int:
    """A timestamp as nanoseconds since the epoch (fusepy's use_ns form)."""
    if timestamp is None:
        return default
    # Integer arithmetic: a float of seconds would round the microseconds.
    return (timestamp - EPOCH) // dt.timedelta(microseconds=1) * 1000
