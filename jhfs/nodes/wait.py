"""jobs/<jobname>/wait: reading it blocks until the job is done, then gives its final
status and a newline (at once for a finished job).

It is answered but not listed: a program that reads every file of a running
job's directory (cp -r, rsync, tar, grep -r) would otherwise wait for the job.

How long a read may block, and how it ends early, is jhfs.state.jobwait's.
Its size is 0 until the job is done (nothing is known yet: as for a log, the
size is what is known so far), then the length of what it reads. Readers
read to end-of-file whatever the size (cat, cp, head, tail, Python; cat and
cp into a file on another file system get EXDEV from copy_file_range and
read). Every open is read with direct I/O, so a read is never cut at a size
the kernel saw earlier: a `cat` just after the job ended would otherwise
read nothing.
"""

from __future__ import annotations

from jhfs.client import Job
from jhfs.nodes.base import FILE_MODE, Attrs, Handle, Node, require_read_only
from jhfs.nodes.context import MountContext
from jhfs.nodes.text import StatusFile


def final_status(ctx: MountContext, job: Job) -> bytes:
    """What a wait reads: the status file of the done job."""
    return StatusFile(ctx, job).render()


class WaitHandle(Handle):
    """An open wait: its first read blocks until the job is done."""

    direct_io = True

    def __init__(self, ctx: MountContext, job: Job) -> None:
        self.ctx = ctx
        self.jobname = job.jobname
        self.final = final_status(ctx, job) if job.is_done else None

    def read(self, size: int, offset: int) -> bytes:
        if self.final is None:
            self.final = final_status(self.ctx, self.ctx.waits.until_done(self.jobname))
        return self.final[offset : offset + size]


class WaitFile(Node):
    def __init__(self, ctx: MountContext, job: Job) -> None:
        super().__init__(ctx)
        self.job = job

    def getattr(self) -> Attrs:
        size = len(final_status(self.ctx, self.job)) if self.job.is_done else 0
        return self._attrs(FILE_MODE, size, self.ctx.status_time(self.job))

    def open(self, flags: int) -> Handle:
        require_read_only(flags)
        return WaitHandle(self.ctx, self.job)
