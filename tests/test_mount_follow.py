"""Following running logs through a real mount: only while a file is open, then silence."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from conftest import Emulator, expect_no_change, settle, wait_for
from mounting import LineReader, Mount, module_emulator, module_mount, mount_jhfs, sh

emulator = module_emulator()
mnt = module_mount("follow")

TICKER = "i=0; while [ ! -e stop ]; do i=$((i+1)); echo tick-$i; sleep 0.1; done"


def requests(em: Emulator) -> dict[str, int]:
    return dict(em.stats()["requests"])


def traffic(em: Emulator) -> tuple[int, int]:
    """Requests so far and bytes sent (a stream's messages count there, not as requests)."""
    stats = em.stats()
    return sum(stats["requests"].values()), int(stats["bytes_sent"])


def stop_ticker(em: Emulator, jobname: str) -> None:
    (Path(em.admin("GET", f"jobs/{jobname}")["work_dir"]) / "stop").touch()


def test_tail_f_follows_over_the_stream_and_following_ends_with_tail(
    mnt: Mount, emulator: Emulator
) -> None:
    jobname = emulator.submit(TICKER)
    logs = mnt.job(jobname) / "logs"
    wait_for(lambda: (mnt.job(jobname) / "status").read_text() == "Running\n", what="Running")
    streams = requests(emulator).get("stream_logs", 0)
    tail = subprocess.Popen(
        ["tail", "-n", "+1", "-f", str(logs)], stdout=subprocess.PIPE, text=True
    )
    try:
        reader = LineReader(tail)
        first = reader.until(lambda line: line.startswith("tick-"))
        start = int(first[-1].strip().split("-")[1])
        wait_for(lambda: requests(emulator).get("stream_logs", 0) > streams, what="a stream")
        polls = requests(emulator)["get_logs"]
        later = reader.until(lambda line: line.strip() == f"tick-{start + 30}")
        assert requests(emulator)["get_logs"] == polls  # the lines came over the stream
    finally:
        tail.kill()
        tail.wait()
    try:
        # The job still logs, but nobody watches: no requests, no stream bytes.
        settle(lambda: traffic(emulator), "following to stop")
        expect_no_change(lambda: traffic(emulator), "requests and bytes sent", 3.0)
        size = logs.stat().st_size  # a stat catches up, as an open would
        assert size > len("".join(first + later).encode())
        data = logs.read_bytes()
        assert len(data) >= size
        lines = data.decode().splitlines()
        assert lines == [f"tick-{n}" for n in range(1, len(lines) + 1)]
    finally:
        stop_ticker(emulator, jobname)


def test_an_idle_mount_sends_nothing_after_cat_and_stat_of_running_logs(
    mnt: Mount, emulator: Emulator
) -> None:
    count = 30
    answer = emulator.admin(
        "POST", "jobs", {"finished": {"status": "Running", "log_lines": 10}, "count": count}
    )
    jobnames: list[str] = answer["jobnames"]
    before = requests(emulator).get("get_logs", 0)
    paths = " ".join(str(mnt.job(name) / "logs") for name in jobnames)
    catted = sh(f"for f in {paths}; do cat $f; done | wc -l")
    assert catted.returncode == 0, catted.stderr
    assert int(catted.stdout) == 10 * count
    # One request each: the backlog (a running job's log is not kept after the mount).
    assert requests(emulator)["get_logs"] == before + count
    listed = sh(f"ls -l {paths} > /dev/null")
    assert listed.returncode == 0, listed.stderr
    settle(lambda: traffic(emulator), "the mount to fall silent")
    expect_no_change(lambda: traffic(emulator), "requests and bytes sent", 3.0)


def test_a_followed_log_shows_its_new_size_at_once_whatever_the_kernel_caches(
    emulator: Emulator, tmp_path: Path
) -> None:
    # The kernel keeps attributes for an hour here: only jhfs telling it to forget
    # them makes fstat (what tail -f polls) see the log grow.
    with mount_jhfs(emulator, tmp_path, "-o", "attr_timeout=3600") as mount:
        jobname = emulator.submit(
            "echo a; while [ ! -e go ]; do sleep 0.05; done; echo b; sleep 600"
        )
        logs = mount.job(jobname) / "logs"
        wait_for(lambda: logs.read_text() == "a\n", what="the first line")
        with logs.open("rb") as followed:
            assert os.fstat(followed.fileno()).st_size == 2
            work_dir = emulator.admin("GET", f"jobs/{jobname}")["work_dir"]
            Path(work_dir, "go").touch()
            wait_for(lambda: os.fstat(followed.fileno()).st_size == 4, what="the new size")
            assert followed.read() == b"a\nb\n"
        sh(f"echo kill > {mount.job(jobname) / 'ctl'}")
