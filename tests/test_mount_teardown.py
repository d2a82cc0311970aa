"""Taking a mount down while a log is followed: invalidations stop before libfuse frees
what they use (binding.loop_end_hook), whatever ends the loop."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from conftest import Emulator
from mounting import ENDINGS, LineReader, Mount, end, module_emulator, mount_jhfs

emulator = module_emulator()

TICKER = "i=0; while [ ! -e stop ]; do i=$((i+1)); echo tick-$i; sleep 0.05; done"
ROUNDS = 2  # per way of unmounting


def follow(mount: Mount, jobname: str) -> subprocess.Popen[str]:
    """`tail -f` of the running job's log, once new lines reach it (each one an invalidation)."""
    tail = subprocess.Popen(
        ["tail", "-n", "+1", "-f", str(mount.job(jobname) / "logs")],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    reader = LineReader(tail)
    first = reader.until(lambda line: line.startswith("tick-"))
    start = int(first[-1].strip().split("-")[1])
    reader.until(lambda line: line.strip() == f"tick-{start + 5}")  # lines that came later
    return tail


def assert_clean_teardown(mount: Mount) -> None:
    assert mount.process.returncode == 0, mount.log_text()
    log = mount.log_text()
    assert "Fatal Python error" not in log
    assert "Traceback" not in log
    # The loop's end stopped invalidations; libfuse's destroy, after the unmount, came later.
    stopped = log.index("no more kernel cache invalidations")
    assert stopped < log.index("libfuse ends the file system"), log


def stop_job(em: Emulator, jobname: str) -> None:
    (Path(em.admin("GET", f"jobs/{jobname}")["work_dir"]) / "stop").touch()


@pytest.mark.parametrize("how", ENDINGS)
def test_ending_a_mount_while_a_log_is_followed_exits_cleanly(
    emulator: Emulator, tmp_path: Path, how: str
) -> None:
    jobname = emulator.submit(TICKER)
    try:
        for round in range(ROUNDS):
            with mount_jhfs(emulator, tmp_path, log_name=f"jhfs-{round}.log") as mount:
                tail = follow(mount, jobname)
                try:
                    # tail keeps the mount busy: `jhfs umount` ends its process, and
                    # the loop ends with lines still arriving.
                    end(mount, how)
                finally:
                    tail.kill()
                    tail.wait()
                mount.process.wait(timeout=30)
            assert_clean_teardown(mount)
    finally:
        stop_job(emulator, jobname)
