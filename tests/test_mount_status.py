"""`jhfs status` and MOUNT/.jhfs/status.json through real mounts: a download's progress
while a throttled cp runs, followed logs, requests and the cache, dead mounts, --watch."""

from __future__ import annotations

import itertools
import json
import re
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

from conftest import Emulator, wait_for
from mounting import (
    LineReader,
    Mount,
    interruptible,
    jhfs,
    jhfs_env,
    module_emulator,
    module_mount,
    mount_jhfs,
    sh,
)

import jhfs as jhfs_package
from jhfs_emulator.context import USERNAME

emulator = module_emulator()
mnt = module_mount("status")

MIB = 1 << 20
TICKER = "i=0; while [ ! -e stop ]; do i=$((i+1)); echo tick-$i; sleep 0.1; done"
FIELDS = {
    "version", "server", "user", "mountpoint", "pid", "mounted_at", "downloads",
    "followed_logs", "cache", "requests",
}  # fmt: skip
DOWNLOAD_FIELDS = {
    "job", "type", "name", "path", "size", "bytes", "rate", "eta", "readers", "connections",
    "checking", "paused",
}  # fmt: skip


def status(mount: Mount, *args: str) -> subprocess.CompletedProcess[str]:
    return jhfs("status", str(mount.path), *args, env=jhfs_env(mount.emulator))


def status_json(mount: Mount) -> dict[str, Any]:
    document: dict[str, Any] = json.loads((mount.path / ".jhfs" / "status.json").read_text())
    return document


def result_file(mount: Mount, size: int, seed: int) -> tuple[str, Path]:
    """A finished job with one result file: its jobname and the file's path in the mount."""
    jobname = mount.emulator.create_finished(
        files=[{"type": "result", "name": "big.bin", "size": size, "seed": seed}]
    )
    return jobname, mount.job(jobname) / "files" / "result" / "big.bin"


def requests_sent(em: Emulator) -> int:
    return sum(em.stats()["requests"].values())


def test_status_shows_a_download_in_progress_while_a_throttled_cp_runs(
    mnt: Mount, tmp_path: Path
) -> None:
    size = 8 * MIB  # one stream: 8 s at the throttled rate, stopped long before
    jobname, source = result_file(mnt, size, seed=7)
    mnt.emulator.fault(endpoint="download", mode="throttle", rate=1_000_000, jobname=jobname)
    path = f"jobs/{jobname}/files/result/big.bin"
    bar = re.compile(r"\[[#.]{20}\]\s+(\d+)% (\S+ \S+)/8\.0 MiB  ([\d.]+) (\S+)/s  ETA \d+:\d\d")
    cp = subprocess.Popen(["cp", str(source), str(tmp_path / "copy.bin")])
    try:

        def progress_shown() -> re.Match[str] | None:
            lines = status(mnt).stdout.splitlines()
            for line, after in itertools.pairwise(lines):
                match = bar.fullmatch(after.strip())
                if line.strip() == path and match and 0 < int(match[1]) < 100:
                    return match if float(match[3]) > 0 else None
            return None

        wait_for(progress_shown, what="the download's progress in `jhfs status`")
        [download] = status_json(mnt)["downloads"]
        assert download.keys() == DOWNLOAD_FIELDS
        assert [download[key] for key in ("job", "type", "name")] == [jobname, "result", "big.bin"]
        assert download["path"] == path and download["size"] == size
        assert 0 < download["bytes"] < size and download["rate"] > 0 and download["eta"] > 0
        assert (download["readers"], download["connections"]) == (1, 1)
        assert not download["checking"] and not download["paused"]
    finally:
        cp.kill()
        cp.wait()
        mnt.emulator.admin("DELETE", "faults")
    # Nobody reads it any more: it waits, paused, to resume at the next open.
    wait_for(lambda: "paused: nobody reads it" in status(mnt).stdout, what="a paused download")


def test_status_json_is_answered_not_listed_read_only_and_costs_no_request(mnt: Mount) -> None:
    dot = mnt.path / ".jhfs"
    listed = sh(f"ls -a {mnt.path}")
    assert listed.returncode == 0 and ".jhfs" not in listed.stdout.split()
    assert sh(f"ls -a {dot}").stdout.split() == [".", "..", "status.json"]
    assert sh(f"stat -c %s {dot}/status.json").stdout.strip() != "0"

    before = mnt.emulator.stats()["requests"]
    shaped = sh(f"cat {dot}/status.json | python3 -m json.tool")
    assert shaped.returncode == 0, shaped.stderr
    document = json.loads(shaped.stdout)
    shown = status(mnt)
    assert shown.returncode == 0, shown.stderr
    assert mnt.emulator.stats()["requests"] == before

    assert document.keys() == FIELDS
    assert document["version"] == jhfs_package.__version__
    assert document["server"] == mnt.emulator.url and document["user"] == USERNAME
    assert document["mountpoint"] == str(mnt.path) and document["pid"] == mnt.process.pid
    assert document["mounted_at"].endswith("Z")
    header = f"{mnt.path}: {USERNAME} on {mnt.emulator.url} (pid {mnt.process.pid}, up "
    assert shown.stdout.startswith(header)

    written = sh(f"echo x > {dot}/status.json")
    assert written.returncode != 0 and "Read-only file system" in written.stderr
    missing = sh(f"cat {dot}/nothing")
    assert "No such file or directory" in missing.stderr


