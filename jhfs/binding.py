"""The FUSE binding: mfusepy, always on libfuse 3, loaded in this one place.

mfusepy picks libfuse 2 whenever both are installed, and libfuse 2 caps a
FUSE read at 128 KiB and runs lookups in one directory one at a time; so
libfuse 3 is found first (jhfs.libfuse) and handed to mfusepy. Importing this
module loads the library: the CLI calls `require_libfuse3` before it does.
"""

from __future__ import annotations

import ctypes
import os

from jhfs.libfuse import require_libfuse3


def _choose_libfuse3() -> None:
    # mfusepy reads FUSE_LIBRARY_PATH once, as it is imported; the variable is
    # put back after, so that processes jhfs starts see their own environment.
    before = os.environ.get("FUSE_LIBRARY_PATH")
    os.environ["FUSE_LIBRARY_PATH"] = require_libfuse3()
    try:
        import mfusepy  # noqa: F401  # imported here for its side effect: the library choice
    finally:
        if before is None:
            del os.environ["FUSE_LIBRARY_PATH"]
        else:
            os.environ["FUSE_LIBRARY_PATH"] = before


_choose_libfuse3()

from mfusepy import (  # noqa: E402  # after the choice
    FUSE,
    Operations,
    c_stat,
    fuse_file_info,
    set_st_attrs,
)

_libfuse = ctypes.CDLL(require_libfuse3())  # the library mfusepy loaded (dlopen shares it)
_libfuse.fuse_interrupted.restype = ctypes.c_int


def request_interrupted() -> bool:
    """Whether the kernel asked to interrupt the request this libfuse thread serves.

    It does when the process waiting for the answer gets a signal (Ctrl-C,
    kill). Once a request is with the filesystem the kernel waits for its
    answer even for SIGKILL, so an operation that waits long polls this.
    False on any thread that is not serving a request.
    """
    return bool(_libfuse.fuse_interrupted())


__all__ = [
    "FUSE",
    "Operations",
    "c_stat",
    "fuse_file_info",
    "request_interrupted",
    "set_st_attrs",
]
