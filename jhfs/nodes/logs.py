"""jobs/<jobname>/logs: every log message, one per line, growing while the job runs.

Served with direct I/O so a read is never cut at a size the kernel saw
earlier; st_size is what is known so far and a read past it is end-of-file at
once. Opening brings the log up to now; while a file is open the state layer
follows a running job, and it stops at the last close. As it grows, the
kernel is told to forget the size it caches (`path_of`), so that a program
polling the size (`tail -f`) sees new lines at once.
"""

from __future__ import annotations

from jhfs.client import Job
from jhfs.nodes.base import FILE_MODE, Attrs, Handle, Node, require_read_only
from jhfs.nodes.context import MountContext
from jhfs.state.logs import LogReader


def path_of(jobname: str) -> str:
    """The job's log file in the mount."""
    return f"/jobs/{jobname}/logs"


class LogHandle(Handle):
    direct_io = True

    def __init__(self, reader: LogReader) -> None:
        self.reader = reader

    def read(self, size: int, offset: int) -> bytes:
        return self.reader.read(offset, size)

    def release(self) -> None:
        self.reader.close()


class LogsFile(Node):
    def __init__(self, ctx: MountContext, job: Job) -> None:
        super().__init__(ctx)
        self.job = job

    def getattr(self) -> Attrs:
        size = self.ctx.logs.log(self.job.jobname).size
        return self._attrs(FILE_MODE, size, self.ctx.status_time(self.job))

    def open(self, flags: int) -> Handle:
        require_read_only(flags)
        return LogHandle(self.ctx.logs.open(self.job.jobname))
