"""`jhfs cache du|clear|verify` on the cache of real mounts, and the lock that tells
whether a mount uses a server's cache directory."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from conftest import Emulator, wait_for
from mounting import Mount, jhfs, jhfs_env, mount_jhfs, sh, sha256_of
from test_mount_cache import downloads, result_files

from jhfs.cache_command import human
from jhfs.preflight import server_cache_dir, server_cache_path
from jhfs.state.cachelock import CacheLockedError, exclusive, hold_shared, in_use

MIB = 1 << 20
KEPT = {"jhfs.lock", "server"}  # what a clear leaves in a server's directory


def server_dir(mount: Mount) -> Path:
    return server_cache_path(mount.cache_dir, mount.emulator.url)


def cache(mount: Mount, *args: str) -> subprocess.CompletedProcess[str]:
    return jhfs("cache", *args, "--cache-dir", str(mount.cache_dir), env=jhfs_env(mount.emulator))


def cache_files(mount: Mount) -> dict[str, int]:
    """Every file under the server's directory (relative path: size)."""
    directory = server_dir(mount)
    return {
        str(path.relative_to(directory)): path.stat().st_size
        for path in directory.rglob("*")
        if path.is_file()
    }


def counted(files: dict[str, int]) -> int:
    return sum(size for name, size in files.items() if name.split("/")[0] in COUNTED_DIRS)


COUNTED_DIRS = ("blobs", "logs", "partial")


def fill(mount: Mount, tmp_path: Path) -> tuple[Path, str, str]:
    """Copy a 1 MiB file and read a finished log through the mount, so both are cached:
    (the file's path in the mount, its digest, the log's jobname)."""
    ((source, digest),) = result_files(mount, [MIB], seed=50)
    copied = sh(f"cp {source} {tmp_path / 'copy'}")
    assert copied.returncode == 0, copied.stderr
    jobname = mount.emulator.create_finished(status="Completed", log_lines=200)
    shown = sh(f"cat {mount.job(jobname) / 'logs'}")
    assert shown.returncode == 0 and shown.stdout.count("\n") >= 200, shown.stderr
    blobs = server_dir(mount) / "blobs"
    logs = server_dir(mount) / "logs"
    wait_for(lambda: (blobs / digest).exists(), what="the blob")
    wait_for(lambda: any(logs.glob(f"{jobname}*")), what="the finished log")
    return source.relative_to(mount.path), digest, jobname


def test_du_shows_the_server_and_clear_leaves_a_mounted_cache_alone(
    fresh_emulator: Emulator, tmp_path: Path
) -> None:
    with mount_jhfs(fresh_emulator, tmp_path) as mount:
        relative, digest, _ = fill(mount, tmp_path)
        files = cache_files(mount)
        assert files[f"blobs/{digest}"] == MIB

        du = cache(mount, "du", "--bytes")
        assert du.returncode == 0, du.stderr
        (line,) = [line for line in du.stdout.splitlines() if fresh_emulator.url in line]
        cached, other, server, mounted = line.split()
        assert server == fresh_emulator.url
        assert mounted == str(mount.path)
        # The blob and the log; the listing and the rest count apart.
        assert int(cached) == counted(files) > MIB
        assert int(other) == sum(files.values()) - counted(files) > 0
        assert du.stdout.splitlines()[-1].split()[:2] == [cached, other]
        human_du = cache(mount, "du")
        assert human(int(cached)) in human_du.stdout

        refused = cache(mount, "clear")
        assert refused.returncode == 1
        (message,) = refused.stderr.splitlines()
        assert fresh_emulator.url in message and str(mount.path) in message
        assert "not cleared" in message
        assert cache_files(mount) == files

    cleared = cache(mount, "clear")
    assert cleared.returncode == 0, cleared.stderr
    freed = sum(size for name, size in files.items() if name not in KEPT)
    assert cleared.stdout.startswith(f"{fresh_emulator.url}: freed {human(freed)}: ")
    assert ": 1 downloaded file, 2 finished log files, " in cleared.stdout
    assert set(os.listdir(server_dir(mount))) == KEPT
    after = cache(mount, "du", "--bytes")
    (line,) = [line for line in after.stdout.splitlines() if fresh_emulator.url in line]
    assert line.split()[:2] == ["0", str(sum(os.path.getsize(f) for f in _kept(mount)))]

    # The next mount has nothing cached: the file comes from the server again.
    with mount_jhfs(fresh_emulator, tmp_path, log_name="again.log") as mount:
        before = downloads(fresh_emulator)
        copied = sh(f"cp {mount.path / relative} {tmp_path / 'again'}")
        assert copied.returncode == 0, copied.stderr
        assert sha256_of(tmp_path / "again") == digest
        assert downloads(fresh_emulator) == before + 1


def _kept(mount: Mount) -> list[Path]:
    return [server_dir(mount) / name for name in KEPT]


