"""The views at the mount's root: `latest`, `by-alias/` and `by-status/`, whose
entries are symlinks into jobs/.

They are made anew for each operation from the listing of jobs/ (one request,
reused for LISTING_TTL; the views send none of their own), so they show the
same jobs as `ls jobs/`: the latest --jobs-limit, newest first, without
those whose names cannot be entries. A symlink is relative (`../jobs/<jobname>`),
so it works wherever the mount is, and leads to the same jobs/<jobname>/ as
ever. An alias or status that cannot be a file name is left out with one
warning (jhfs.nodes.tree.entries).
"""

from __future__ import annotations

import stat
from abc import abstractmethod
from collections.abc import Callable

from jhfs.client import Job
from jhfs.nodes import tree  # for entries(); tree imports this module in turn
from jhfs.nodes.base import Attrs, Directory, Node
from jhfs.nodes.context import MountContext
from jhfs.nodes.errors import NoSuchName

VIEWS = ("latest", "by-alias", "by-status")
ALL = ".all"  # by-alias/<alias>.all/: every job of the alias

Listing = Callable[[], list[Job]]  # the jobs of jobs/, newest first


def view(ctx: MountContext, name: str, listing: Listing) -> Node:
    """The view of that name at the root (NoSuchName for `latest` without a job)."""
    match name:
        case "latest":
            jobs = listing()
            if jobs:
                return JobLink(ctx, jobs[0], up=0)
        case "by-alias":
            return ByAliasDir(ctx, listing)
        case "by-status":
            return ByStatusDir(ctx, listing)
    raise NoSuchName(name)


def grouped(jobs: list[Job], key: Callable[[Job], str | None]) -> dict[str, list[Job]]:
    """The jobs by key, in the listing's order (newest first); a key of None: left out."""
    groups: dict[str, list[Job]] = {}
    for job in jobs:
        value = key(job)
        if value is not None:
            groups.setdefault(value, []).append(job)
    return groups


class JobLink(Node):
    """A symlink to jobs/<jobname>, from a directory `up` levels below the root."""

    def __init__(self, ctx: MountContext, job: Job, up: int) -> None:
        super().__init__(ctx)
        self.job = job
        self.target = "../" * up + f"jobs/{job.jobname}"

    def getattr(self) -> Attrs:
        size = len(self.target.encode())
        return self._attrs(stat.S_IFLNK | 0o777, size, self.ctx.submit_time(self.job))

    def readlink(self) -> str:
        return self.target


class ViewDir(Directory):
    """A directory of the views: its entries, with their attributes, from one listing."""

    @abstractmethod
    def contents(self) -> dict[str, Node]: ...

    def children(self) -> list[str]:
        return list(self.contents())

    def readdir_plus(self) -> list[tuple[str, Attrs | None]]:
        # Every entry's attributes come with the listing: `ls -l` needs no lookups.
        return [(name, node.getattr()) for name, node in self.contents().items()]

    def lookup(self, name: str) -> Node:
        node = self.contents().get(name)
        if node is None:
            raise NoSuchName(name)
        return node


class LinkDir(ViewDir):
    """by-alias/<alias>.all/, by-status/<Status>/: a symlink to each of its jobs,
    named by jobname; its mtime is the newest one's submit time."""

    def __init__(self, ctx: MountContext, jobs: list[Job]) -> None:
        super().__init__(ctx)
        self.jobs = jobs  # newest first, never empty

    def mtime_ns(self) -> int:
        return self.ctx.submit_time(self.jobs[0])

    def contents(self) -> dict[str, Node]:
        return {job.jobname: JobLink(self.ctx, job, up=2) for job in self.jobs}


class ListingViewDir(ViewDir):
    """A view directory at the root: its own attributes need no listing."""

    def __init__(self, ctx: MountContext, listing: Listing) -> None:
        super().__init__(ctx)
        self.listing = listing

    def mtime_ns(self) -> int:
        return self.ctx.mounted_at_ns

    def nlink(self) -> int:
        return 1  # not counted: that would need the listing


class ByAliasDir(ListingViewDir):
    """by-alias/: <alias>, a symlink to the newest job of that alias, and
    <alias>.all/, every one of them."""

    def contents(self) -> dict[str, Node]:
        groups = grouped(self.listing(), lambda job: job.alias or None)  # "": no alias
        aliases = tree.entries(groups.items(), lambda group: group[0], "by-alias/")
        links: list[tuple[str, Node]] = [
            (alias, JobLink(self.ctx, jobs[0], up=1)) for alias, jobs in aliases
        ]
        every: list[tuple[str, Node]] = [
            (alias + ALL, LinkDir(self.ctx, jobs)) for alias, jobs in aliases
        ]
        # Aliases "x.all" and "x" would both have an "x.all": the link, listed
        # first, is kept (with a warning); so is every alias's own link.
        return dict(tree.entries([*links, *every], lambda entry: entry[0], "by-alias/"))


class ByStatusDir(ListingViewDir):
    """by-status/: <Status>/ for each status the listed jobs have."""

    def contents(self) -> dict[str, Node]:
        groups = grouped(self.listing(), lambda job: job.status)
        statuses = tree.entries(groups.items(), lambda group: group[0], "by-status/")
        return {status: LinkDir(self.ctx, jobs) for status, jobs in statuses}
