"""The Operations adapter for mfusepy: path -> node, call the node, map the error.

It is thin on purpose: what a path means lives in jhfs.nodes, what an error
means in jhfs.errno_map (every exception leaves through `at_the_edge`). Runs
with raw_fi=True so that open can choose direct I/O or page caching per file.
Paths come decoded with surrogateescape (mfusepy's default): bytes that are
not UTF-8 never fail to decode, and name nothing (jhfs.nodes.resolve).

Every operation is a round trip kernel -> libfuse thread -> Python (tens of
microseconds), so there are few and each is short: extended attributes outside
user.jhfs. are answered without looking the path up (and other namespaces as
not supported, which `ls -l` remembers), a node's refusal costs a debug
line only, reads go from the open handle into libfuse's buffer (`JhfsFUSE`), and
each libfuse thread keeps its Python thread state (`keep_thread_state`).
"""

from __future__ import annotations

import ctypes
import functools
import itertools
import logging
import os
import threading
from collections.abc import Callable
from typing import Any, TypeVar

from jhfs.binding import (
    FUSE,
    KernelCache,
    Operations,
    c_stat,
    loop_end_hook,
    request_abandoned,
    session_ending,
    set_st_attrs,
)
from jhfs.client.pacing import operation_deadline, remaining
from jhfs.errno_map import fuse_error
from jhfs.nodes import XATTR_NAMESPACE, Attrs, Handle, Node, resolve
from jhfs.nodes.base import is_type_only
from jhfs.nodes.errors import AttributeNotSupported, BadFileHandle, NoSuchAttribute, ReadOnly
from jhfs.state.errors import ShuttingDownError

logger = logging.getLogger(__name__)

# ctypes runs a callback from a thread Python did not start (all of libfuse's)
# with a thread state made for that one call and destroyed after it, which
# costs about a fifth of a trivial operation. Keeping it alive for the thread
# takes one extra PyGILState_Ensure, never released. libfuse ends a worker
# thread once more than 10 are idle, and the thread state of an ended thread
# stays allocated (about 20 KB), so only this many threads keep theirs:
# enough for every thread of a steady load, bounded after bursts.
KEPT_THREAD_STATES = 32
_kept = threading.local()
_kept_count = itertools.count()

_Op = TypeVar("_Op", bound=Callable[..., Any])

FUSE_FILL_DIR_PLUS = 1 << 1  # enum fuse_fill_dir_flags: the entry comes with its attributes


def keep_thread_state() -> None:
    """Let the calling libfuse thread keep its Python thread state across callbacks."""
    if getattr(_kept, "state", False):
        return
    if next(_kept_count) < KEPT_THREAD_STATES:
        ctypes.pythonapi.PyGILState_Ensure()
        _kept.state = True


def operation_abandoned() -> bool:
    """For an operation that waits: whether nobody waits for it any more (its
    process was interrupted or ended). Raises DeadlineExceeded once its deadline
    has passed and ShuttingDownError once the mount is ending."""
    if session_ending():
        raise ShuttingDownError("the mount is ending")
    remaining()
    return request_abandoned()


def at_the_edge(operation: _Op) -> _Op:
    """Run a FUSE operation within its deadline, so that whatever it raises reaches
    the binding as an errno."""
    name = operation.__name__

    @functools.wraps(operation)
    def run(self: JhfsOperations, *args: Any) -> Any:
        keep_thread_state()
        try:
            with operation_deadline(self.timeout):
                return operation(self, *args)
        except Exception as exc:
            raise fuse_error(exc, name, _path_of(args)) from None

    return run  # type: ignore[return-value]  # same signature, wrapped


