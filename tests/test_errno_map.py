"""The one exception -> errno mapping, tested directly."""

from __future__ import annotations

import errno
import logging

import pytest
import requests

from jhfs.client import (
    AuthenticationError,
    NotFoundError,
    PermissionDeniedError,
    ServerError,
    ServerUnreachableError,
    TransferCancelled,
)
from jhfs.errno_map import REFUSALS, FuseOSError, errno_for, fuse_error
from jhfs.nodes.ctl import CtlSyntaxError
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
    WaitContinues,
)

REFUSED = [
    (NoSuchName("jr-nope"), errno.ENOENT),
    (NotADirectory("x"), errno.ENOTDIR),
    (IsADirectory(), errno.EISDIR),
    (ReadOnly(), errno.EROFS),
    (NoSuchAttribute("user.x"), errno.ENODATA),
    (AttributeNotSupported("security.selinux"), errno.ENOTSUP),
    (BadFileHandle("not open for reading"), errno.EBADF),
    (NotASymlink(), errno.EINVAL),
]


@pytest.mark.parametrize(
    ("exc", "code"),
    [
        (NotFoundError("no such job"), errno.ENOENT),
        (PermissionDeniedError("403"), errno.EACCES),
        (AuthenticationError("401"), errno.EACCES),
        (ServerUnreachableError("timeout"), errno.EIO),
        (ServerError("500"), errno.EIO),
        (FileNotReadyError("uploading"), errno.EAGAIN),
        (TransferCancelled("its reader went away"), errno.EINTR),
        (WaitContinues("jr-x is not done yet"), errno.EINTR),
        (IntegrityError("hash mismatch"), errno.EIO),
        (CacheChurnError("evicted 3 times"), errno.EIO),
        (CtlSyntaxError("bad"), errno.EINVAL),
        (InvalidInput("bad"), errno.EINVAL),
        (JobIsOver("job j is over (Completed)"), errno.ESRCH),
        *REFUSED,
        # Bad input is InvalidInput before it gets this far: any other
        # ValueError is a bug.
        (ValueError("bad"), errno.EIO),
        (UnicodeEncodeError("utf-8", "\udcff", 0, 1, "surrogates not allowed"), errno.EIO),
        # requests exceptions are OSErrors without an errno: never passed through.
        (requests.ConnectionError("reset"), errno.EIO),
        (FileNotFoundError(errno.ENOENT, "blob vanished"), errno.EIO),
        (OSError(errno.ENOSPC, "No space left on device"), errno.ENOSPC),
        (OSError(errno.EDQUOT, "Disk quota exceeded"), errno.EDQUOT),
        (RuntimeError("bug"), errno.EIO),
        (KeyError("bug"), errno.EIO),
    ],
)
def test_errno_for(exc: Exception, code: int) -> None:
    assert errno_for(exc) == code
    error = fuse_error(exc, "read", "/jobs/x/status")
    assert isinstance(error, FuseOSError)
    assert error.errno == code


def test_a_full_disk_is_one_line_without_a_traceback(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.ERROR, logger="jhfs.errno_map"):
        fuse_error(OSError(errno.ENOSPC, "No space left on device"), "read", "/jobs/x/logs")
    [record] = caplog.records
    assert record.exc_info is None
    assert "disk is full" in record.getMessage()


def test_unknown_exceptions_log_a_traceback(caplog: pytest.LogCaptureFixture) -> None:
    try:
        raise RuntimeError("something broke")
    except RuntimeError as exc:
        with caplog.at_level(logging.ERROR, logger="jhfs.errno_map"):
            fuse_error(exc, "getattr", "/jobs")
    [record] = caplog.records
    assert record.exc_info is not None
    assert "getattr /jobs" in record.getMessage()


def test_authentication_failure_says_to_refresh_the_token(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.WARNING, logger="jhfs.errno_map"):
        fuse_error(AuthenticationError("401 from the server"), "write", "/jobs/j/ctl")
    assert "refresh" in caplog.text
    assert "token" in caplog.text


def test_bad_input_is_one_log_line_without_traceback(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.DEBUG, logger="jhfs.errno_map"):
        fuse_error(CtlSyntaxError("'stop': unknown command"), "write", "/jobs/j/ctl")
    [record] = caplog.records
    assert record.exc_info is None
    assert record.levelno == logging.WARNING
    assert "unknown command" in record.getMessage()


def test_a_command_for_a_finished_job_is_one_log_line_without_traceback(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.DEBUG, logger="jhfs.errno_map"):
        code = fuse_error(JobIsOver("job j is over (Completed)"), "write", "/jobs/j/ctl").errno
    assert code == errno.ESRCH
    [record] = caplog.records
    assert record.exc_info is None
    assert "is over (Completed)" in record.getMessage()


def test_every_refusal_has_an_errno() -> None:
    kinds = set(Refusal.__subclasses__())
    assert kinds == set(REFUSALS)
    assert kinds == {type(exc) for exc, _ in REFUSED}


@pytest.mark.parametrize(("exc", "code"), REFUSED)
def test_a_refusal_is_the_answer_and_one_debug_line(
    caplog: pytest.LogCaptureFixture, exc: Refusal, code: int
) -> None:
    with caplog.at_level(logging.DEBUG):
        assert fuse_error(exc, "getattr", "/jobs/jr-nope").errno == code
    [record] = caplog.records
    assert record.levelno == logging.DEBUG and record.exc_info is None
    assert record.getMessage() == f"getattr /jobs/jr-nope: {errno.errorcode[code]}"


def test_a_value_error_is_a_bug_with_a_traceback(caplog: pytest.LogCaptureFixture) -> None:
    try:
        int("not a number")
    except ValueError as exc:
        with caplog.at_level(logging.ERROR, logger="jhfs.errno_map"):
            assert fuse_error(exc, "write", "/jobs/j/ctl").errno == errno.EIO
    [record] = caplog.records
    assert record.exc_info is not None
    assert "unexpected error" in record.getMessage()


def test_a_log_evicted_as_it_is_fetched_is_one_line_without_a_traceback(
    caplog: pytest.LogCaptureFixture,
) -> None:
    churn = CacheChurnError("the log of jr-x was evicted from the cache 3 times")
    with caplog.at_level(logging.DEBUG, logger="jhfs.errno_map"):
        assert fuse_error(churn, "open", "/jobs/jr-x/logs").errno == errno.EIO
    [record] = caplog.records
    assert record.exc_info is None
    assert record.levelno == logging.ERROR
    assert "evicted" in record.getMessage()


def test_a_wait_that_gives_its_thread_back_is_a_debug_line(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # Said every half second of a wait beyond the ones that may block: not news.
    with caplog.at_level(logging.DEBUG, logger="jhfs.errno_map"):
        assert fuse_error(WaitContinues("jr-x"), "read", "/jobs/jr-x/wait").errno == errno.EINTR
    [record] = caplog.records
    assert (record.levelno, record.exc_info) == (logging.DEBUG, None)
