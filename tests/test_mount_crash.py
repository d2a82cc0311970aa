"""kill -9 of a mount at a few moments, then a mount on the same mount point and cache:
the dead mount is recovered with one line, the dead process's temporary files
go, and what is served afterwards is right (files match the listed hash, logs
the emulator's)."""

from __future__ import annotations

import errno
import os
import signal
import subprocess
from pathlib import Path

import pytest
from conftest import Emulator, wait_for
from mounting import (
    Mount,
    force_unmount,
    interruptible,
    jhfs,
    jhfs_env,
    module_emulator,
    mount_jhfs,
    sh,
    sha256_of,
)

from jhfs.unmounting import mounted

emulator = module_emulator()

MIB = 1 << 20
RECOVERED = "recovered the mount point of a jhfs that had died"


def result_file(emulator: Emulator, size: int, seed: int) -> tuple[str, str]:
    """A finished job with one result file of its own content: (jobname, file name)."""
    name = f"data-{seed}.bin"
    jobname = emulator.create_finished(
        files=[{"type": "result", "name": name, "size": size, "seed": seed}]
    )
    return jobname, name


def file_path(mount: Mount, jobname: str, name: str) -> Path:
    return mount.job(jobname) / "files" / "result" / name


def listed_hash(path: Path) -> str:
    """The sha256 the server lists for a job file, as the mount shows it (xattr)."""
    shown = sh(f"getfattr --only-values -n user.jhfs.hash {path}")
    assert shown.returncode == 0, shown.stderr
    algorithm, _, digest = shown.stdout.partition(":")
    assert algorithm == "sha2_256"
    return digest


def server_dir(mount: Mount) -> Path:
    """The server's directory in the mount's cache (blobs/, partial/, tmp/, logs/)."""
    (directory,) = [d for d in mount.cache_dir.iterdir() if d.is_dir()]
    return directory


def temp_files_of(mount: Mount, pid: int) -> list[str]:
    return [n for n in os.listdir(server_dir(mount) / "tmp") if n.startswith(f"{pid}-")]


def requests(emulator: Emulator, endpoint: str) -> int:
    return int(emulator.stats()["requests"].get(endpoint, 0))


def kill(mount: Mount) -> None:
    """SIGKILL the mount's process. The kernel's mount stays, dead."""
    mount.process.kill()
    mount.process.wait()
    assert mounted(mount.path)
    with pytest.raises(OSError) as raised:
        os.statvfs(mount.path)
    assert raised.value.errno == errno.ENOTCONN


def assert_recovered(dead: Mount, new: Mount) -> None:
    """The new mount said once that it recovered the mount point, neither mount
    logged a traceback, and the dead one's temporary files are gone."""
    lines = [line for line in new.log_text().splitlines() if RECOVERED in line]
    assert len(lines) == 1, new.log_text()
    assert f"{new.path}: {RECOVERED}" in lines[0]
    assert temp_files_of(new, dead.process.pid) == []
    for mount in (dead, new):
        counted = sh(f"grep -c Traceback {mount.log}")
        assert counted.stdout.strip() == "0", mount.log_text()


def copy_and_check(mount: Mount, source: Path, target: Path) -> None:
    copied = sh(f"cp {source} {target}")
    assert copied.returncode == 0, copied.stderr
    assert sha256_of(target) == listed_hash(source)


def holding(path: Path) -> subprocess.Popen[bytes]:
    """A program that has `path` open (as its stdin) until it is killed."""
    holder = subprocess.Popen(["sh", "-c", f"exec sleep 60 < {path}"])
    wait_for(lambda: os.readlink(f"/proc/{holder.pid}/fd/0") == str(path), what="the open")
    return holder


