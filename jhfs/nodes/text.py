"""The small generated files of a job: status, info.json, results, hostname.

Each open takes a snapshot of the text, so every read of one open file sees
the same bytes and st_size is their length. A finished job never changes, so
the kernel may keep its pages; a running job's are read afresh (direct I/O).
"""

from __future__ import annotations

import json
from abc import abstractmethod

from jhfs.client import Job
from jhfs.nodes.base import FILE_MODE, Attrs, Handle, Node, require_read_only
from jhfs.nodes.context import MountContext


class SnapshotHandle(Handle):
    """An open generated file: the bytes as they were at open."""

    def __init__(self, content: bytes, immutable: bool) -> None:
        self.content = content
        self.keep_cache = immutable
        self.direct_io = not immutable

    def read(self, size: int, offset: int) -> bytes:
        return self.content[offset : offset + size]


class GeneratedFile(Node):
    """A read-only file whose bytes are rendered from the Job object."""

    def __init__(self, ctx: MountContext, job: Job) -> None:
        super().__init__(ctx)
        self.job = job

    @abstractmethod
    def render(self) -> bytes: ...

    def getattr(self) -> Attrs:
        size = len(self.render())
        return self._attrs(FILE_MODE, size, self.ctx.status_time(self.job))

    def open(self, flags: int) -> Handle:
        require_read_only(flags)
        return SnapshotHandle(self.render(), immutable=self.job.is_done)


class StatusFile(GeneratedFile):
    """The status and a newline (an unknown status is passed through: a lone
    surrogate in it, which has no UTF-8, as "?", as in results)."""

    def render(self) -> bytes:
        return f"{self.job.status}\n".encode("utf-8", "replace")


class InfoFile(GeneratedFile):
    """The job object exactly as the server sent it, pretty-printed."""

    def render(self) -> bytes:
        try:
            return (json.dumps(self.job.raw, indent=2, ensure_ascii=False) + "\n").encode()
        except UnicodeEncodeError:
            # A lone surrogate from a JSON escape has no UTF-8: escaped again,
            # the JSON still says exactly what the server sent.
            return (json.dumps(self.job.raw, indent=2) + "\n").encode()


class ResultsFile(GeneratedFile):
    """The job's RESULTS text (`outputs`), as is (a lone surrogate, which has no
    UTF-8, as "?", as in logs)."""

    def render(self) -> bytes:
        return self.job.outputs.encode("utf-8", "replace")


class HostnameFile(GeneratedFile):
    """The host of a job that exposes a port (from `proxy_link`)."""

    def render(self) -> bytes:
        return f"{self.job.hostname}\n".encode()
