"""The file cache through real mounts: its size limit, damaged blobs, two mounts
sharing one cache directory, and downloads resumed by the next mount."""

from __future__ import annotations

import base64
import contextlib
import json
import signal
import subprocess
from pathlib import Path

import pytest
from conftest import Emulator, wait_for
from mounting import Mount, interruptible, jhfs, jhfs_env, mount_jhfs, sh, sha256_of

MIB = 1 << 20


def result_files(mount: Mount, sizes: list[int], seed: int) -> list[tuple[Path, str]]:
    """One finished job with a result file of its own content per size: (path, sha256 hex)."""
    specs = [
        {"type": "result", "name": f"f{i}.bin", "size": size, "seed": seed + i}
        for i, size in enumerate(sizes)
    ]
    jobname = mount.emulator.create_finished(files=specs)
    info = json.loads((mount.job(jobname) / "server.json").read_text())
    digests = {f["name"]: base64.b64decode(f["hash"]["value"]).hex() for f in info["files"]}
    directory = mount.job(jobname) / "files" / "result"
    return [(directory / f"f{i}.bin", digests[f"f{i}.bin"]) for i in range(len(sizes))]


def downloads(emulator: Emulator) -> int:
    return int(emulator.stats()["requests"].get("download", 0))


def server_dir(cache_dir: Path) -> Path:
    """The per-server directory inside --cache-dir (the only one: one emulator)."""
    (directory,) = [d for d in cache_dir.iterdir() if d.is_dir()]
    return directory


def stored(cache_dir: Path) -> int:
    """Bytes the size limit counts: blobs, finished logs, partial downloads."""
    total = 0
    for name in ("blobs", "logs", "partial"):
        for path in server_dir(cache_dir).glob(f"{name}/*"):
            with contextlib.suppress(FileNotFoundError):  # evicted while we looked
                total += path.stat().st_size
    return total


def copy(source: Path, target: Path) -> subprocess.CompletedProcess[str]:
    return sh(f"cp {source} {target}")


def test_the_cache_stays_within_its_size_and_every_copy_is_right(
    fresh_emulator: Emulator, tmp_path: Path
) -> None:
    with mount_jhfs(fresh_emulator, tmp_path, "--cache-max-size", "8M") as mount:
        files = result_files(mount, [3 * MIB] * 8, seed=20)  # 24 MiB: 3 times the limit
        for number, (source, digest) in enumerate(files):
            copied = copy(source, tmp_path / f"copy{number}")
            assert copied.returncode == 0, copied.stderr
            assert sha256_of(tmp_path / f"copy{number}") == digest
            assert stored(mount.cache_dir) <= 8 * MIB
        # The first ones went to make room; reading one again downloads it again.
        before = downloads(fresh_emulator)
        copied = copy(files[0][0], tmp_path / "again")
        assert copied.returncode == 0, copied.stderr
        assert sha256_of(tmp_path / "again") == files[0][1]
        assert downloads(fresh_emulator) == before + 1
        assert stored(mount.cache_dir) <= 8 * MIB


def corrupt_and_copy_twice(emulator: Emulator, tmp_path: Path, damage: str) -> None:
    """Cache a file, damage its blob while no mount runs, then cp it in a new mount."""
    with mount_jhfs(emulator, tmp_path / "first") as mount:
        ((source, digest),) = result_files(mount, [3 * MIB], seed=30)
        assert copy(source, tmp_path / "good").returncode == 0
        cache_dir = mount.cache_dir
        relative = source.relative_to(mount.path)
    blob = server_dir(cache_dir) / "blobs" / digest
    wait_for(blob.exists, what="the verified blob")
    with blob.open("r+b") as file:
        if damage == "truncate":
            file.truncate(MIB)
        else:
            file.seek(2 * MIB)
            byte = file.read(1)
            file.seek(2 * MIB)
            file.write(bytes([byte[0] ^ 0x01]))

    with mount_jhfs(emulator, tmp_path / "second", "--cache-dir", str(cache_dir)) as mount:
        source = mount.path / relative
        before = downloads(emulator)
        first = copy(source, tmp_path / "first.bin")
        if damage == "truncate":
            # The size was checked at open: downloaded again before any byte.
            assert first.returncode == 0, first.stderr
            assert downloads(emulator) == before + 1
        else:
            # The bytes were checked as they were read: the end never came.
            assert first.returncode != 0
            assert "Input/output error" in first.stderr
            assert downloads(emulator) == before
            assert not blob.exists()
        second = copy(source, tmp_path / "second.bin")
        assert second.returncode == 0, second.stderr
        assert sha256_of(tmp_path / "second.bin") == digest
        assert downloads(emulator) == before + 1
        if first.returncode == 0:
            assert sha256_of(tmp_path / "first.bin") == digest
        assert "cached" in mount.log_text()


def test_a_cut_blob_is_downloaded_again(fresh_emulator: Emulator, tmp_path: Path) -> None:
    corrupt_and_copy_twice(fresh_emulator, tmp_path, "truncate")


def test_a_blob_with_a_flipped_byte_never_copies_as_complete(
    fresh_emulator: Emulator, tmp_path: Path
) -> None:
    corrupt_and_copy_twice(fresh_emulator, tmp_path, "flip")