def test_kill_mid_download_over_several_connections(emulator: Emulator, tmp_path: Path) -> None:
    size = 64 * MIB  # eight ranged chunks
    jobname, name = result_file(emulator, size, seed=1)
    work = tmp_path / "work"
    with mount_jhfs(emulator, work, "-o", "download_streams=4") as first:
        emulator.fault(endpoint="download", mode="throttle", rate=8_000_000, jobname=jobname)
        before = requests(emulator, "download")
        cp = subprocess.Popen(["cp", str(file_path(first, jobname, name)), str(tmp_path)])
        wait_for(
            lambda: (
                requests(emulator, "download") - before >= 3
                and temp_files_of(first, first.process.pid) != []
            ),
            what="several connections bringing bytes into a partial file",
        )
        # A program that still has a file of it open keeps the dead mount busy.
        holder = holding(first.job(jobname) / "info.json")
        try:
            kill(first)
            assert cp.wait(timeout=30) != 0
            emulator.admin("DELETE", "faults")
            with mount_jhfs(emulator, work, log_name="remount.log") as new:
                assert_recovered(first, new)
                copy_and_check(new, file_path(new, jobname, name), tmp_path / "copy.bin")
        finally:
            holder.kill()
            holder.wait()


def test_kill_as_a_download_ends(emulator: Emulator, tmp_path: Path) -> None:
    # The bytes are all there: the mount is hashing the last, fsyncing the file
    # or renaming it into the cache.
    size = 48 * MIB
    jobname, name = result_file(emulator, size, seed=2)
    work = tmp_path / "work"
    with mount_jhfs(emulator, work) as first:
        before = emulator.bytes_sent()
        cp = subprocess.Popen(["cp", str(file_path(first, jobname, name)), str(tmp_path)])
        wait_for(lambda: emulator.bytes_sent() - before >= size, interval=0.002, what="the file")
        kill(first)
        cp.wait(timeout=30)
        with mount_jhfs(emulator, work, log_name="remount.log") as new:
            assert_recovered(first, new)
            copy_and_check(new, file_path(new, jobname, name), tmp_path / "copy.bin")


def test_kill_mid_log_fetch(emulator: Emulator, tmp_path: Path) -> None:
    count = 30_000  # three pages
    jobname = emulator.create_finished(status="Completed", log_lines=count)
    expected = "".join(
        f"line {n:07d} of {jobname}: step {n} loss={1.0 / n:.6f}\n" for n in range(1, count + 1)
    )
    work = tmp_path / "work"
    with mount_jhfs(emulator, work) as first:
        os.stat(first.job(jobname))  # known before its log's pages come slowly
        emulator.fault(endpoint="get_logs", mode="delay", delay=0.5, count=10, jobname=jobname)
        cat = subprocess.Popen(["cat", str(first.job(jobname) / "logs")], stdout=subprocess.PIPE)
        wait_for(
            lambda: any(n.endswith(".chunk") for n in temp_files_of(first, first.process.pid)),
            what="a page of the log on disk",
        )
        kill(first)
        assert cat.communicate(timeout=30)[0] == b""
        assert cat.returncode != 0
        emulator.admin("DELETE", "faults")
        with mount_jhfs(emulator, work, log_name="remount.log") as new:
            assert_recovered(first, new)
            assert (new.job(jobname) / "logs").read_text() == expected
    # Kept whole: a later mount reads it from the cache.
    with mount_jhfs(emulator, work, log_name="later.log") as later:
        before = requests(emulator, "get_logs")
        assert (later.job(jobname) / "logs").read_text() == expected
        assert requests(emulator, "get_logs") == before


def kept_partial(emulator: Emulator, work: Path, jobname: str, name: str) -> Path:
    """A download stopped by Ctrl-C of its cp, kept in partial/ by a clean unmount."""
    with mount_jhfs(emulator, work, log_name="kept.log") as mount:
        emulator.fault(endpoint="download", mode="throttle", rate=4_000_000, jobname=jobname)
        before = emulator.bytes_sent()
        cp = interruptible(["cp", str(file_path(mount, jobname, name)), str(work)])
        wait_for(lambda: emulator.bytes_sent() - before > 2 * MIB, what="the download to start")
        cp.send_signal(signal.SIGINT)
        assert cp.wait(timeout=30) != 0
    emulator.admin("DELETE", "faults")
    partial = server_dir(mount) / "partial"
    assert len(os.listdir(partial)) == 1
    return partial


