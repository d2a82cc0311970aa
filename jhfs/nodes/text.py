"""The small generated files of a job: status, info.json, server.json, results, hostname.

Each open takes a snapshot of the text, so every read of one open file sees
the same bytes and st_size is their length. A finished job never changes, so
the kernel may keep its pages; a running job's are read afresh (direct I/O).
"""

from __future__ import annotations

import json
from abc import abstractmethod
from typing import Any

from jhfs.client import Job, JobFile
from jhfs.client.models import format_timestamp
from jhfs.nodes.base import FILE_MODE, Attrs, Handle, Node, job_path, require_read_only
from jhfs.nodes.context import MountContext

# The files rendered from the job object, which change with it: the kernel must
# forget what it caches of them then, or it reads a new text cut at the old size.
GENERATED = ("status", "info.json", "server.json", "results", "hostname")


def generated_paths(jobname: str) -> list[str]:
    """The job's generated files, as paths of the mount."""
    return [job_path(jobname, name) for name in GENERATED]


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
    """The job as JuliaHub.jl's `Job` has it, with the same field names (README's
    table): a stable object for scripts, whatever quirk the server's object has."""

    def render(self) -> bytes:
        return _json_text(job_info(self.job))


class ServerFile(GeneratedFile):
    """The job object exactly as the server sent it, pretty-printed."""

    def render(self) -> bytes:
        return _json_text(self.job.raw)


class ResultsFile(GeneratedFile):
    """The job's RESULTS text (`outputs`), as is (a lone surrogate, which has no
    UTF-8, as "?", as in logs)."""

    def render(self) -> bytes:
        return self.job.outputs.encode("utf-8", "replace")


class HostnameFile(GeneratedFile):
    """The host of a job that exposes a port (from `proxy_link`)."""

    def render(self) -> bytes:
        return f"{self.job.hostname}\n".encode()


def job_info(job: Job) -> dict[str, Any]:
    """info.json's object: JuliaHub.jl's `Job` fields (`id` is the job's name, as
    there; `_json`, the server's object, is server.json)."""
    return {
        "id": job.jobname,
        "alias": job.alias,
        "status": job.status,
        "env": job.inputs,
        "results": job.outputs,
        "files": [_file_info(file) for file in job.files],
        "hostname": job.hostname,
        "_timestamp_submit": format_timestamp(job.submitted),
        "_timestamp_start": format_timestamp(job.started),
        "_timestamp_end": format_timestamp(job.ended),
    }


def _file_info(file: JobFile) -> dict[str, Any]:
    """JuliaHub.jl's `JobFile`: its FileHash as the hex digest (what sha256sum
    prints), null until the upload has finished."""
    return {
        "jobname": file.jobname,
        "type": file.type,
        "filename": file.name,
        "size": file.size,
        "hash": {"algorithm": file.hash.algorithm, "hash": file.hash.hex}
        if file.is_uploaded
        else None,
        "_upload_timestamp": format_timestamp(file.upload_timestamp),
    }


def _json_text(value: Any) -> bytes:
    try:
        return (json.dumps(value, indent=2, ensure_ascii=False) + "\n").encode()
    except UnicodeEncodeError:
        # A lone surrogate from a JSON escape has no UTF-8: escaped again,
        # the JSON still says exactly what the server sent.
        return (json.dumps(value, indent=2) + "\n").encode()
