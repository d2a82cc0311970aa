"""The FUSE binding: mfusepy, always on libfuse 3, loaded in this one place.

mfusepy picks libfuse 2 whenever both are installed, and libfuse 2 caps a
FUSE read at 128 KiB; so libfuse 3 is found first (jhfs.libfuse) and handed
to mfusepy. Importing this module loads the library: the CLI calls
`require_libfuse3` before it does.
"""

from __future__ import annotations

import ctypes
import os
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
    fuse_get_context,
    set_st_attrs,
)

_libfuse = ctypes.CDLL(_LIBFUSE3)  # the library mfusepy loaded (dlopen shares it)
_libfuse.fuse_interrupted.restype = ctypes.c_int


def request_abandoned() -> bool:
    """Whether nobody waits any more for the request this libfuse thread serves.

    Once a request is with the filesystem the kernel waits for its answer
    even after SIGKILL, so an operation that may wait long polls this. True
    when the kernel asked to interrupt the request (its process got a signal,
    Ctrl-C), or when the process that caused it has ended: the kernel's
    read-ahead goes on after its reader died, and holds the file open until
    answered. Only for a thread serving a request.
    """
    if _libfuse.fuse_interrupted():
        return True
    _, _, pid = fuse_get_context()
    if pid <= 0:
        return False
    try:
        stat = Path(f"/proc/{pid}/stat").read_bytes()
    except (FileNotFoundError, ProcessLookupError):
        return True
    state = stat.rsplit(b")", 1)[1].split()[0]  # the field after the command name
    return state in (b"Z", b"X")  # ended, not yet reaped


__all__ = [
    "FUSE",
    "Operations",
    "c_stat",
    "fuse_file_info",
    "request_abandoned",
    "set_st_attrs",
]
