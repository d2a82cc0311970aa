"""The one place where exceptions become errnos for the kernel.

Every filesystem operation runs through `fuse_error`: whatever a node, the
state layer or the client raises comes out as a `FuseOSError` with an integer
errno and, where a person should hear about it, a log line. The binding turns
an OSError without a positive errno (a requests exception, say) and any other
exception into EINVAL with a traceback of its own, so nothing else may reach it.

Only the layers' own exceptions have an errno of their own: a node's refusal
(one debug line: it is the answer), bad input (one line), the client's and the
state layer's errors, and a full disk. Anything else, a ValueError included,
is a bug or an unexpected local failure: EIO, and its traceback in the log.
"""

from __future__ import annotations

import errno
import logging
import os

from jhfs.client import (
    AuthenticationError,
    NotFoundError,
    PermissionDeniedError,
    ServerError,
    ServerUnreachableError,
    TransferCancelled,
)
from jhfs.client.errors import DeadlineExceeded
from jhfs.nodes.errors import (
    AttributeNotSupported,
    BadFileHandle,
    InvalidInput,
    IsADirectory,
    JobIsOver,
    NoSuchAttribute,
    NoSuchName,
    NotADirectory,
    NotASymlink,
    ReadOnly,
    Refusal,
)
from jhfs.state.errors import (
    CacheChurnError,
    FileNotReadyError,
    IntegrityError,
    ShuttingDownError,
    WaitContinues,
)

logger = logging.getLogger(__name__)


class FuseOSError(OSError):
    """The errno an operation fails with, as the binding takes it."""

    def __init__(self, code: int) -> None:
        super().__init__(code, os.strerror(code))


# What a node refuses is the answer itself: these errnos go without a log line.
REFUSALS: dict[type[Refusal], int] = {
    NoSuchName: errno.ENOENT,
    NotADirectory: errno.ENOTDIR,
    IsADirectory: errno.EISDIR,
    ReadOnly: errno.EROFS,
    NoSuchAttribute: errno.ENODATA,
    AttributeNotSupported: errno.ENOTSUP,
    BadFileHandle: errno.EBADF,
    NotASymlink: errno.EINVAL,
}

# A full disk under the cache directory (downloads, logs): said as such.
DISK_FULL = frozenset({errno.ENOSPC, errno.EDQUOT})

TOKEN_HINT = (
    "the server refused the token (401): refresh it (JULIAHUB_TOKEN, or log in "
    "again with JuliaHub.jl to renew auth.toml)"
)


def errno_for(exc: BaseException) -> int:
    """The errno a failed operation reports for `exc` (no logging)."""
    if isinstance(exc, Refusal):
        return next(REFUSALS[cls] for cls in type(exc).__mro__ if cls in REFUSALS)
    # Order matters only where classes could overlap; the client's are disjoint.
    if isinstance(exc, NotFoundError):
        return errno.ENOENT
    if isinstance(exc, PermissionDeniedError | AuthenticationError):
        return errno.EACCES
    if isinstance(exc, DeadlineExceeded):  # before its base class, ServerUnreachableError
        return errno.ETIMEDOUT
    if isinstance(
        exc,
        ServerUnreachableError | ServerError | IntegrityError | ShuttingDownError | CacheChurnError,
    ):
        return errno.EIO
    if isinstance(exc, FileNotReadyError):
        return errno.EAGAIN
    if isinstance(exc, TransferCancelled | WaitContinues):
        return errno.EINTR
    if isinstance(exc, InvalidInput):
        return errno.EINVAL
    if isinstance(exc, JobIsOver):
        return errno.ESRCH
    if isinstance(exc, OSError) and exc.errno in DISK_FULL:
        return exc.errno
    return errno.EIO


def fuse_error(exc: BaseException, operation: str, path: str) -> FuseOSError:
    """The FuseOSError to raise for `exc`, after logging what a person needs to know."""
    code = errno_for(exc)
    if isinstance(exc, Refusal):
        # A node's answer (ENOENT for a name, EROFS, ENOTSUP for the xattrs
        # `ls -l` asks for...): not news, so one debug line (nearly free unless --debug).
        logger.debug("%s %s: %s", operation, path, errno.errorcode[code])
        return FuseOSError(code)
    where = f"{operation} {path}"
    if isinstance(exc, NotFoundError):
        logger.debug("%s: not found: %s", where, exc)
    elif isinstance(exc, AuthenticationError):
        logger.error("%s: %s; %s", where, exc, TOKEN_HINT)
    elif isinstance(exc, PermissionDeniedError):
        logger.warning("%s: permission denied: %s", where, exc)
    elif isinstance(exc, ServerUnreachableError | ServerError):
        logger.warning("%s: server trouble: %s", where, exc)
    elif isinstance(exc, FileNotReadyError):
        logger.info("%s: not ready: %s", where, exc)
    elif isinstance(exc, TransferCancelled):
        logger.debug("%s: its reader went away: %s", where, exc)
    elif isinstance(exc, WaitContinues):
        logger.debug("%s: %s", where, exc)
    elif isinstance(exc, ShuttingDownError):
        logger.info("%s: %s", where, exc)
    elif isinstance(exc, IntegrityError | CacheChurnError):
        logger.error("%s: %s", where, exc)
    elif isinstance(exc, InvalidInput):
        logger.warning("%s: invalid input: %s", where, exc)
    elif isinstance(exc, JobIsOver):
        logger.warning("%s: %s", where, exc)
    elif code in DISK_FULL:
        logger.error("%s: the cache's disk is full: %s", where, exc)
    else:
        # A bug or an unexpected local failure: the traceback goes to the log,
        # the kernel gets EIO.
        logger.error("%s: unexpected error", where, exc_info=exc)
    return FuseOSError(code)
