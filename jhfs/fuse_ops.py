"""The fusepy Operations adapter: path -> node, call the node, map the error.

It is thin on purpose: what a path means lives in jhfs.nodes, what an error
means in jhfs.errno_map. Runs with raw_fi=True so that open can choose direct
I/O or page caching per file.
"""

from __future__ import annotations

import errno
import itertools
import os
import threading
from collections.abc import Callable
from typing import Any

from fuse import FuseOSError, Operations

from jhfs.errno_map import fuse_error
from jhfs.nodes import Attrs, Handle, Node, resolve


class JhfsOperations(Operations):  # type: ignore[misc]  # fusepy is untyped
    use_ns = True  # times are integer nanoseconds (and fusepy stops warning)

    def __init__(self, root: Node, statfs_path: str, on_ready: Callable[[], None]) -> None:
        self.root = root
        self.statfs_path = statfs_path
        self.on_ready = on_ready
        self._handles: dict[int, Handle] = {}
        self._next_fh = itertools.count(1)
        self._handles_lock = threading.Lock()

    def __call__(self, op: str, *args: Any) -> Any:
        try:
            return super().__call__(op, *args)
        except Exception as exc:
            path = args[0] if args and isinstance(args[0], str) else "?"
            raise fuse_error(exc, op, path) from None

    # -- lifecycle ---------------------------------------------------------

    def init(self, path: str) -> None:
        """The kernel finished the handshake: the mount is usable now."""
        self.on_ready()

    # -- reading the tree --------------------------------------------------

    def getattr(self, path: str, fh: Any = None) -> Attrs:
        return resolve(self.root, path).getattr()

    def readdir(self, path: str, fh: int) -> list[str]:
        return [".", "..", *resolve(self.root, path).readdir()]

    def getxattr(self, path: str, name: str, position: int = 0) -> bytes:
        return resolve(self.root, path).getxattr(name)

    def listxattr(self, path: str) -> list[str]:
        return resolve(self.root, path).listxattr()

    def statfs(self, path: str) -> dict[str, int]:
        vfs = os.statvfs(self.statfs_path)
        return {
            "f_bsize": vfs.f_bsize,
            "f_frsize": vfs.f_frsize,
            "f_blocks": vfs.f_blocks,
            "f_bfree": vfs.f_bfree,
            "f_bavail": vfs.f_bavail,
            "f_files": vfs.f_files,
            "f_ffree": vfs.f_ffree,
            "f_favail": vfs.f_favail,
            "f_namemax": 255,
        }

    # -- open files (fi is fusepy's raw fuse_file_info) --------------------

    def open(self, path: str, fi: Any) -> int:
        handle = resolve(self.root, path).open(fi.flags)
        with self._handles_lock:
            fh = next(self._next_fh)
            self._handles[fh] = handle
        fi.fh = fh
        fi.direct_io = handle.direct_io
        fi.keep_cache = handle.keep_cache
        return 0

    def read(self, path: str, size: int, offset: int, fi: Any) -> bytes:
        return self._handle(fi).read(size, offset)

    def write(self, path: str, data: bytes, offset: int, fi: Any) -> int:
        return self._handle(fi).write(data, offset)

    def release(self, path: str, fi: Any) -> int:
        with self._handles_lock:
            handle = self._handles.pop(fi.fh, None)
        if handle is not None:
            handle.release()
        return 0

    def truncate(self, path: str, length: int, fh: Any = None) -> None:
        resolve(self.root, path).truncate(length)

    def _handle(self, fi: Any) -> Handle:
        with self._handles_lock:
            handle = self._handles.get(fi.fh)
        if handle is None:
            raise FuseOSError(errno.EBADF)
        return handle

    # -- everything else is read-only --------------------------------------

    def _read_only(self, *args: Any) -> None:
        raise FuseOSError(errno.EROFS)

    create = mkdir = mknod = unlink = rmdir = rename = link = symlink = _read_only
    chmod = chown = utimens = setxattr = removexattr = _read_only
