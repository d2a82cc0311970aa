"""The FUSE binding: mfusepy, always on libfuse 3, loaded in this one place.

mfusepy picks libfuse 2 whenever both are installed, and libfuse 2 caps a
FUSE read at 128 KiB; so libfuse 3 is found first (jhfs.libfuse) and handed
to mfusepy. Importing this module loads the library: the CLI calls
`require_libfuse3` before it does.

Besides mfusepy's API, the few libfuse calls jhfs makes itself: whether the
request a thread serves was abandoned or the mount is ending (for waits
that must end early), telling the kernel to forget a path's cached
attributes (KernelCache), and libfuse's fuse_main itself, run step by step
so that something may happen between the loop's end and the unmount
(`loop_end_hook`).
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import logging
import os
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

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

import mfusepy  # noqa: E402  # after the choice
from mfusepy import (  # noqa: E402
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


logger = logging.getLogger(__name__)


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
        """The mount is ending: no more invalidations (waits for one in progress)."""
        with self._lock:
            if self._fuse is not None:
                logger.debug("no more kernel cache invalidations")
            self._fuse = self._session = None


class _FuseArgs(ctypes.Structure):
    """struct fuse_args (fuse_opt.h)."""

    _fields_ = [
        ("argc", ctypes.c_int),
        ("argv", ctypes.POINTER(ctypes.c_char_p)),
        ("allocated", ctypes.c_int),
    ]


class _CmdlineOpts(ctypes.Structure):
    """struct fuse_cmdline_opts (fuse_lowlevel.h) as of libfuse 3.12, which added
    max_threads; fuse_parse_cmdline_312 fills this one."""

    _fields_ = [
        ("singlethread", ctypes.c_int),
        ("foreground", ctypes.c_int),
        ("debug", ctypes.c_int),
        ("nodefault_subtype", ctypes.c_int),
        ("mountpoint", ctypes.c_void_p),  # malloc'ed by libfuse: the caller frees it
        ("show_version", ctypes.c_int),
        ("show_help", ctypes.c_int),
        ("clone_fd", ctypes.c_int),
        ("max_idle_threads", ctypes.c_uint),
        ("max_threads", ctypes.c_uint),
    ]


# (name, result type, argument types); the versioned names (_312, _31) are the
# ones whose structs are declared here, exported since libfuse 3.12.
_P, _I, _U, _S = ctypes.c_void_p, ctypes.c_int, ctypes.c_uint, ctypes.c_size_t
_MAIN_STEPS: list[tuple[str, Any, list[Any]]] = [
    ("fuse_parse_cmdline_312", _I, [_P, _P]),
    ("fuse_new_31", _P, [_P, _P, _S, _P]),
    ("fuse_mount", _I, [_P, _P]),
    ("fuse_daemonize", _I, [_I]),
    ("fuse_set_signal_handlers", _I, [_P]),
    ("fuse_loop", _I, [_P]),
    ("fuse_loop_cfg_create", _P, []),
    ("fuse_loop_cfg_set_clone_fd", None, [_P, _U]),
    ("fuse_loop_cfg_set_idle_threads", None, [_P, _U]),
    ("fuse_loop_cfg_set_max_threads", None, [_P, _U]),
    ("fuse_loop_mt_312", _I, [_P, _P]),
    ("fuse_loop_cfg_destroy", None, [_P]),
    ("fuse_remove_signal_handlers", None, [_P]),
    ("fuse_unmount", None, [_P]),
    ("fuse_destroy", None, [_P]),
    ("fuse_opt_free_args", None, [_P]),
]


def _declare_main_steps() -> bool:
    """Whether the library has every step of fuse_main that `_fuse_main` calls."""
    try:
        for name, restype, argtypes in _MAIN_STEPS:
            function = getattr(_libfuse, name)
            function.restype, function.argtypes = restype, argtypes
    except AttributeError:  # libfuse before 3.12
        return False
    return True


_HAS_MAIN_STEPS = _declare_main_steps()
_libc = ctypes.CDLL(None)
_libc.free.restype, _libc.free.argtypes = None, [ctypes.c_void_p]


def _fuse_main(
    argc: int,
    argv: Any,
    operations: Any,
    operations_size: int,
    user_data: Any,
    *,
    after_loop: Callable[[], None],
    libfuse_main: Callable[..., int],
) -> int:
    """libfuse's fuse_main_real (lib/helper.c), step by step, with `after_loop` run
    once the loop has ended and before the unmount.

    fuse_main_real's fuse_destroy frees libfuse's path tables and then calls the
    file system's destroy: an invalidation (fuse_invalidate_path, which walks
    those tables) still running on another thread would use freed memory. Here
    `after_loop` stops them first. The steps and their results (1 to 8, 8 when
    the loop ended with an error: a signal) are fuse_main_real's, with
    max_threads applied as libfuse 3.15 and later do; what mounts nothing (help,
    version, no mount point) is left to fuse_main_real itself.
    """
    args = _FuseArgs(argc, ctypes.cast(argv, ctypes.POINTER(ctypes.c_char_p)), 0)
    opts = _CmdlineOpts()
    with contextlib.ExitStack() as undo:  # the steps taken, undone in reverse order
        undo.callback(_libfuse.fuse_opt_free_args, ctypes.byref(args))
        undo.callback(lambda: _libc.free(opts.mountpoint))  # free(NULL) does nothing
        if _libfuse.fuse_parse_cmdline_312(ctypes.byref(args), ctypes.byref(opts)) != 0:
            return 1
        if opts.show_help or opts.show_version or not opts.mountpoint:
            return libfuse_main(argc, argv, operations, operations_size, user_data)
        fuse = _libfuse.fuse_new_31(ctypes.byref(args), operations, operations_size, user_data)
        if not fuse:
            return 3
        undo.callback(_libfuse.fuse_destroy, fuse)
        if _libfuse.fuse_mount(fuse, opts.mountpoint) != 0:
            return 4
        undo.callback(_libfuse.fuse_unmount, fuse)
        if _libfuse.fuse_daemonize(opts.foreground) != 0:
            return 5
        session = _libfuse.fuse_get_session(fuse)
        if _libfuse.fuse_set_signal_handlers(session) != 0:
            return 6
        undo.callback(_libfuse.fuse_remove_signal_handlers, session)
        undo.callback(after_loop)  # the first step of the teardown
        if opts.singlethread:
            result = _libfuse.fuse_loop(fuse)
        else:
            config = _libfuse.fuse_loop_cfg_create()
            if not config:
                return 7
            undo.callback(_libfuse.fuse_loop_cfg_destroy, config)
            _libfuse.fuse_loop_cfg_set_clone_fd(config, opts.clone_fd)
            _libfuse.fuse_loop_cfg_set_idle_threads(config, opts.max_idle_threads)
            _libfuse.fuse_loop_cfg_set_max_threads(config, opts.max_threads)
            result = _libfuse.fuse_loop_mt_312(fuse, config)
        return 8 if result else 0


@contextlib.contextmanager
def loop_end_hook(after_loop: Callable[[], None]) -> Iterator[None]:
    """Within the block, a FUSE object made runs `after_loop` once its loop has
    ended, before libfuse unmounts and frees what the mount used.

    mfusepy's FUSE calls the module's fuse_main_real; it is this module's
    `_fuse_main` for the block. A libfuse before 3.12 lacks the steps' versions
    declared here: there fuse_main_real runs as it is, and `after_loop` does
    not run (an invalidation may then still race the teardown).
    """
    if not _HAS_MAIN_STEPS:
        yield
        return
    libfuse_main = mfusepy.fuse_main_real
    mfusepy.fuse_main_real = functools.partial(
        _fuse_main, after_loop=after_loop, libfuse_main=libfuse_main
    )
    try:
        yield
    finally:
        mfusepy.fuse_main_real = libfuse_main


__all__ = [
    "FUSE",
    "KernelCache",
    "Operations",
    "c_stat",
    "fuse_file_info",
    "loop_end_hook",
    "request_abandoned",
    "session_ending",
    "set_st_attrs",
]
