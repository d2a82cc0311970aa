"""Finding libfuse 3, with the one-line error when it is missing.

Kept apart from jhfs.binding, which loads the library as it is imported, so
that the CLI can check first and say what to install instead of failing an
import.
"""

from __future__ import annotations

import ctypes.util

INSTALL_HINT = "install it with your package manager (Debian/Ubuntu: apt install fuse3)"


class LibfuseMissingError(Exception):
    """libfuse 3 is not installed; the message is the one line the user sees."""


def require_libfuse3() -> str:
    """The libfuse 3 library's name (for ctypes), or LibfuseMissingError."""
    found = ctypes.util.find_library("fuse3")
    if found is None:
        only_2 = " (only libfuse 2 is installed)" if ctypes.util.find_library("fuse") else ""
        raise LibfuseMissingError(f"jhfs needs libfuse 3{only_2}: {INSTALL_HINT}")
    return found
