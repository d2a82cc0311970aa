"""The errnos a user sees through a real mount, and that none of them is news in the log."""

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
