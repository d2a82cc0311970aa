"""logs through a real mount: a finished job's whole log, `tail -f` of a running one, and a
cached log deleted by eviction."""

from __future__ import annotations

import os
import subprocess

from conftest import Emulator, wait_for
from mounting import LineReader, Mount, module_emulator, module_mount, sh

emulator = module_emulator()
mnt = module_mount("logs")


def test_finished_log_is_every_message_one_per_line(mnt: Mount, emulator: Emulator) -> None:
    jobname = emulator.create_finished(status="Completed", log_lines=25_000)
    logs = mnt.job(jobname) / "logs"
    counted = sh(f"wc -l < {logs}")
    assert counted.returncode == 0, counted.stderr
    assert int(counted.stdout) == 25_000
    data = logs.read_bytes()
    wait_for(lambda: logs.stat().st_size == len(data), what="st_size")  # kernel: <= 1 s old
    lines = data.decode().splitlines()
    assert "line 0000001 " in lines[0]
    assert "line 0025000 " in lines[-1]


def test_tail_f_follows_a_running_job(mnt: Mount, emulator: Emulator) -> None:
    jobname = emulator.submit(
        "i=0; while [ $i -lt 600 ]; do i=$((i+1)); echo tick-$i; sleep 0.2; done"
    )
    logs = mnt.job(jobname) / "logs"
    wait_for(lambda: (mnt.job(jobname) / "status").read_text() == "Running\n", what="Running")
    tail = subprocess.Popen(
        ["tail", "-n", "+1", "-f", str(logs)], stdout=subprocess.PIPE, text=True
    )
    try:
        reader = LineReader(tail)
        first = reader.until(lambda line: line.startswith("tick-"))
        start = int(first[-1].strip().split("-")[1])
        # Lines printed after tail started must keep arriving.
        reader.until(lambda line: line.strip() == f"tick-{start + 10}")
    finally:
        tail.kill()
        tail.wait()
        emulator.admin("GET", f"jobs/{jobname}")  # the job still exists
        sh(f"echo kill > {mnt.job(jobname)}/ctl")


def test_log_grows_then_stops_when_the_job_ends(mnt: Mount, emulator: Emulator) -> None:
    jobname = emulator.submit("echo first; sleep 1; echo second; sleep 1; echo third")
    job = mnt.job(jobname)
    wait_for(lambda: (job / "status").read_text() == "Completed\n", what="Completed")
    content = wait_for(
        lambda: (text := (job / "logs").read_text()).endswith("third\n") and text,
        what="the whole log",
    )
    assert content.splitlines()[-3:] == ["first", "second", "third"]
    # The kernel may show a size up to a second old.
    wait_for(lambda: (job / "logs").stat().st_size == len(content.encode()), what="st_size")


def test_read_past_the_known_end_is_eof_at_once(mnt: Mount, emulator: Emulator) -> None:
    jobname = emulator.submit("echo only; sleep 60")
    logs = mnt.job(jobname) / "logs"
    fd = os.open(logs, os.O_RDONLY)
    try:
        known = wait_for(lambda: (data := os.pread(fd, 65536, 0)).endswith(b"only\n") and data)
        # At and far past the known end: end-of-file at once, never waiting for more.
        assert os.pread(fd, 4096, len(known)) == b""
        assert os.pread(fd, 4096, len(known) + 1_000_000) == b""
    finally:
        os.close(fd)
        sh(f"echo kill > {mnt.job(jobname)}/ctl")


def test_a_cached_log_deleted_under_an_open_file_reads_on_and_comes_back(
    mnt: Mount, emulator: Emulator
) -> None:
    jobname = emulator.create_finished(status="Completed", log_lines=2_000)
    logs = mnt.job(jobname) / "logs"
    with logs.open("rb") as held:
        first = held.read(100)
        # In logs/ of the server's own subdirectory of the cache directory.
        (found,) = mnt.cache_dir.rglob(f"logs/{jobname}.log")
        expected = found.read_bytes()
        found.unlink()  # as the eviction of another mount sharing the cache may
        assert first + held.read() == expected  # the open file reads on to its end
    before = emulator.stats()["requests"]["get_logs"]
    assert logs.read_bytes() == expected  # fetched again, once
    assert emulator.stats()["requests"]["get_logs"] == before + 1
    assert found.read_bytes() == expected
