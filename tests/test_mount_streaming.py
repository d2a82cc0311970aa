"""Big job files through a real mount: reads stream while the hash is checked,
downloads stop when nobody reads and resume later, strict mode, parallel lookups."""

from __future__ import annotations

import base64
import json
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import Emulator, wait_for
from mounting import Mount, mount_jhfs, sh, sha256_of

MIB = 1 << 20


@pytest.fixture
def mnt(fresh_emulator: Emulator, tmp_path: Path) -> Iterator[Mount]:
    with mount_jhfs(fresh_emulator, tmp_path) as mount:
        yield mount


def result_file(mount: Mount, size: int, seed: int) -> tuple[Path, str]:
    """A finished job's result file of its own content: (path in the mount, sha256 hex)."""
    jobname = mount.emulator.create_finished(
        files=[{"type": "result", "name": "big.bin", "size": size, "seed": seed}]
    )
    info = json.loads((mount.job(jobname) / "server.json").read_text())
    value = next(f["hash"]["value"] for f in info["files"] if f["name"] == "big.bin")
    return mount.job(jobname) / "files" / "result" / "big.bin", base64.b64decode(value).hex()


def interruptible(argv: list[str], **options: Any) -> subprocess.Popen[bytes]:
    """A process that SIGINT ends, as Ctrl-C in a terminal does (a test run started
    in the background ignores SIGINT, and its children would inherit that)."""
    return subprocess.Popen(
        argv, preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL), **options
    )


def downloads(emulator: Emulator) -> int:
    return int(emulator.stats()["requests"].get("download", 0))


def test_the_head_of_a_cold_file_comes_before_the_download_ends(mnt: Mount) -> None:
    source, _ = result_file(mnt, 4 * MIB, seed=1)
    mnt.emulator.fault(endpoint="download", mode="throttle", rate=1_000_000)
    before = mnt.emulator.bytes_sent()
    head = sh(f"head -c 100 {source} | wc -c")
    assert head.stdout.strip() == "100"
    assert mnt.emulator.bytes_sent() - before < 4 * MIB
    # Nobody reads it any more: the download stops short of the end.
    assert mnt.emulator.settled_bytes_sent() - before < 4 * MIB


def test_a_cold_file_can_be_mapped_privately_while_it_downloads(mnt: Mount) -> None:
    source, digest = result_file(mnt, 3 * MIB, seed=6)
    mnt.emulator.fault(endpoint="download", mode="throttle", rate=2_000_000)
    mapped = sh(
        f'python3 -c \'import hashlib, mmap; f = open("{source}", "rb"); '
        "m = mmap.mmap(f.fileno(), 0, flags=mmap.MAP_PRIVATE, prot=mmap.PROT_READ); "
        "print(hashlib.sha256(m).hexdigest())'"
    )
    assert mapped.returncode == 0, mapped.stderr
    assert mapped.stdout.strip() == digest


def test_ctrl_c_of_a_cold_cp_stops_the_download_and_the_next_cp_resumes_it(
    mnt: Mount, tmp_path: Path
) -> None:
    size = 24 * MIB  # three ranged chunks
    source, digest = result_file(mnt, size, seed=2)
    mnt.emulator.fault(endpoint="download", mode="throttle", rate=2_000_000)
    before = mnt.emulator.bytes_sent()
    cp = interruptible(["cp", str(source), str(tmp_path / "partial.bin")])
    wait_for(lambda: mnt.emulator.bytes_sent() - before > MIB, what="the download to start")
    cp.send_signal(signal.SIGINT)
    assert cp.wait(timeout=30) != 0
    assert mnt.emulator.settled_bytes_sent() - before < size

    mnt.emulator.admin("DELETE", "faults")
    copied = sh(f"cp {source} {tmp_path}/copy.bin")
    assert copied.returncode == 0, copied.stderr
    assert sha256_of(tmp_path / "copy.bin") == digest
    # Resumed where it stopped: at most what was in flight went twice.
    assert size <= mnt.emulator.settled_bytes_sent() - before < size + 4 * MIB


