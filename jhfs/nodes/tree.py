"""The directories of the tree: MOUNT/, jobs/, jobs/<jobname>/, files/, files/<type>/.

Looking a path up walks it from the root one name at a time; a job is found
through the registry once per lookup, and every node below it is built from
that one Job object. A job directory's own attributes never change (its
mtime is the submit time), so they come from whatever copy of the job is
held; only what is inside it asks for a fresh one.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterable
from typing import TypeVar

from jhfs.client import Job, JobFile
from jhfs.client.once import warn_once
from jhfs.nodes import dotjhfs, views
from jhfs.nodes.base import XATTR_NAMESPACE, Attrs, Directory, Node, type_only
from jhfs.nodes.context import MountContext
from jhfs.nodes.ctl import CtlFile
from jhfs.nodes.errors import NoSuchName
from jhfs.nodes.jobfile import JobFileNode
from jhfs.nodes.logs import LogsFile
from jhfs.nodes.text import HostnameFile, InfoFile, ResultsFile, ServerFile, StatusFile
from jhfs.nodes.wait import WaitFile
from jhfs.state.logformat import Rendering

logger = logging.getLogger(__name__)

NAME_MAX = 255  # bytes in one name: the kernel refuses a listing with a longer one

_Entry = TypeVar("_Entry")


def resolve(root: Node, path: str) -> Node:
    """The node at an absolute path of the mount (NoSuchName when a name does not exist).

    mfusepy decodes a path's bytes with surrogateescape, so bytes that are
    not UTF-8 arrive as lone surrogates: such a name is no entry's (below),
    and is refused before any node looks it up (or asks the server about it).
    """
    node = root
    for name in path.split("/"):
        if name:
            if not is_path_component(name):
                raise NoSuchName(name)
            node = node.lookup(name)
    return node


def is_path_component(name: str) -> bool:
    """Whether a name can be one entry of a directory (a server-chosen one, or a
    name looked up).

    Not with "/" or NUL (the kernel would refuse the whole listing, or see
    another name), not longer than NAME_MAX bytes, and not with a lone
    surrogate: from a JSON escape it has no bytes a path could hold, and from
    a path it stands for bytes that are not UTF-8, which no name the server
    chose has.
    """
    if name in ("", ".", "..") or "/" in name or "\0" in name:
        return False
    try:
        return len(name.encode("utf-8")) <= NAME_MAX
    except UnicodeEncodeError:
        return False


def entries(items: Iterable[_Entry], name_of: Callable[[_Entry], str], where: str) -> list[_Entry]:
    """The items that can be entries of one directory: a name no entry can have, or
    one already taken (the first, the newest, wins), is left out with one warning."""
    kept: dict[str, _Entry] = {}
    for item in items:
        name = name_of(item)
        if name in kept:
            warn_once(logger, f"{where}: {name!r} is listed twice; only the first is shown")
        elif not is_path_component(name):
            warn_once(logger, f"{where}: left out {name!r}, which cannot be a file name")
        else:
            kept[name] = item
    return list(kept.values())


XATTR_PID = XATTR_NAMESPACE + "pid"


class RootDir(Directory):
    """MOUNT/: holds jobs/, and the views of it (jhfs.nodes.views); .jhfs/ is answered,
    not listed (jhfs.nodes.dotjhfs)."""

    def __init__(self, ctx: MountContext) -> None:
        super().__init__(ctx)
        self.jobs = JobsDir(ctx)

    def mtime_ns(self) -> int:
        return self.ctx.mounted_at_ns

    def children(self) -> list[str]:
        return ["jobs", *views.VIEWS]

    def nlink(self) -> int:
        return 5  # jobs/, by-alias/, by-status/

    def lookup(self, name: str) -> Node:
        if name == "jobs":
            return self.jobs
        if name in views.VIEWS:
            return views.view(self.ctx, name, self.jobs._listed)
        if name == dotjhfs.NAME:
            return dotjhfs.DotJhfsDir(self.ctx)
        raise NoSuchName(name)

    def getxattr(self, name: str) -> bytes:
        # How `jhfs umount` finds the process to end (answered, not listed).
        if name == XATTR_PID:
            return str(os.getpid()).encode()
        return super().getxattr(name)


class JobsDir(Directory):
    """jobs/: the latest jobs from one listing call; any other job by its name."""

    def mtime_ns(self) -> int:
        return self.ctx.mounted_at_ns

    def _listed(self) -> list[Job]:
        """The listing's jobs, but for a name no directory entry can have."""
        return entries(self.ctx.registry.list_jobs(), lambda job: job.jobname, "jobs/")

    def children(self) -> list[str]:
        return [job.jobname for job in self._listed()]

    def readdir_plus(self) -> list[tuple[str, Attrs | None]]:
        # The listing has every job's attributes: the kernel then knows each
        # entry without a lookup (`ls -l` of 10,000 jobs needs none), and a
        # listed job is never looked up behind a slow lookup of another name.
        return [(job.jobname, JobDir(self.ctx, job).getattr()) for job in self._listed()]

    def nlink(self) -> int:
        return 1  # "not counted": tools like find then look into every entry

    def lookup(self, name: str) -> Node:
        registry = self.ctx.registry
        return JobDir(self.ctx, registry.cached(name) or registry.get(name))


