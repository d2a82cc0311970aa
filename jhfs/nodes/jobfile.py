"""jobs/<jobname>/files/<type>/<name>: a job file, downloaded once and hash-checked.

The first read fetches the verified blob through the file cache (blocking);
later reads are os.preadv from it into the reply buffer. A job file never changes once uploaded, so
the kernel may keep its pages across opens.
"""

from __future__ import annotations

import errno
import os
import stat
import threading

from jhfs.client import Job, JobFile
from jhfs.errno_map import FuseOSError
from jhfs.nodes.base import XATTR_NAMESPACE, Attrs, Handle, Node, require_read_only
from jhfs.nodes.context import MountContext, to_ns
from jhfs.state.errors import FileNotReadyError
from jhfs.state.files import FileCache

XATTR_HASH = XATTR_NAMESPACE + "hash"
XATTR_TYPE = XATTR_NAMESPACE + "type"
XATTR_UPLOADED = XATTR_NAMESPACE + "upload_timestamp"


class BlobHandle(Handle):
    """An open job file: a descriptor of the verified blob, opened at the first read."""

    def __init__(self, files: FileCache, file: JobFile) -> None:
        self.files = files
        self.file = file
        self.keep_cache = True
        self._fd: int | None = None
        # Only this handle's readers wait here; concurrent handles of one file
        # are made to share one download by the file cache itself.
        self._lock = threading.Lock()

    def read(self, size: int, offset: int) -> bytes:
        fd = self._fd
        if fd is None:
            fd = self._open_blob()
        return os.pread(fd, size, offset)

    def readinto(self, buf: memoryview, offset: int) -> int:
        fd = self._fd
        if fd is None:
            fd = self._open_blob()
        return os.preadv(fd, [buf], offset)  # straight into the kernel's reply, no copy

    def _open_blob(self) -> int:
        with self._lock:
            if self._fd is None:
                self._fd = os.open(self.files.fetch(self.file), os.O_RDONLY)
            return self._fd

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


class JobFileNode(Node):
    def __init__(self, ctx: MountContext, job: Job, file: JobFile) -> None:
        super().__init__(ctx)
        self.job = job
        self.file = file

    def getattr(self) -> Attrs:
        submitted = self.ctx.submit_time(self.job)
        mtime = to_ns(self.file.upload_timestamp, submitted)
        return self._attrs(stat.S_IFREG | 0o444, self.file.size, mtime)

    def open(self, flags: int) -> Handle:
        require_read_only(flags)
        if not self.file.is_uploaded:
            # Checked here too because the kernel does not even ask us to read a
            # file whose size is still 0.
            raise FileNotReadyError(f"{self.file.name}: upload unfinished (no hash yet)")
        return BlobHandle(self.ctx.files, self.file)

    def _xattrs(self) -> dict[str, str]:
        attrs = {XATTR_TYPE: self.file.type}
        if self.file.hash.hex is not None:
            algorithm = self.file.hash.algorithm or "sha2_256"
            attrs[XATTR_HASH] = f"{algorithm}:{self.file.hash.hex}"
        if self.file.upload_timestamp is not None:
            attrs[XATTR_UPLOADED] = self.file.upload_timestamp.isoformat()
        return attrs

    def getxattr(self, name: str) -> bytes:
        value = self._xattrs().get(name)
        if value is None:
            raise FuseOSError(errno.ENODATA)
        return value.encode()

    def listxattr(self) -> list[str]:
        return list(self._xattrs())
