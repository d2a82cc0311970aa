"""Every operation ends: at its deadline, at Ctrl-C, and when the mount ends."""

from __future__ import annotations

import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import Emulator, wait_for
from mounting import ENDINGS, Mount, end, interruptible, is_mounted, mount_jhfs, sh

MIB = 1 << 20
STALL = {"endpoint": "*", "mode": "delay", "delay": 3600, "count": 100_000}


def job_requests(emulator: Emulator) -> int:
    return int(emulator.stats()["requests"].get("job", 0))


@pytest.fixture
def short_deadline(fresh_emulator: Emulator, tmp_path: Path) -> Iterator[Mount]:
    with mount_jhfs(fresh_emulator, tmp_path, "-o", "timeout=2") as mount:
        yield mount


def test_a_stalled_server_fails_the_operation_at_its_deadline_and_the_repeat_at_once(
    short_deadline: Mount,
) -> None:
    mnt = short_deadline
    mnt.emulator.fault(**STALL)
    first = sh(f"cat {mnt.jobs / 'jr-stalled'}/status")
    assert first.returncode == 1
    assert "Connection timed out" in first.stderr
    asked = job_requests(mnt.emulator)
    assert asked >= 1
    # The kernel's (and the user's) repeat gets the remembered failure, not another wait.
    again = sh(f"cat {mnt.jobs / 'jr-stalled'}/status")
    assert "Connection timed out" in again.stderr
    assert job_requests(mnt.emulator) == asked


@pytest.fixture
def mnt(fresh_emulator: Emulator, tmp_path: Path) -> Iterator[Mount]:
    with mount_jhfs(fresh_emulator, tmp_path) as mount:
        yield mount


def test_ctrl_c_ends_a_lookup_that_waits_on_the_server(mnt: Mount) -> None:
    mnt.emulator.fault(**STALL)
    cat = interruptible(
        ["cat", str(mnt.jobs / "jr-stalled" / "status")],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for(lambda: job_requests(mnt.emulator) >= 1, what="the lookup to reach the server")
        cat.send_signal(signal.SIGINT)
        # The server holds the request for an hour and the deadline is a minute away.
        cat.wait(timeout=20)
    finally:
        cat.kill()
    assert cat.returncode == -signal.SIGINT
    # The mount still answers what needs no server.
    assert sh(f"ls -d {mnt.path / 'jobs'}").returncode == 0


@pytest.mark.parametrize("how", ENDINGS)
def test_unmounting_during_a_download_lets_the_reader_go_at_once(
    fresh_emulator: Emulator, tmp_path: Path, how: str
) -> None:
    with mount_jhfs(fresh_emulator, tmp_path) as mount:
        jobname = fresh_emulator.create_finished(
            files=[{"type": "result", "name": "big.bin", "size": 64 * MIB, "seed": 8}]
        )
        source = mount.job(jobname) / "files" / "result" / "big.bin"
        assert source.stat().st_size == 64 * MIB
        # About ten minutes to download the whole file.
        fresh_emulator.fault(endpoint="download", mode="throttle", rate=100_000)
        reader = subprocess.Popen(
            ["cat", str(source)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
        )
        try:
            # Two seconds' worth: cat has opened the file long since and waits in
            # read() for its first MiB.
            wait_for(lambda: fresh_emulator.bytes_sent() > 200_000, what="the reader to wait")
            end(mount, how)
            assert mount.process.wait(timeout=20) == 0
            _, errors = reader.communicate(timeout=20)
        finally:
            reader.kill()
        assert reader.returncode == 1
        assert "Input/output error" in errors
        assert not is_mounted(mount.path)


def test_sigterm_while_a_lookup_waits_on_a_stalled_server_ends_the_process(mnt: Mount) -> None:
    mnt.emulator.fault(**STALL)
    cat = subprocess.Popen(
        ["cat", str(mnt.jobs / "jr-stalled" / "status")],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_for(lambda: job_requests(mnt.emulator) >= 1, what="the lookup to reach the server")
        mnt.process.send_signal(signal.SIGTERM)
        # The request itself is still stalled (for an hour, with a minute's deadline):
        # it does not hold up the end of the process.
        assert mnt.process.wait(timeout=20) == 0
        _, errors = cat.communicate(timeout=20)
    finally:
        cat.kill()
    assert "Input/output error" in errors


@pytest.mark.parametrize("tool", ["cat", "stat"])
def test_ctrl_c_ends_a_stat_or_open_of_a_log_that_waits_on_the_server(
    mnt: Mount, tool: str
) -> None:
    jobname = mnt.emulator.create_finished(log_lines=10)
    assert (mnt.job(jobname) / "status").read_text() == "Completed\n"
    mnt.emulator.fault(endpoint="get_logs", mode="delay", delay=3600, count=100)
    # The size of a log never read is fetched: a stat (or the lookup before the
    # open) waits for the log.
    cat = interruptible(
        [tool, str(mnt.job(jobname) / "logs")],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for(
            lambda: mnt.emulator.stats()["requests"].get("get_logs", 0) >= 1,
            what="the log's fetch to reach the server",
        )
        cat.send_signal(signal.SIGINT)
        cat.wait(timeout=20)  # the server holds it for an hour, the deadline is a minute
    finally:
        cat.kill()
    assert cat.returncode == -signal.SIGINT
