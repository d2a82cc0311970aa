"""jobs/<jobname>/wait through a real mount: `cat wait` blocks until the job is done,
whatever reads it, however many wait, beyond the operation deadline; Ctrl-C,
`timeout`, kill and the end of the mount end it.

A job waits for a file `go` in its work directory, so the test says when it
ends; that a wait is waiting shows in the job requests its checks send.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import Emulator, wait_for
from mounting import (
    ENDINGS,
    Mount,
    end,
    interruptible,
    module_emulator,
    module_mount,
    mount_jhfs,
    sh,
)

from jhfs.state.freshness import JOB_TTL

emulator = module_emulator()
mnt = module_mount("wait")

UNTIL_GO = "while [ ! -e go ]; do sleep 0.05; done; echo done"


def job_requests(emulator: Emulator) -> int:
    return int(emulator.stats()["requests"].get("job", 0))


def running_job(mount: Mount) -> tuple[str, Path]:
    """A job that runs until its `go` file exists: its name and that file."""
    jobname = mount.emulator.submit(UNTIL_GO)
    work_dir = Path(mount.emulator.admin("GET", f"jobs/{jobname}")["work_dir"])
    status = mount.job(jobname) / "status"
    wait_for(lambda: status.read_text() == "Running\n", what="the job to run")
    return jobname, work_dir / "go"


def asking(emulator: Emulator, more: int) -> None:
    """Until the mount has sent `more` job requests from now (its waits' checks)."""
    start = job_requests(emulator)
    wait_for(lambda: job_requests(emulator) >= start + more, what=f"{more} job requests")


def test_cat_wait_blocks_until_the_job_is_done_then_prints_its_status(mnt: Mount) -> None:
    jobname, go = running_job(mnt)
    cat = subprocess.Popen(
        ["cat", str(mnt.job(jobname) / "wait")], stdout=subprocess.PIPE, text=True
    )
    try:
        asking(mnt.emulator, 2)
        assert cat.poll() is None  # still waiting while the job runs
        go.touch()
        out, _ = cat.communicate(timeout=60)
    finally:
        cat.kill()
    assert (cat.returncode, out) == (0, "Completed\n")
    assert (mnt.job(jobname) / "status").read_text() == "Completed\n"


def test_a_short_job_is_waited_for(mnt: Mount) -> None:
    jobname = mnt.emulator.submit("sleep 1; echo done")
    result = sh(f"cat {mnt.job(jobname)}/wait")
    assert (result.returncode, result.stdout) == (0, "Completed\n"), result.stderr


def test_cat_wait_of_a_finished_job_answers_at_once(mnt: Mount) -> None:
    jobname = mnt.emulator.create_finished(status="Failed")
    before = job_requests(mnt.emulator)
    result = sh(f"cat {mnt.job(jobname)}/wait")
    assert (result.returncode, result.stdout) == (0, "Failed\n"), result.stderr
    assert job_requests(mnt.emulator) - before <= 1  # the lookup of a job not listed yet
    assert "wait" not in os.listdir(mnt.job(jobname))  # answered, not listed
    assert (mnt.job(jobname) / "wait").stat().st_size == len("Failed\n")


def test_every_way_of_reading_it_gets_the_status(mnt: Mount, tmp_path: Path) -> None:
    # Its size is 0 until the job is done: every reader reads to end-of-file
    # all the same (cat and cp into a file try copy_file_range first, and tail
    # looks at the size). Four cats wait first and hold the threads waits may
    # hold; the seven readers then read again every half second (EINTR).
    jobname, go = running_job(mnt)
    wait = mnt.job(jobname) / "wait"
    assert wait.stat().st_size == 0
    logged = len(mnt.log_text())
    readers = {
        "cat": f"cat {wait}",
        "cat into a file": f"cat {wait} > {tmp_path}/cat.out && cat {tmp_path}/cat.out",
        "cp": f"cp {wait} {tmp_path}/cp.out && cat {tmp_path}/cp.out",
        "head": f"head -n 1 {wait}",
        "tail": f"tail -n 1 {wait}",
        "grep": f"grep . {wait}",
        "python": f"python3 -c 'import sys; sys.stdout.write(open(\"{wait}\").read())'",
    }
    holders = [
        subprocess.Popen(["cat", str(wait)], stdout=subprocess.PIPE, text=True) for _ in range(4)
    ]
    running: dict[str, subprocess.Popen[str]] = {}
    try:
        asking(mnt.emulator, 2)  # the four cats are long in their reads
        for name, command in readers.items():
            running[name] = subprocess.Popen(
                ["sh", "-c", command], stdout=subprocess.PIPE, text=True
            )
        asking(mnt.emulator, 2)
        assert [p.poll() for p in [*holders, *running.values()]] == [None] * 11
        go.touch()
        outputs = {name: p.communicate(timeout=60)[0] for name, p in running.items()}
        held = [p.communicate(timeout=60)[0] for p in holders]
    finally:
        for process in [*holders, *running.values()]:
            process.kill()
    assert outputs == dict.fromkeys(readers, "Completed\n")
    assert {name: p.returncode for name, p in running.items()} == dict.fromkeys(readers, 0)
    assert held == ["Completed\n"] * 4
    assert "is not done yet: read again" in mnt.log_text()[logged:]


def test_twenty_waits_share_one_job_request_per_freshness_period(mnt: Mount) -> None:
    jobname, go = running_job(mnt)
    finished = mnt.emulator.create_finished(status="Completed")
    started = time.monotonic()
    before = job_requests(mnt.emulator)
    cats = [
        subprocess.Popen(["cat", str(mnt.job(jobname) / "wait")], stdout=subprocess.PIPE, text=True)
        for _ in range(20)
    ]
    try:
        asking(mnt.emulator, 3)
        assert all(cat.poll() is None for cat in cats)
        # Twenty waits hold no more than four of libfuse's threads: the mount answers.
        assert sh(f"cat {mnt.job(finished)}/status").stdout == "Completed\n"
        go.touch()
        outputs = [cat.communicate(timeout=60)[0] for cat in cats]
    finally:
        for cat in cats:
            cat.kill()
    elapsed = time.monotonic() - started
    asked = job_requests(mnt.emulator) - before
    assert outputs == ["Completed\n"] * 20
    # The registry asks again once its copy is JOB_TTL old, one lookup for all;
    # one more may have been in flight as the count was taken.
    assert asked <= elapsed / JOB_TTL + 2, (asked, elapsed)


def test_echo_kill_ends_a_wait_with_stopped(mnt: Mount) -> None:
    jobname, _ = running_job(mnt)
    cat = subprocess.Popen(
        ["cat", str(mnt.job(jobname) / "wait")], stdout=subprocess.PIPE, text=True
    )
    try:
        asking(mnt.emulator, 1)
        assert sh(f"echo kill > {mnt.job(jobname)}/ctl").returncode == 0
        out, _ = cat.communicate(timeout=60)
    finally:
        cat.kill()
    assert out == "Stopped\n"


def test_ctrl_c_ends_a_wait(mnt: Mount) -> None:
    jobname, _ = running_job(mnt)
    cat = interruptible(["cat", str(mnt.job(jobname) / "wait")], stdout=subprocess.DEVNULL)
    try:
        asking(mnt.emulator, 2)
        cat.send_signal(signal.SIGINT)
        cat.wait(timeout=20)
    finally:
        cat.kill()
    assert cat.returncode == -signal.SIGINT


def test_timeout_ends_a_wait(mnt: Mount) -> None:
    jobname, go = running_job(mnt)
    result = sh(f"timeout 1 cat {mnt.job(jobname)}/wait")
    assert result.returncode == 124  # timeout's "the command timed out"
    assert result.stdout == ""
    go.touch()
    ended = sh(f"timeout 60 cat {mnt.job(jobname)}/wait")
    assert (ended.returncode, ended.stdout) == (0, "Completed\n")


@pytest.fixture
def one_second_deadline(emulator: Emulator, tmp_path: Path) -> Iterator[Mount]:
    with mount_jhfs(emulator, tmp_path, "-o", "timeout=1") as mount:
        yield mount


def test_a_wait_outlasts_the_operation_deadline(one_second_deadline: Mount) -> None:
    mount = one_second_deadline
    jobname, go = running_job(mount)
    cat = subprocess.Popen(
        ["cat", str(mount.job(jobname) / "wait")], stdout=subprocess.PIPE, text=True
    )
    try:
        # Checks are JOB_TTL apart: three of them span more than the 1 s deadline.
        asking(mount.emulator, 3)
        assert cat.poll() is None
        go.touch()
        out, _ = cat.communicate(timeout=60)
    finally:
        cat.kill()
    assert (cat.returncode, out) == (0, "Completed\n")


@pytest.mark.parametrize("how", ENDINGS)
def test_unmounting_ends_a_wait_at_once(emulator: Emulator, tmp_path: Path, how: str) -> None:
    with mount_jhfs(emulator, tmp_path) as mount:
        jobname, _ = running_job(mount)
        cat = subprocess.Popen(
            ["cat", str(mount.job(jobname) / "wait")],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            asking(emulator, 2)
            end(mount, how)
            assert mount.process.wait(timeout=20) == 0
            _, errors = cat.communicate(timeout=20)
        finally:
            cat.kill()
    assert cat.returncode == 1
    assert "Input/output error" in errors
