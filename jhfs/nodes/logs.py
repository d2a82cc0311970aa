"""jobs/<jobname>/logs and logs.jsonl: the job's log, as text and as JSON lines.

Both renderings of one log (jhfs.state.logformat), fetched together. st_size
is exact: a stat fetches what it needs to know it (a finished job's whole log,
once, kept on disk), so that programs that copy st_size bytes (tar,
sendfile, mmap) copy the whole log. A finished log never changes and is read
through the page cache (mmap works); a running one is served with direct I/O,
so a read is never cut at a size the kernel saw earlier, and a read past what
is known is end-of-file at once. Opening brings the log up to now; while a
file is open the state layer follows a running job, and it stops at the last
close. As it grows, the kernel is told to forget the size it caches
(`paths_of`), so that a program polling the size (`tail -f`) sees new lines
at once.
"""

from __future__ import annotations

from jhfs.client import Job
from jhfs.nodes.base import FILE_MODE, Attrs, Handle, Node, job_path, require_read_only
from jhfs.nodes.context import MountContext
from jhfs.state.logformat import Rendering
from jhfs.state.logs import LogReader

FILE_NAMES = {Rendering.TEXT: "logs", Rendering.JSONL: "logs.jsonl"}


def paths_of(jobname: str) -> list[str]:
    """The job's log files in the mount."""
    return [job_path(jobname, name) for name in FILE_NAMES.values()]


class LogHandle(Handle):
    def __init__(self, reader: LogReader) -> None:
        self.reader = reader
        # Page-cached once complete: its size is exact and the kernel was told
        # of every change to it, so no read stops short.
        self.direct_io = not reader.complete

    def read(self, size: int, offset: int) -> bytes:
        return self.reader.read(offset, size)

    def release(self) -> None:
        self.reader.close()


class LogsFile(Node):
    def __init__(self, ctx: MountContext, job: Job, rendering: Rendering) -> None:
        super().__init__(ctx)
        self.job = job
        self.rendering = rendering

    def getattr(self) -> Attrs:
        size = self.ctx.logs.size(self.job.jobname, self.rendering)
        return self._attrs(FILE_MODE, size, self.ctx.status_time(self.job))

    def open(self, flags: int) -> Handle:
        require_read_only(flags)
        return LogHandle(self.ctx.logs.open(self.job.jobname, self.rendering))
