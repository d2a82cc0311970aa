"""The FUSE binding: mfusepy, always on libfuse 3, loaded in this one place.

mfusepy picks libfuse 2 whenever both are installed, and libfuse 2 caps a
FUSE read at 128 KiB; so libfuse 3 is found first (jhfs.libfuse) and handed
to mfusepy. Importing this module loads the library: the CLI calls
`require_libfuse3` before it does.

Besides mfusepy's API, the few libfuse calls jhfs makes itself: whether the
request a thread serves was abandoned or the mount is ending (for waits
that must end early), and telling the kernel to forget a path's cached
attributes (KernelCache).
"""

from __future__ import annotations

import ctypes
import os
import threading
from pathlib import Path

from jhfs.libfuse import require_libfuse3


def _import_mfusepy_on(library: str) -> None:
    # mfusepy reads FUSE_LIBRARY_PATH once, as it is imported; the variable is
    # put back after, so that processes jhfs starts see their own environment.
    before = os.environ.get("FUSE_LIBRARY_PATH")
    os.environ["FUSE_LIBRARY_PATH"] = library
    try:
        import mfusepy  # noqa: F401  # imported here for its side effect: the library choice
    finally:
        if before is None:
            del os.environ["FUSE_LIBRARY_PATH"]
        else:
            os.environ["FUSE_LIBRARY_PATH"] = before


_LIBFUSE3 = require_libfuse3()  # looked up once: find_library runs ldconfig
_import_mfusepy_on(_LIBFUSE3)

from mfusepy import (  # noqa: E402  # after the choice
    FUSE,
    Operations,
    c_stat,
    fuse_file_info,
    set_st_attrs,
)


class _FuseContext(ctypes.Structure):
    """libfuse 3's struct fuse_context (fuse.h)."""

    _fields_ = [
        ("fuse", ctypes.c_void_p),
        ("uid", ctypes.c_uint32),
        ("gid", ctypes.c_uint32),
        ("pid", ctypes.c_int32),
        ("private_data", ctypes.c_void_p),
        ("umask", ctypes.c_uint32),
    ]


# The library mfusepy loaded (dlopen shares it); these prototypes are this
# handle's own and do not touch mfusepy's.
_libfuse = ctypes.CDLL(_LIBFUSE3)
_libfuse.fuse_interrupted.restype = ctypes.c_int
_libfuse.fuse_get_context.restype = ctypes.POINTER(_FuseContext)
_libfuse.fuse_get_session.restype = ctypes.c_void_p
_libfuse.fuse_get_session.argtypes = [ctypes.c_void_p]
_libfuse.fuse_session_exited.restype = ctypes.c_int
_libfuse.fuse_session_exited.argtypes = [ctypes.c_void_p]
_libfuse.fuse_invalidate_path.restype = ctypes.c_int
_libfuse.fuse_invalidate_path.argtypes = [ctypes.c_void_p, ctypes.c_char_p]


def _context() -> _FuseContext | None:
    """The calling thread's libfuse context; None outside a libfuse thread."""
    pointer = _libfuse.fuse_get_context()
    return pointer.contents if pointer else None


def request_abandoned() -> bool:
    """Whether nobody waits any more for the request this libfuse thread serves.

    Once a request is with the filesystem the kernel waits for its answer
    even after SIGKILL, so an operation that may wait long polls this. True
    when the kernel asked to interrupt the request (its process got a signal,
    Ctrl-C), or when the process that caused it has ended: the kernel's
    read-ahead goes on after its reader died, and holds the file open until
    answered. False outside a thread serving a request.
    """
    context = _context()
    if context is None:
        return False
    if _libfuse.fuse_interrupted():
        return True
    pid = context.pid
    if pid <= 0:
        return False
    try:
        stat = Path(f"/proc/{pid}/stat").read_bytes()
    except (FileNotFoundError, ProcessLookupError):
        return True
    state = stat.rsplit(b")", 1)[1].split()[0]  # the field after the command name
    return state in (b"Z", b"X")  # ended, not yet reaped


def session_ending() -> bool:
    """Whether the mount is being taken down (libfuse got SIGTERM, SIGINT or SIGHUP).

    libfuse then finishes the requests in progress before it unmounts, so
    an operation that waits polls this too and gives up at once. False
    outside a thread serving a request.
    """
    context = _context()
    if context is None or not context.fuse:
        return False
    return bool(_libfuse.fuse_session_exited(_libfuse.fuse_get_session(context.fuse)))


class KernelCache:
    """Tells the kernel to forget what it caches of a path (its attributes, its pages).

    The kernel keeps a file's attributes for attr_timeout; a file that grows
    while a program polls its size (`tail -f` of a log) would look unchanged
    for that long. `invalidate` may be called from any thread once `attach`
    ran in a libfuse thread (the mount's init), and does nothing once the
    mount is ending: libfuse then closes the descriptor it writes to, whose
    number another file may take.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._fuse: int | None = None
        self._session: int | None = None

    def attach(self) -> None:
        """Called in the mount's init (a libfuse thread)."""
        context = _context()
        if context is None or not context.fuse:
            return
        with self._lock:
            self._fuse = context.fuse
            self._session = _libfuse.fuse_get_session(context.fuse)

    def invalidate(self, path: str) -> None:
        with self._lock:  # held across the call: never alongside detach
            if self._fuse is None or _libfuse.fuse_session_exited(self._session):
                return
            # -ENOENT when the kernel does not know the path: nothing to forget.
            _libfuse.fuse_invalidate_path(self._fuse, os.fsencode(path))

    def detach(self) -> None:
        """The mount is ending: no more invalidations."""
        with self._lock:
            self._fuse = self._session = None


__all__ = [
    "FUSE",
    "KernelCache",
    "Operations",
    "c_stat",
    "fuse_file_info",
    "request_abandoned",
    "session_ending",
    "set_st_attrs",
]