class JhfsFUSE(FUSE):  # type: ignore[misc]  # mfusepy is untyped
    """mfusepy's FUSE, with reads written straight into libfuse's buffer and
    listings that carry their entries' attributes.

    mfusepy's read takes bytes from the operation and copies them into the
    buffer; here the operation gets the buffer itself, as a memoryview, and
    returns the count. mfusepy's readdir passes only an entry's mode; here an
    entry with attributes goes to libfuse as FUSE_FILL_DIR_PLUS, so that the
    kernel's READDIRPLUS knows it without a lookup. Lookups of one directory
    would otherwise queue behind a slow one: libfuse before 3.17.1 (Debian
    12 has 3.14) never tells the kernel that they may run in parallel.
    `read` and `readdir_fuse_3` are the binding's public callbacks for
    libfuse's read and readdir; only they are replaced.
    """

    def __init__(self, operations: JhfsOperations, mountpoint: str, **options: Any) -> None:
        # Mounts and serves until unmounted. Invalidations stop once the loop has
        # ended, before libfuse frees the tables they look paths up in.
        with loop_end_hook(operations.kernel_cache.detach):
            super().__init__(operations, mountpoint, **options)

    def readdir_fuse_3(
        self, path: bytes | None, buf: Any, filler: Any, offset: int, fip: Any, flags: int
    ) -> int:
        decoded = None if path is None else path.decode(self.encoding, self.errors)
        entries = self.operations.readdir(decoded, fip.contents.fh, offset)
        st = c_stat()
        # Each entry carries its position: libfuse gives the kernel an entry's
        # attributes only in this mode, and the kernel asks for the rest of a
        # long listing from the position where its buffer filled up.
        for position in range(offset, len(entries)):
            name, attrs = entries[position]
            ctypes.memset(ctypes.byref(st), 0, ctypes.sizeof(st))
            fill = 0
            if attrs is not None:
                set_st_attrs(st, attrs, use_ns=True)
                # With its type alone, the entry goes without FUSE_FILL_DIR_PLUS:
                # libfuse then passes only the type (d_type) and the kernel looks
                # the entry up for the rest.
                fill = 0 if is_type_only(attrs) else FUSE_FILL_DIR_PLUS
            if filler(buf, name.encode(self.encoding, self.errors), st, position + 1, fill):
                break  # the kernel's buffer is full
        return 0

    def read(self, path: bytes | None, buf: Any, size: int, offset: int, fip: Any) -> int:
        view = (ctypes.c_char * size).from_address(ctypes.addressof(buf.contents))
        decoded = None if path is None else path.decode(self.encoding, self.errors)
        count: int = self.operations.read(decoded, memoryview(view).cast("B"), offset, fip.contents)
        return count


