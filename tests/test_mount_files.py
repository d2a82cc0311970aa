"""Job files through a real mount: cp is byte-identical, corruption is EIO, one download."""

from __future__ import annotations

import base64
import hashlib
import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import Emulator, wait_for
from mounting import Mount, mount_jhfs, sh, sha256_of


@pytest.fixture
def mnt(fresh_emulator: Emulator, tmp_path: Path) -> Iterator[Mount]:
    with mount_jhfs(fresh_emulator, tmp_path) as mount:
        yield mount


def wire_hash(mount: Mount, jobname: str, name: str) -> str:
    """The hex digest the server gives for a job file (from server.json, i.e. the wire)."""
    info = json.loads((mount.job(jobname) / "server.json").read_text())
    value = next(f["hash"]["value"] for f in info["files"] if f["name"] == name)
    return base64.b64decode(value).hex()


def downloads(emulator: Emulator) -> int:
    return int(emulator.stats()["requests"].get("download", 0))


def test_cp_of_a_result_is_byte_identical(mnt: Mount, tmp_path: Path) -> None:
    emulator = mnt.emulator
    jobname = emulator.create_finished(
        files=[{"type": "result", "name": "out.bin", "size": 5_000_000}]
    )
    source = mnt.job(jobname) / "files" / "result" / "out.bin"
    result = sh(f"cp {source} {tmp_path}/copy.bin")
    assert result.returncode == 0, result.stderr
    assert sha256_of(tmp_path / "copy.bin") == wire_hash(mnt, jobname, "out.bin")
    # A second copy is served from the cache: no new download.
    count = downloads(emulator)
    assert sh(f"cp {source} {tmp_path}/again.bin").returncode == 0
    assert sha256_of(tmp_path / "again.bin") == wire_hash(mnt, jobname, "out.bin")
    assert downloads(emulator) == count


def test_small_input_file_reads_its_content(mnt: Mount) -> None:
    content = b"using LinearAlgebra\nprintln(det(rand(3, 3)))\n"
    jobname = mnt.emulator.create_finished(
        files=[{"type": "input", "name": "code.jl", "content": base64.b64encode(content).decode()}]
    )
    assert (mnt.job(jobname) / "files" / "input" / "code.jl").read_bytes() == content


def test_corrupted_download_is_eio_and_the_next_read_succeeds(mnt: Mount, tmp_path: Path) -> None:
    emulator = mnt.emulator
    jobname = emulator.create_finished(
        files=[{"type": "result", "name": "out.bin", "size": 2_000_000}]
    )
    source = mnt.job(jobname) / "files" / "result" / "out.bin"
    emulator.fault(endpoint="download", mode="corrupt", count=100)
    failed = sh(f"cp {source} {tmp_path}/bad.bin")
    assert failed.returncode != 0
    assert "Input/output error" in failed.stderr
    digest = wire_hash(mnt, jobname, "out.bin")
    # The bad bytes were thrown away, not kept in the cache.
    assert not any(digest in p.name for p in mnt.cache_dir.rglob("*"))
    emulator.admin("DELETE", "faults")
    retried = sh(f"cp {source} {tmp_path}/good.bin")
    assert retried.returncode == 0, retried.stderr
    assert sha256_of(tmp_path / "good.bin") == digest


def test_parallel_readers_cause_one_download(mnt: Mount) -> None:
    emulator = mnt.emulator
    jobname = emulator.create_finished(
        files=[{"type": "result", "name": "big.bin", "size": 30_000_000}]
    )
    source = mnt.job(jobname) / "files" / "result" / "big.bin"
    before = emulator.stats()["bytes_sent"]
    readers = [
        subprocess.Popen(
            ["sh", "-c", f"cat {source} | sha256sum"], stdout=subprocess.PIPE, text=True
        )
        for _ in range(8)
    ]
    digests = {reader.communicate(timeout=60)[0].split()[0] for reader in readers}
    assert all(reader.returncode == 0 for reader in readers)
    assert digests == {wire_hash(mnt, jobname, "big.bin")}
    # One download (in ranged chunks): the file's bytes were sent once.
    assert 30_000_000 <= emulator.stats()["bytes_sent"] - before < 2 * 30_000_000


def test_unfinished_upload_reads_as_eagain_until_it_has_a_hash(mnt: Mount) -> None:
    emulator = mnt.emulator
    jobname = emulator.submit("sleep 120")
    emulator.admin(
        "POST", f"jobs/{jobname}/files", {"type": "result", "name": "late.bin", "uploading": True}
    )
    late = mnt.job(jobname) / "files" / "result" / "late.bin"
    wait_for(late.exists, what="the uploading file to show")
    busy = sh(f"cat {late}")
    assert busy.returncode != 0
    assert "Resource temporarily unavailable" in busy.stderr
    content = b"finally\n"
    emulator.admin(
        "POST",
        f"jobs/{jobname}/files",
        {"type": "result", "name": "late.bin", "content": base64.b64encode(content).decode()},
    )
    # A running job is at most 2 s old: the finished upload shows up and reads.
    assert wait_for(lambda: sh(f"cat {late}").stdout == content.decode(), what="the upload")
    assert hashlib.sha256(late.read_bytes()).hexdigest() == wire_hash(mnt, jobname, "late.bin")
    sh(f"echo kill > {mnt.job(jobname)}/ctl")


def test_a_finished_jobs_unfinished_upload_is_asked_for_again(mnt: Mount) -> None:
    emulator = mnt.emulator
    jobname = emulator.create_finished(
        files=[{"type": "result", "name": "late.bin", "uploading": True}]
    )
    late = mnt.job(jobname) / "files" / "result" / "late.bin"
    busy = sh(f"cat {late}")
    assert "Resource temporarily unavailable" in busy.stderr
    content = b"uploaded after the job ended\n"
    emulator.admin(
        "POST",
        f"jobs/{jobname}/files",
        {"type": "result", "name": "late.bin", "content": base64.b64encode(content).decode()},
    )
    # "Try again later" works: a finished job is kept for good only once final.
    assert wait_for(lambda: sh(f"cat {late}").stdout == content.decode(), what="the upload")
