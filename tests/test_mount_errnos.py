"""The errnos a user sees through a real mount, and that none of them is news in the log.

Each is jhfs's deliberate answer (or the kernel's, for what FUSE never asks):
no traceback, and at most one line for bad input. What is tested elsewhere
through a mount is not repeated here: reading ctl (test_mount_ctl),
writes (test_mount_tree's EROFS cases), missing attributes (test_mount_tree).
"""

from __future__ import annotations

import pytest
from conftest import Emulator
from mounting import Mount, module_emulator, module_mount, sh

emulator = module_emulator()
mnt = module_mount("errnos")


@pytest.fixture(scope="module")
def finished(emulator: Emulator) -> str:
    return emulator.create_finished(
        status="Completed", files=[{"type": "result", "name": "out.txt", "content": "b2sK"}]
    )


def log_after(mnt: Mount, start: int) -> str:
    """What the mount logged since its log was `start` characters long."""
    return mnt.log_text()[start:]


@pytest.mark.parametrize(
    "where", ["jobs", "jobs/{job}", "jobs/{job}/files", "jobs/{job}/files/result"]
)
def test_a_non_utf8_name_is_no_such_file_without_a_traceback(
    mnt: Mount, emulator: Emulator, finished: str, where: str
) -> None:
    directory = mnt.path / where.format(job=finished)
    assert sh(f"stat {directory}").returncode == 0  # the job is known: only the name is new
    start = len(mnt.log_text())
    asked = emulator.stats()["requests"].get("job", 0)
    # \377 (0xff) is never part of UTF-8; a printf octal escape in sh.
    for name in ("\\377", "jr-\\377\\376", "out\\377.txt"):
        result = sh(f"stat \"{directory}/$(printf '{name}')\"")
        assert result.returncode != 0
        assert "No such file or directory" in result.stderr, result.stderr
    logged = log_after(mnt, start)
    assert "Traceback" not in logged and "ERROR" not in logged and "WARNING" not in logged, logged
    assert emulator.stats()["requests"].get("job", 0) == asked  # no such name is asked for


def test_a_bad_ctl_write_is_invalid_argument_and_one_log_line(
    mnt: Mount, emulator: Emulator, finished: str
) -> None:
    ctl = mnt.job(finished) / "ctl"
    start = len(mnt.log_text())
    # bash, because dash's echo reports every failed write as "I/O error".
    result = sh(f"echo stop > {ctl}", shell="bash")
    assert result.returncode != 0
    assert "Invalid argument" in result.stderr, result.stderr
    # Beside the refusals' debug lines (the write asks for security.capability: ENOTSUP).
    lines = log_after(mnt, start).splitlines()
    about = [line for line in lines if f"{finished}/ctl" in line and " DEBUG " not in line]
    assert len(about) == 1, about
    assert "WARNING" in about[0] and "invalid input" in about[0] and "'stop'" in about[0]
    assert "Traceback" not in log_after(mnt, start)


def test_truncating_ctl_to_a_size_is_invalid_argument(mnt: Mount, finished: str) -> None:
    start = len(mnt.log_text())
    result = sh(f"truncate -s 5 {mnt.job(finished)}/ctl")
    assert result.returncode != 0
    assert "Invalid argument" in result.stderr, result.stderr
    assert "Traceback" not in log_after(mnt, start)


@pytest.mark.parametrize("path", ["jobs", "jobs/{job}", "jobs/{job}/files/result"])
def test_cat_of_a_directory_is_is_a_directory(mnt: Mount, finished: str, path: str) -> None:
    result = sh(f"cat {mnt.path / path.format(job=finished)}")
    assert result.returncode != 0
    assert "Is a directory" in result.stderr, result.stderr


@pytest.mark.parametrize("path", ["status", "ctl", "files/result/out.txt"])
def test_a_file_as_a_directory_is_not_a_directory(mnt: Mount, finished: str, path: str) -> None:
    start = len(mnt.log_text())
    for command in (f"ls {mnt.job(finished)}/{path}/", f"stat {mnt.job(finished)}/{path}/x"):
        result = sh(command)
        assert result.returncode != 0
        assert "Not a directory" in result.stderr, result.stderr
    assert "Traceback" not in log_after(mnt, start)