class JobDir(Directory):
    """jobs/<jobname>/: one job; its mtime is the submit time.

    `job` may be any copy of the job (enough for the directory's attributes);
    its entries are made from a fresh one.
    """

    def __init__(self, ctx: MountContext, job: Job) -> None:
        super().__init__(ctx)
        self.job = job

    def mtime_ns(self) -> int:
        return self.ctx.submit_time(self.job)

    def fresh_job(self) -> Job:
        """The job as fresh as the registry promises (no request for a final one)."""
        return self.job if self.job.is_final else self.ctx.registry.get(self.job.jobname)

    def children(self) -> list[str]:
        names = [
            "status", "info.json", "server.json", "results", "logs", "logs.jsonl", "files", "ctl"
        ]  # fmt: skip
        if self.fresh_job().hostname:
            names.append("hostname")
        return names

    def nlink(self) -> int:
        return 3  # files/

    def readdir_plus(self) -> list[tuple[str, Attrs | None]]:
        # Each entry's type: `find` and `ls` then know what to descend into
        # without a stat, which for the logs would fetch them (their size).
        return [(name, type_only(self.lookup(name))) for name in self.children()]

    def lookup(self, name: str) -> Node:
        job, ctx = self.fresh_job(), self.ctx
        match name:
            case "status":
                return StatusFile(ctx, job)
            case "info.json":
                return InfoFile(ctx, job)
            case "server.json":
                return ServerFile(ctx, job)
            case "results":
                return ResultsFile(ctx, job)
            case "logs":
                return LogsFile(ctx, job, Rendering.TEXT)
            case "logs.jsonl":
                return LogsFile(ctx, job, Rendering.JSONL)
            case "files":
                return FilesDir(ctx, job)
            case "ctl":
                return CtlFile(ctx, job)
            case "wait":  # answered, not listed (jhfs.nodes.wait)
                return WaitFile(ctx, job)
            case "hostname" if job.hostname:
                return HostnameFile(ctx, job)
        raise NoSuchName(name)


class FilesDir(Directory):
    """files/: one directory per file type the job has."""

    def __init__(self, ctx: MountContext, job: Job) -> None:
        super().__init__(ctx)
        self.job = job

    def mtime_ns(self) -> int:
        return self.ctx.submit_time(self.job)

    def children(self) -> list[str]:
        types = entries({f.type: f for f in self.job.files}, str, f"{self.job.jobname}/files/")
        return sorted(types)

    def nlink(self) -> int:
        return 2 + len(self.children())

    def lookup(self, name: str) -> Node:
        if name not in self.children():
            raise NoSuchName(name)
        return FileTypeDir(self.ctx, self.job, name)


class FileTypeDir(Directory):
    """files/<type>/: the job's files of one type."""

    def __init__(self, ctx: MountContext, job: Job, file_type: str) -> None:
        super().__init__(ctx)
        self.job = job
        self.file_type = file_type

    def mtime_ns(self) -> int:
        return self.ctx.submit_time(self.job)

    def children(self) -> list[str]:
        return [file.name for file in self._files()]

    def _files(self) -> list[JobFile]:
        of_type = [file for file in self.job.files if file.type == self.file_type]
        where = f"{self.job.jobname}/files/{self.file_type}/"
        return entries(of_type, lambda file: file.name, where)

    def lookup(self, name: str) -> Node:
        for file in self._files():
            if file.name == name:
                return JobFileNode(self.ctx, self.job, file)
        raise NoSuchName(name)
