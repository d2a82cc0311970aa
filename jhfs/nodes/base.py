"""What every node and open-file handle can do, and the defaults for a read-only tree.

A node is one path of the tree (a directory, a generated text file, a job
file, ctl...); the fusepy adapter looks a path up to a node and calls it. An
open file is a Handle, which also says how the kernel may cache its pages.
"""

from __future__ import annotations

import os
import stat
from abc import ABC, abstractmethod

from jhfs.nodes.context import MountContext
from jhfs.nodes.errors import (
    BadFileHandle,
    IsADirectory,
    NoSuchAttribute,
    NotADirectory,
    NotASymlink,
    ReadOnly,
)

Attrs = dict[str, int]

BLOCK = 512  # st_blocks counts 512-byte units whatever the block size
XATTR_NAMESPACE = "user.jhfs."  # every extended attribute a node has starts so
# Modes as a copy should have them: cp -r, rsync -a and tar keep a file's
# mode, and a copy made of 0444 files in 0555 directories cannot be copied
# over or `rm -rf`'d by its owner. The tree stays read-only: with
# default_permissions the kernel lets the owner open a file for writing, and
# the node refuses (EROFS), but for ctl.
FILE_MODE = stat.S_IFREG | 0o644
DIR_MODE = stat.S_IFDIR | 0o755


def job_path(jobname: str, name: str) -> str:
    """A file of the job's directory, as a path of the mount (what the kernel is
    told to forget when it changes)."""
    return f"/jobs/{jobname}/{name}"


class Handle:
    """An open file: `direct_io` if its content changes, `keep_cache` if it never does."""

    direct_io = False
    keep_cache = False

    def read(self, size: int, offset: int) -> bytes:
        raise BadFileHandle("not open for reading")

    def readinto(self, buf: memoryview, offset: int) -> int:
        """Fill `buf` with the bytes at `offset` (fewer at the end); how many."""
        data = self.read(len(buf), offset)
        buf[: len(data)] = data
        return len(data)

    def write(self, data: bytes, offset: int) -> int:
        raise BadFileHandle("not open for writing")

    def release(self) -> None:
        """The last descriptor of this open file was closed."""


class Node(ABC):
    """One path of the tree."""

    def __init__(self, ctx: MountContext) -> None:
        self.ctx = ctx

    @abstractmethod
    def getattr(self) -> Attrs: ...

    def lookup(self, name: str) -> Node:
        raise NotADirectory(name)

    def readdir(self) -> list[str]:
        raise NotADirectory()

    def readdir_plus(self) -> list[tuple[str, Attrs | None]]:
        """The entries, each with its attributes where they cost no request, else its
        type alone (`type_only`) or None."""
        return [(name, None) for name in self.readdir()]

    def open(self, flags: int) -> Handle:
        raise IsADirectory()

    def readlink(self) -> str:
        raise NotASymlink()

    def truncate(self, length: int) -> None:
        raise ReadOnly("truncate")

    def getxattr(self, name: str) -> bytes:
        raise NoSuchAttribute(name)

    def listxattr(self) -> list[str]:
        return []

    def _attrs(self, mode: int, size: int, mtime_ns: int, nlink: int = 1) -> Attrs:
        return {
            "st_mode": mode,
            "st_nlink": nlink,
            "st_size": size,
            "st_blocks": -(-size // BLOCK),
            # cp and cat read st_blksize at a time, and the kernel's read-ahead
            # grows with the reads: 256 KiB FUSE reads instead of 128 KiB
            # (measured; direct I/O would make each 1 MiB read one request).
            "st_blksize": 1 << 20,
            "st_uid": self.ctx.uid,
            "st_gid": self.ctx.gid,
            "st_mtime": mtime_ns,
            "st_ctime": mtime_ns,
            "st_atime": mtime_ns,
        }


class Directory(Node):
    """A directory: read-only, its entries from `children`."""

    @abstractmethod
    def mtime_ns(self) -> int: ...

    @abstractmethod
    def children(self) -> list[str]: ...

    def nlink(self) -> int:
        """2 + the number of subdirectories (1 where counting would cost a request)."""
        return 2

    def getattr(self) -> Attrs:
        return self._attrs(DIR_MODE, 0, self.mtime_ns(), nlink=self.nlink())

    def readdir(self) -> list[str]:
        return self.children()


def type_only(node: Node) -> Attrs:
    """A listing entry's type alone (a directory or a regular file), for a node whose
    attributes may cost a request."""
    return {"st_mode": stat.S_IFDIR if isinstance(node, Directory) else stat.S_IFREG}


def is_type_only(attrs: Attrs) -> bool:
    """Whether a listing entry's attributes are its type alone (`type_only`)."""
    return attrs.keys() == {"st_mode"}


def require_read_only(flags: int) -> None:
    """Refuse an open for writing: the tree is read-only but for ctl."""
    if flags & os.O_ACCMODE != os.O_RDONLY:
        raise ReadOnly("open for writing")