def test_ctrl_c_ends_a_read_that_waits_for_the_end_of_a_download(mnt: Mount) -> None:
    # tail reads the last bytes, which wait for the whole file and its hash.
    size = 8 * MIB
    source, _ = result_file(mnt, size, seed=5)
    mnt.emulator.fault(endpoint="download", mode="throttle", rate=1_000_000)
    before = mnt.emulator.bytes_sent()
    tail = interruptible(["tail", "-c", "100", str(source)], stdout=subprocess.DEVNULL)
    wait_for(lambda: mnt.emulator.bytes_sent() - before > 200_000, what="the download to start")
    tail.send_signal(signal.SIGINT)
    assert tail.wait(timeout=30) != 0
    # It ended long before the download could have: the read was let go.
    assert mnt.emulator.bytes_sent() - before < size
    assert mnt.emulator.settled_bytes_sent() - before < size


def test_a_persistent_corruption_costs_one_download_per_open_file_or_concurrent_opens(
    mnt: Mount, tmp_path: Path
) -> None:
    source, digest = result_file(mnt, 2 * MIB, seed=3)
    mnt.emulator.fault(endpoint="download", mode="corrupt", count=1000)
    before = downloads(mnt.emulator)
    failed = sh(f"cat {source} > /dev/null")
    assert failed.returncode != 0
    assert "Input/output error" in failed.stderr
    assert downloads(mnt.emulator) - before == 1  # the kernel's retried reads start none

    # Four readers at once (kept in flight by a slow link) share one download.
    mnt.emulator.fault(endpoint="download", mode="throttle", rate=2_000_000)
    before = downloads(mnt.emulator)
    cats = [
        subprocess.Popen(["cat", str(source)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        for _ in range(4)
    ]
    assert all(cat.wait(timeout=60) != 0 for cat in cats)
    assert downloads(mnt.emulator) - before == 1

    mnt.emulator.admin("DELETE", "faults")
    copied = sh(f"cp {source} {tmp_path}/good.bin")
    assert copied.returncode == 0, copied.stderr
    assert sha256_of(tmp_path / "good.bin") == digest


def test_verify_full_serves_no_byte_before_the_whole_file_matched(
    fresh_emulator: Emulator, tmp_path: Path
) -> None:
    with mount_jhfs(fresh_emulator, tmp_path, "-o", "verify=full") as mount:
        source, _ = result_file(mount, 2 * MIB, seed=4)
        fresh_emulator.fault(endpoint="download", mode="throttle", rate=2_000_000)
        before = fresh_emulator.bytes_sent()
        head = sh(f"head -c 100 {source} | wc -c")
        assert head.stdout.strip() == "100"
        assert fresh_emulator.bytes_sent() - before >= 2 * MIB


def test_a_slow_lookup_does_not_hold_up_another_job_in_the_same_directory(
    fresh_emulator: Emulator, tmp_path: Path
) -> None:
    # Only the newest job is listed; the older one is looked up by name.
    older = fresh_emulator.create_finished(status="Completed")
    newer = fresh_emulator.create_finished(status="Failed")
    with mount_jhfs(fresh_emulator, tmp_path, "--jobs-limit", "1") as mount:
        assert sh(f"ls {mount.jobs}").stdout.split() == [newer]
        fresh_emulator.fault(endpoint="job", mode="delay", delay=5, jobname=older)
        slow = subprocess.Popen(["stat", str(mount.job(older))], stdout=subprocess.DEVNULL)
        wait_for(lambda: fresh_emulator.stats()["requests"].get("job", 0), what="the slow lookup")
        status = sh(f"cat {mount.job(newer)}/status")
        assert status.stdout == "Failed\n"
        assert slow.poll() is None  # answered while the other lookup still waits
        assert slow.wait(timeout=30) == 0