def test_a_followed_log_shows_until_its_tail_ends(mnt: Mount, emulator: Emulator) -> None:
    jobname = emulator.submit(TICKER)
    wait_for(lambda: (mnt.job(jobname) / "status").read_text() == "Running\n", what="Running")
    tail = subprocess.Popen(
        ["tail", "-f", str(mnt.job(jobname) / "logs")], stdout=subprocess.PIPE, text=True
    )
    try:
        LineReader(tail).until(lambda line: line.startswith("tick-"))
        wait_for(
            lambda: f"followed logs: {jobname} (stream)" in status(mnt).stdout,
            what="the log followed over the stream",
        )
        assert status_json(mnt)["followed_logs"] == [{"job": jobname, "mode": "stream"}]
    finally:
        tail.kill()
        tail.wait()
        (Path(emulator.admin("GET", f"jobs/{jobname}")["work_dir"]) / "stop").touch()
    wait_for(lambda: "followed logs: none" in status(mnt).stdout, what="following to end")


def test_the_requests_and_the_cache_are_what_the_mount_sent_and_kept(
    fresh_emulator: Emulator, tmp_path: Path
) -> None:
    with mount_jhfs(fresh_emulator, tmp_path, "--cache-max-size", "64M") as mount:
        _, source = result_file(mount, MIB, seed=8)
        copied = sh(f"cp {source} {tmp_path}/copy.bin")
        assert copied.returncode == 0, copied.stderr
        # Verified and kept: the download leaves the table once its file is in the cache.
        wait_for(lambda: status_json(mount)["downloads"] == [], what="the download to end")
        document = status_json(mount)
        # Every request the mount sent, the check of the token included; an
        # idle mount sends none, so the emulator has counted them all by now.
        sent = requests_sent(fresh_emulator)
        assert document["requests"]["total"] == sent
        assert 0 < document["requests"]["last_minute"] <= sent
        assert document["requests"]["max_rate"] == 10
        assert document["cache"] == {"used": MIB, "max_size": 64 * MIB}
        shown = status(mount).stdout
        assert "  cache: 1.0 MiB of 64.0 MiB\n" in shown
        requests = rf"  requests: \d+ in the last minute, {sent} in all \(limit 10/s\)\n"
        assert re.search(requests, shown)


def test_status_lists_every_mount_and_shows_a_dead_one_as_such(
    mnt: Mount, emulator: Emulator, tmp_path: Path
) -> None:
    with mount_jhfs(emulator, tmp_path) as dead:
        dead.process.kill()
        dead.process.wait()
        shown = jhfs("status", str(dead.path), env=jhfs_env(emulator))
        assert shown.returncode == 1
        gone = f"not answering: its process is gone (`jhfs umount {dead.path}` clears it)"
        assert shown.stdout == f"{dead.path}: {gone}\n"
        as_json = jhfs("status", str(dead.path), "--json", env=jhfs_env(emulator))
        assert json.loads(as_json.stdout) == [{"mountpoint": str(dead.path), "error": gone}]
        # Without MOUNT: every jhfs mount of this user (other suites' too).
        every = jhfs("status", env=jhfs_env(emulator))
        assert every.returncode == 1  # one did not answer
        assert f"{dead.path}: {gone}\n" in every.stdout
        assert f"\n{mnt.path}: {USERNAME} on " in f"\n{every.stdout}"


def test_status_of_a_path_that_is_no_jhfs_mount_fails(tmp_path: Path, emulator: Emulator) -> None:
    shown = jhfs("status", str(tmp_path), env=jhfs_env(emulator))
    assert shown.returncode == 1
    assert shown.stderr == f"jhfs: {tmp_path} is not a jhfs mount of yours\n"


def test_watch_draws_again_until_ctrl_c(mnt: Mount) -> None:
    watch = interruptible(
        [sys.executable, "-m", "jhfs", "status", "--watch", "-n", "0.2", str(mnt.path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=jhfs_env(mnt.emulator),
        text=True,
    )
    try:
        reader = LineReader(watch)
        for _ in range(3):  # not a terminal: each drawing follows the last
            reader.until(lambda line: line.startswith(f"{mnt.path}: "))
        watch.send_signal(signal.SIGINT)
        assert watch.wait(timeout=30) == 0
        assert watch.stderr is not None and watch.stderr.read() == ""  # no traceback
    finally:
        watch.kill()
        watch.wait()