def test_clear_names_only_the_mounts_of_its_own_cache(
    fresh_emulator: Emulator, tmp_path: Path
) -> None:
    # Two mounts of one server, each with its cache directory: each is in use by
    # its own mount alone (the lock's holder), not by every mount of the server.
    first, second = tmp_path / "first", tmp_path / "second"
    with mount_jhfs(fresh_emulator, first) as one, mount_jhfs(fresh_emulator, second) as two:
        for mount, other in ((one, two), (two, one)):
            refused = cache(mount, "clear")
            assert refused.returncode == 1
            (message,) = refused.stderr.splitlines()
            assert f"at {mount.path};" in message and str(other.path) not in message
            du = cache(mount, "du")
            (line,) = [line for line in du.stdout.splitlines() if fresh_emulator.url in line]
            assert line.split()[-1] == str(mount.path)


def test_a_killed_mount_holds_no_lock(fresh_emulator: Emulator, tmp_path: Path) -> None:
    with mount_jhfs(fresh_emulator, tmp_path) as mount:
        fill(mount, tmp_path)
        assert cache(mount, "clear").returncode == 1
        mount.process.send_signal(signal.SIGKILL)
        mount.process.wait(timeout=10)
        # Still in the mount table (dead), but its lock went with its process.
        cleared = cache(mount, "clear")
        assert cleared.returncode == 0, cleared.stderr
        assert set(os.listdir(server_dir(mount))) == KEPT