def test_a_partial_download_kept_before_the_kill_is_resumed(
    emulator: Emulator, tmp_path: Path
) -> None:
    size = 24 * MIB
    jobname, name = result_file(emulator, size, seed=3)
    work = tmp_path / "work"
    kept_partial(emulator, work, jobname, name)
    with mount_jhfs(emulator, work, log_name="killed.log") as killed:
        os.listdir(killed.jobs)
        kill(killed)
        with mount_jhfs(emulator, work, log_name="remount.log") as new:
            assert_recovered(killed, new)
            before = emulator.bytes_sent()
            copy_and_check(new, file_path(new, jobname, name), tmp_path / "copy.bin")
            assert "resuming a partial download" in new.log_text()
            assert emulator.settled_bytes_sent() - before < size - MIB


def test_a_partial_download_claimed_by_the_killed_mount_is_not_resumed(
    emulator: Emulator, tmp_path: Path
) -> None:
    size = 24 * MIB
    jobname, name = result_file(emulator, size, seed=4)
    work = tmp_path / "work"
    partial = kept_partial(emulator, work, jobname, name)
    with mount_jhfs(emulator, work, log_name="killed.log") as killed:
        emulator.fault(endpoint="download", mode="throttle", rate=4_000_000, jobname=jobname)
        cp = subprocess.Popen(["cp", str(file_path(killed, jobname, name)), str(tmp_path)])
        wait_for(lambda: "resuming a partial download" in killed.log_text(), what="the resume")
        assert os.listdir(partial) == []  # its bytes are the killed mount's now, in tmp/
        assert temp_files_of(killed, killed.process.pid) != []
        kill(killed)
        assert cp.wait(timeout=30) != 0
        emulator.admin("DELETE", "faults")
        with mount_jhfs(emulator, work, log_name="remount.log") as new:
            assert_recovered(killed, new)
            before = emulator.bytes_sent()
            copy_and_check(new, file_path(new, jobname, name), tmp_path / "copy.bin")
            assert "resuming" not in new.log_text()
            assert emulator.settled_bytes_sent() - before >= size


def test_umount_of_a_dead_mount_and_a_detached_mount_on_one(
    emulator: Emulator, tmp_path: Path
) -> None:
    work = tmp_path / "work"
    env = jhfs_env(emulator)
    with mount_jhfs(emulator, work) as first:
        kill(first)
        unmounted = jhfs("umount", str(first.path), env=env)
        assert unmounted.returncode == 0, unmounted.stderr
        assert not mounted(first.path)
    with mount_jhfs(emulator, work, log_name="second.log") as second:
        kill(second)
        args = ["mount", str(second.path), "--cache-dir", str(second.cache_dir)]
        try:
            detached = jhfs(*args, env=env)
            assert detached.returncode == 0, detached.stderr
            (line,) = [x for x in detached.stderr.splitlines() if RECOVERED in x]
            assert f"{second.path}: {RECOVERED}" in line
            os.statvfs(second.path)  # served again
            assert second.jobs.is_dir()
        finally:
            assert jhfs("umount", str(second.path), env=env).returncode == 0
        assert not mounted(second.path)


@pytest.mark.parametrize("foreground", [True, False])
def test_a_live_mount_is_left_alone(emulator: Emulator, tmp_path: Path, foreground: bool) -> None:
    with mount_jhfs(emulator, tmp_path / "work") as live:
        args = ["mount", str(live.path), "--cache-dir", str(tmp_path / "other")]
        refused = jhfs(*args, *(["-f"] if foreground else []), env=jhfs_env(emulator))
        assert refused.returncode == 1
        assert refused.stderr == f"jhfs: error: {live.path} is already a mount point\n"
        assert live.process.poll() is None
        os.statvfs(live.path)  # still served


def test_a_dead_mount_of_another_kind_gets_a_hint(emulator: Emulator, tmp_path: Path) -> None:
    with mount_jhfs(emulator, tmp_path / "work", "-o", "subtype=other") as other:
        kill(other)
        args = ["mount", str(other.path), "-f", "--cache-dir", str(other.cache_dir)]
        refused = jhfs(*args, env=jhfs_env(emulator))
        assert refused.returncode == 1
        assert refused.stderr == (
            f"jhfs: error: {other.path}: the process of the fuse.other mount there has died; "
            f"run `fusermount -u {other.path}`\n"
        )
        assert mounted(other.path)  # left as it was
        force_unmount(other.path)