class JhfsOperations(Operations):  # type: ignore[misc]  # mfusepy is untyped
    use_ns = True  # times are integer nanoseconds (and mfusepy stops warning)

    def __init__(
        self,
        root: Node,
        statfs_path: str,
        on_ready: Callable[[], None],
        timeout: float,
        kernel_cache: KernelCache,
    ) -> None:
        self.root = root
        self.kernel_cache = kernel_cache
        self.timeout = timeout  # seconds an operation may take in all
        self.statfs_path = statfs_path
        self.on_ready = on_ready
        self.mounted = False  # set once the kernel handshake is done
        self._handles: dict[int, Handle] = {}
        self._listings: dict[int, list[tuple[str, Attrs | None]]] = {}  # open directories
        self._next_fh = itertools.count(1)
        self._handles_lock = threading.Lock()

    # -- lifecycle ---------------------------------------------------------

    def init(self, path: str) -> None:
        """The kernel finished the handshake: the mount is usable now."""
        self.kernel_cache.attach()
        self.mounted = True
        self.on_ready()

    def destroy(self, path: str) -> None:
        """libfuse is taking the mount down (after the unmount)."""
        logger.debug("libfuse ends the file system")
        self.kernel_cache.detach()  # already done, unless libfuse is older than 3.12

    # -- reading the tree --------------------------------------------------

    @at_the_edge
    def getattr(self, path: str, fh: Any = None) -> Attrs:
        return resolve(self.root, path).getattr()

    @at_the_edge
    def readlink(self, path: str) -> str:
        return resolve(self.root, path).readlink()

    @at_the_edge
    def opendir(self, path: str) -> int:
        resolve(self.root, path)  # ENOENT, ENOTDIR: at opendir, as for any directory
        return next(self._next_fh)  # its listing is read at the first readdir

    @at_the_edge
    def readdir(self, path: str, fh: int, offset: int) -> list[tuple[str, Attrs | None]]:
        """The entries with their attributes where known (called by JhfsFUSE).

        Read once per open directory, at offset 0 (opendir or rewinddir): the
        kernel asks for a long listing in several parts, all from one copy.
        """
        entries = self._listings.get(fh)
        if offset == 0 or entries is None:
            entries = [(".", None), ("..", None), *resolve(self.root, path).readdir_plus()]
            with self._handles_lock:
                self._listings[fh] = entries
        return entries

    @at_the_edge
    def releasedir(self, path: str, fh: int) -> int:
        with self._handles_lock:
            self._listings.pop(fh, None)
        return 0

    @at_the_edge
    def getxattr(self, path: str, name: str, position: int = 0) -> bytes:
        if not name.startswith(XATTR_NAMESPACE):
            # No node has any other attribute, so the path need not be looked
            # up. Namespaces other than user. are not supported at all
            # (ENOTSUP): `ls -l` asks for security.selinux and
            # system.posix_acl_* of every entry (the kernel caches neither
            # answer) until a file system says so, then stops asking.
            if name.startswith("user."):
                raise NoSuchAttribute(name)
            raise AttributeNotSupported(name)
        return resolve(self.root, path).getxattr(name)

    @at_the_edge
    def listxattr(self, path: str) -> list[str]:
        return resolve(self.root, path).listxattr()

    @at_the_edge
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

    # -- open files (fi is the binding's raw fuse_file_info) ----------------

    @at_the_edge
    def open(self, path: str, fi: Any) -> int:
        handle = resolve(self.root, path).open(fi.flags)
        with self._handles_lock:
            fh = next(self._next_fh)
            self._handles[fh] = handle
        fi.fh = fh
        fi.direct_io = handle.direct_io
        fi.keep_cache = handle.keep_cache
        return 0

    @at_the_edge
    def read(self, path: str | None, buf: memoryview, offset: int, fi: Any) -> int:
        """Fill `buf` from the open file at `offset` (called by JhfsFUSE); the count read."""
        return self._handle(fi).readinto(buf, offset)

    @at_the_edge
    def write(self, path: str, data: bytes, offset: int, fi: Any) -> int:
        return self._handle(fi).write(data, offset)

    @at_the_edge
    def release(self, path: str, fi: Any) -> int:
        with self._handles_lock:
            handle = self._handles.pop(fi.fh, None)
        if handle is not None:
            handle.release()
        return 0

    @at_the_edge
    def truncate(self, path: str, length: int, fh: Any = None) -> None:
        resolve(self.root, path).truncate(length)

    def _handle(self, fi: Any) -> Handle:
        # No lock: one dict lookup is atomic, and a handle is only removed by
        # release, after the kernel's last read of it.
        handle = self._handles.get(fi.fh)
        if handle is None:
            raise BadFileHandle(f"no open file {fi.fh}")
        return handle

    # -- what libfuse does as well without a trip into Python -----------------

    # mfusepy registers whatever the class has; None leaves an operation to
    # libfuse: flush is not needed (ENOSYS, and the kernel stops sending it).
    flush = None

    # -- everything else is read-only --------------------------------------

    @at_the_edge
    def _read_only(self, *args: Any) -> None:
        raise ReadOnly()

    create = mkdir = mknod = unlink = rmdir = rename = link = symlink = _read_only
    chmod = chown = utimens = setxattr = removexattr = _read_only


def _path_of(args: tuple[Any, ...]) -> str:
    return args[0] if args and isinstance(args[0], str) else "?"