def test_verify_deletes_the_damaged_file_only_even_while_mounted(
    fresh_emulator: Emulator, tmp_path: Path
) -> None:
    with mount_jhfs(fresh_emulator, tmp_path) as mount:
        (bad, bad_digest), (good, good_digest) = result_files(mount, [MIB, MIB], seed=60)
        for number, source in enumerate((bad, good)):
            assert sh(f"cp {source} {tmp_path / f'c{number}'}").returncode == 0
        relative = bad.relative_to(mount.path)
    blobs = server_dir(mount) / "blobs"
    wait_for(lambda: {bad_digest, good_digest} <= set(os.listdir(blobs)), what="both blobs")
    with (blobs / bad_digest).open("r+b") as file:
        file.seek(MIB // 2)
        byte = file.read(1)
        file.seek(MIB // 2)
        file.write(bytes([byte[0] ^ 0x01]))

    with mount_jhfs(fresh_emulator, tmp_path, log_name="second.log") as mount:
        checked = cache(mount, "verify")
        assert checked.returncode == 0, checked.stderr
        assert f"{fresh_emulator.url}: 2 downloaded files checked (2.0M); 1 damaged" in (
            checked.stdout
        )
        assert f"deleted {bad_digest}" in checked.stdout
        assert good_digest not in checked.stdout
        assert set(os.listdir(blobs)) == {good_digest}
        again = cache(mount, "verify")
        assert "1 downloaded file checked (1.0M); none damaged" in again.stdout
        # The mount downloads the deleted one again, and serves it right.
        before = downloads(fresh_emulator)
        assert sh(f"cp {mount.path / relative} {tmp_path / 'again'}").returncode == 0
        assert sha256_of(tmp_path / "again") == bad_digest
        assert downloads(fresh_emulator) == before + 1


def test_server_selects_one_cache(fresh_emulator: Emulator, tmp_path: Path) -> None:
    other = "https://other.example.com/prefix"
    with mount_jhfs(fresh_emulator, tmp_path) as mount:
        fill(mount, tmp_path)
        elsewhere = server_cache_dir(mount.cache_dir, other)
        os.close(hold_shared(elsewhere))  # as a mount of it did, once
        (elsewhere / "blobs").mkdir()
        (elsewhere / "blobs" / ("0" * 64)).write_bytes(b"x" * 3000)
        files = cache_files(mount)

        du = cache(mount, "du", "--bytes", "--server", other)
        assert du.returncode == 0, du.stderr
        assert fresh_emulator.url not in du.stdout
        assert du.stdout.splitlines()[1].split() == ["3000", str(_size(elsewhere)), other, "-"]
        both = cache(mount, "du")
        assert fresh_emulator.url in both.stdout and other in both.stdout

        cleared = cache(mount, "clear", "--server", other)
        assert cleared.returncode == 0, cleared.stderr
        assert cleared.stdout.splitlines() == [f"{other}: freed 3.0K: 1 downloaded file"]
        assert set(os.listdir(elsewhere)) == KEPT
        assert cache_files(mount) == files  # the mounted server's, untouched

        unknown = cache(mount, "du", "--server", "https://nowhere.example.com")
        assert unknown.returncode == 0
        assert unknown.stdout == f"no cache of https://nowhere.example.com in {mount.cache_dir}\n"


def _size(directory: Path) -> int:
    return sum(path.stat().st_size for path in directory.rglob("*") if path.is_file()) - 3000


@pytest.mark.parametrize("action", ["du", "clear", "verify"])
def test_an_empty_or_missing_cache_dir(tmp_path: Path, action: str) -> None:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    for root in (tmp_path / "missing", tmp_path):
        result = jhfs("cache", action, "--cache-dir", str(root), env=env)
        assert (result.returncode, result.stdout, result.stderr) == (0, f"no cache in {root}\n", "")


def test_clear_touches_no_directory_a_mount_never_locked(tmp_path: Path) -> None:
    """--cache-dir pointed at some other directory: nothing there is a server's cache."""
    (tmp_path / "project" / "logs").mkdir(parents=True)
    (tmp_path / "project" / "logs" / "build.log").write_text("keep me")
    (tmp_path / "project" / "listing.jsonl").write_text("keep me too")
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    result = jhfs("cache", "clear", "--cache-dir", str(tmp_path), env=env)
    assert (result.returncode, result.stdout) == (0, f"no cache in {tmp_path}\n")
    assert (tmp_path / "project" / "logs" / "build.log").read_text() == "keep me"
    assert (tmp_path / "project" / "listing.jsonl").exists()


def test_clear_does_not_follow_links(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "precious").write_text("keep")
    root = tmp_path / "cache"
    directory = server_cache_dir(root, "https://juliahub.example.com")
    os.close(hold_shared(directory))
    (directory / "blobs").symlink_to(outside)
    (directory / "jobs").mkdir()
    (directory / "jobs" / "a.json").symlink_to(outside / "precious")
    (root / "linked").symlink_to(outside)  # a server directory that is a link: not one
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    result = jhfs("cache", "clear", "--cache-dir", str(root), env=env)
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("\n") == 1
    assert set(os.listdir(directory)) == KEPT
    assert (outside / "precious").read_text() == "keep"


def test_the_lock_is_shared_by_mounts_and_exclusive_for_a_clear(tmp_path: Path) -> None:
    assert not in_use(tmp_path)
    first, second = hold_shared(tmp_path), hold_shared(tmp_path)  # two mounts share it
    assert in_use(tmp_path)
    with exclusive(tmp_path) as got:
        assert not got
    os.close(first)
    with exclusive(tmp_path) as got:
        assert not got  # the second mount still uses it
    os.close(second)
    assert not in_use(tmp_path)
    with exclusive(tmp_path) as got:
        assert got
        assert in_use(tmp_path)
        with pytest.raises(CacheLockedError, match="is being cleared"):
            hold_shared(tmp_path, wait=0.2)
    os.close(hold_shared(tmp_path))


def test_a_killed_holder_leaves_no_lock(tmp_path: Path) -> None:
    script = (
        "import pathlib, time\n"
        "from jhfs.state.cachelock import hold_shared\n"
        f"hold_shared(pathlib.Path({str(tmp_path)!r}))\n"
        "print('held', flush=True)\n"
        "time.sleep(60)\n"
    )
    source = str(Path(__file__).parents[1])  # this tree's jhfs
    holder = subprocess.Popen(
        [sys.executable, "-c", script],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": source},
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "held\n"
        assert in_use(tmp_path)
        holder.kill()
        holder.wait(timeout=10)
        assert not in_use(tmp_path)
    finally:
        holder.kill()
        holder.wait()


@pytest.mark.parametrize(
    ("size", "shown"),
    [(0, "0"), (1023, "1023"), (1024, "1.0K"), (1536, "1.5K"), (10 * 1024, "10K"),
     (10 * 1024 - 1, "10K"), (MIB - 1, "1.0M"), (3 * MIB + 1, "3.1M"), (5 << 30, "5.0G")],
)  # fmt: skip
def test_sizes_are_written_as_du_h_does(size: int, shown: str) -> None:
    assert human(size) == shown


def test_a_mount_waits_for_a_clear_to_end(fresh_emulator: Emulator, tmp_path: Path) -> None:
    directory = server_cache_dir(tmp_path / "cache", fresh_emulator.url)
    os.close(hold_shared(directory))  # as an earlier mount did
    clearing = contextlib.ExitStack()
    assert clearing.enter_context(exclusive(directory))
    log = tmp_path / "jhfs.log"

    def end_the_clear_once_the_mount_waits() -> None:
        wait_for(lambda: log.exists() and "is being cleared" in log.read_text(), what="a wait")
        clearing.close()

    ending = threading.Thread(target=end_the_clear_once_the_mount_waits)
    ending.start()
    try:
        with mount_jhfs(fresh_emulator, tmp_path) as mount:
            assert "is being cleared: waiting" in mount.log_text()  # it did not just go ahead
            assert (mount.path / "jobs").is_dir()
            assert in_use(directory)
    finally:
        ending.join()
        clearing.close()


def test_a_cache_without_its_server_recorded_is_named_after_its_directory(
    tmp_path: Path,
) -> None:
    for name in ("127.0.0.1_8080", "juliahub.example.com_team_a"):
        (tmp_path / name).mkdir()
        os.close(hold_shared(tmp_path / name))  # mounted once; its `server` file is gone
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    result = jhfs("cache", "du", "--cache-dir", str(tmp_path), env=env)
    assert result.returncode == 0, result.stderr
    servers = [line.split()[2] for line in result.stdout.splitlines()[1:-1]]
    assert servers == ["127.0.0.1:8080", "juliahub.example.com/team/a"]