def test_two_mounts_share_one_cache_and_survive_each_others_evictions(
    fresh_emulator: Emulator, tmp_path: Path
) -> None:
    shared = tmp_path / "shared"
    with (
        mount_jhfs(fresh_emulator, tmp_path / "a", "--cache-dir", str(shared)) as a,
        mount_jhfs(
            fresh_emulator, tmp_path / "b", "--cache-dir", str(shared), "--cache-max-size", "5M"
        ) as b,
    ):
        files = result_files(a, [2 * MIB] * 4, seed=40)
        (source, digest), others = files[0], files[1:]
        assert copy(source, tmp_path / "by_a").returncode == 0
        in_b = b.path / source.relative_to(a.path)
        before = downloads(fresh_emulator)
        assert copy(in_b, tmp_path / "by_b").returncode == 0  # checked, not downloaded
        assert sha256_of(tmp_path / "by_b") == digest
        assert downloads(fresh_emulator) == before

        # a holds the file open while b's reads evict its blob.
        holder = subprocess.Popen(
            ["sh", "-c", 'exec 3< "$1"; echo open; read go; sha256sum <&3', "sh", str(source)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert holder.stdout is not None and holder.stdout.readline() == "open\n"
        blob = server_dir(shared) / "blobs" / digest
        for number, (other, other_digest) in enumerate(others):
            target = tmp_path / f"other{number}"
            assert copy(b.path / other.relative_to(a.path), target).returncode == 0
            assert sha256_of(target) == other_digest
        assert not blob.exists()
        out, _ = holder.communicate("go\n", timeout=60)
        assert holder.returncode == 0 and out.split()[0] == digest  # the unlinked inode

        # An open in a after the eviction downloads it again.
        again = copy(source, tmp_path / "again")
        assert again.returncode == 0, again.stderr
        assert sha256_of(tmp_path / "again") == digest


@pytest.mark.parametrize("stop", ["ctrl-c, then unmount", "unmount while cp reads"])
def test_a_download_stopped_by_the_unmount_is_resumed_by_the_next_mount(
    fresh_emulator: Emulator, tmp_path: Path, stop: str
) -> None:
    # At 4 MB/s, the 40 MiB left after the first 8 are 10 s of margin for the
    # unmount to land mid-download on a loaded machine.
    size = 48 * MIB
    with mount_jhfs(fresh_emulator, tmp_path / "first") as mount:
        ((source, digest),) = result_files(mount, [size], seed=50)
        relative, cache_dir = source.relative_to(mount.path), mount.cache_dir
        fresh_emulator.fault(endpoint="download", mode="throttle", rate=4_000_000)
        start = fresh_emulator.bytes_sent()
        cp = interruptible(
            ["cp", str(source), str(tmp_path / "partial.bin")], stderr=subprocess.PIPE, text=True
        )
        wait_for(lambda: fresh_emulator.bytes_sent() - start > 8 * MIB, what="8 MiB to arrive")
        if stop == "ctrl-c, then unmount":
            cp.send_signal(signal.SIGINT)
            assert cp.wait(timeout=30) != 0
        else:  # a busy mount: jhfs umount ends its process, and the read fails
            unmounted = jhfs("umount", str(mount.path), env=jhfs_env(fresh_emulator))
            assert unmounted.returncode == 0, unmounted.stderr
            # Which error depends on whether cp's read was waiting in jhfs (EIO) or
            # not yet taken up (ENOTCONN); test_mount_deadlines pins the first.
            cp.communicate(timeout=30)
            assert cp.returncode != 0
            assert mount.process.wait(timeout=30) == 0
    # Unmounted: the bytes are kept as a partial download.
    sent_before = fresh_emulator.settled_bytes_sent() - start
    assert sent_before < size
    assert len(list(server_dir(cache_dir).glob("partial/*"))) == 1

    fresh_emulator.admin("DELETE", "faults")
    with mount_jhfs(fresh_emulator, tmp_path / "second", "--cache-dir", str(cache_dir)) as mount:
        middle = fresh_emulator.bytes_sent()
        copied = copy(mount.path / relative, tmp_path / "copy.bin")
        assert copied.returncode == 0, copied.stderr
        assert sha256_of(tmp_path / "copy.bin") == digest
        resent = fresh_emulator.settled_bytes_sent() - middle
        # Only what was missing: at most what was in flight at the unmount went twice.
        assert size - sent_before <= resent < size - sent_before + 4 * MIB
        assert list(server_dir(cache_dir).glob("partial/*")) == []


def test_a_bad_cache_size_is_a_one_line_usage_error(emulator: Emulator, tmp_path: Path) -> None:
    result = jhfs("mount", str(tmp_path), "--cache-max-size", "lots", env=jhfs_env(emulator))
    assert result.returncode == 2
    assert result.stderr.splitlines()[-1].endswith("not a size (such as 10G or 500M): 'lots'")


def test_logs_fetched_by_stats_stay_within_the_cache_size(
    fresh_emulator: Emulator, tmp_path: Path
) -> None:
    # A log of 2,000 lines and its JSON lines are about 1 MiB: 12 are 3 times the limit.
    answer = fresh_emulator.admin(
        "POST", "jobs", {"finished": {"status": "Completed", "log_lines": 2_000}, "count": 12}
    )
    with mount_jhfs(fresh_emulator, tmp_path, "--cache-max-size", "4M") as mount:
        for jobname in answer["jobnames"]:
            job = mount.job(jobname)
            sizes = sh(f"stat -c %s {job}/logs {job}/logs.jsonl")
            assert sizes.returncode == 0, sizes.stderr
            assert min(map(int, sizes.stdout.split())) > 0
            assert stored(mount.cache_dir) <= 4 * MIB
        # The first ones went to make room; reading one again fetches it again, whole.
        first = mount.job(answer["jobnames"][0]) / "logs"
        before = fresh_emulator.stats()["requests"]["get_logs"]
        assert first.read_text().count("\n") == 2_000
        assert fresh_emulator.stats()["requests"]["get_logs"] == before + 1
        assert stored(mount.cache_dir) <= 4 * MIB
