"""The verified file cache against the emulator: hashing, faults, single flight."""

from __future__ import annotations

import base64
import hashlib
import os
import stat
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from conftest import Emulator, wait_for

from jhfs.client import JobFile, JuliaHubClient, ServerUnreachableError, TokenSource
from jhfs.state.errors import FileNotReadyError, IntegrityError
from jhfs.state.files import FileCache, _HashingWriter
from jhfs.state.flight import SingleFlight


@pytest.fixture
def client(emulator: Emulator) -> Iterator[JuliaHubClient]:
    c = JuliaHubClient(emulator.url, TokenSource(token=emulator.token))
    yield c
    c.close()


def downloads(emulator: Emulator) -> int:
    return int(emulator.stats()["requests"].get("download", 0))


def job_file(client: JuliaHubClient, jobname: str, name: str) -> JobFile:
    job = client.job(jobname)
    assert job is not None
    return next(f for f in job.files if f.name == name)


def result_job(emulator: Emulator, client: JuliaHubClient, **spec: object) -> JobFile:
    jobname = emulator.create_finished(
        status="Completed", files=[{"type": "result", "name": "out.bin", **spec}]
    )
    return job_file(client, jobname, "out.bin")


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_fetch_downloads_once_verifies_and_reuses(
    emulator: Emulator, client: JuliaHubClient, tmp_path: Path
) -> None:
    content = b"some result bytes\n" * 1000
    file = result_job(emulator, client, content=base64.b64encode(content).decode())
    cache_dir = tmp_path / "cache" / "server"
    cache = FileCache(client, cache_dir)
    assert cache.cached(file) is None
    before = downloads(emulator)

    path = cache.fetch(file)
    assert path.read_bytes() == content
    assert path.name == hashlib.sha256(content).hexdigest()
    assert mode(path) == 0o600
    for directory in (cache_dir, cache_dir / "blobs", cache_dir / "tmp"):
        assert mode(directory) == 0o700
    assert cache.fetch(file) == path
    assert cache.cached(file) == path
    # A later mount of the same cache directory finds it too.
    assert FileCache(client, cache_dir).fetch(file) == path
    assert downloads(emulator) == before + 1
    assert os.listdir(cache_dir / "tmp") == []


def test_corrupt_download_is_integrity_error_and_retry_succeeds(
    fresh_emulator: Emulator, tmp_path: Path
) -> None:
    client = JuliaHubClient(fresh_emulator.url, TokenSource(token=fresh_emulator.token))
    file = result_job(fresh_emulator, client, size=3 << 20)
    cache = FileCache(client, tmp_path)
    fresh_emulator.fault(endpoint="download", mode="corrupt", count=1)
    with pytest.raises(IntegrityError):
        cache.fetch(file)
    assert os.listdir(tmp_path / "blobs") == []
    assert os.listdir(tmp_path / "tmp") == []
    assert cache.cached(file) is None

    path = cache.fetch(file)
    assert hashlib.sha256(path.read_bytes()).digest() == file.hash.digest
    assert fresh_emulator.stats()["requests"]["download"] == 2
    client.close()


@pytest.mark.parametrize("fault", ["truncate", "reset"])
def test_interrupted_download_is_completed_with_the_right_bytes(
    fresh_emulator: Emulator, tmp_path: Path, fault: str
) -> None:
    client = JuliaHubClient(fresh_emulator.url, TokenSource(token=fresh_emulator.token))
    file = result_job(fresh_emulator, client, size=5 << 20, seed=7)
    fresh_emulator.fault(endpoint="download", mode=fault, count=1)
    path = FileCache(client, tmp_path).fetch(file)
    assert path.stat().st_size == 5 << 20
    assert hashlib.sha256(path.read_bytes()).digest() == file.hash.digest
    assert fresh_emulator.stats()["requests"]["download"] == 2  # cut, then the rest
    client.close()


def test_download_failing_after_retries_leaves_nothing_and_is_retried_later(
    fresh_emulator: Emulator, tmp_path: Path
) -> None:
    client = JuliaHubClient(fresh_emulator.url, TokenSource(token=fresh_emulator.token), retries=1)
    file = result_job(fresh_emulator, client, size=1 << 20)
    cache = FileCache(client, tmp_path)
    fresh_emulator.fault(endpoint="download", mode="reset", count=2)
    with pytest.raises(ServerUnreachableError):
        cache.fetch(file)
    assert os.listdir(tmp_path / "blobs") == []
    assert os.listdir(tmp_path / "tmp") == []
    assert cache.fetch(file).stat().st_size == 1 << 20
    client.close()


def test_many_concurrent_fetches_make_one_download(
    fresh_emulator: Emulator, tmp_path: Path
) -> None:
    client = JuliaHubClient(fresh_emulator.url, TokenSource(token=fresh_emulator.token))
    file = result_job(fresh_emulator, client, size=8 << 20)
    cache = FileCache(client, tmp_path)
    # A slow start keeps the download in flight while every reader arrives.
    fresh_emulator.fault(endpoint="download", mode="delay", delay=1.0, count=1)
    start = threading.Barrier(16)
    paths: list[Path] = []

    def fetch() -> None:
        start.wait()
        paths.append(cache.fetch(file))

    threads = [threading.Thread(target=fetch) for _ in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert len(paths) == 16 and len(set(paths)) == 1
    assert fresh_emulator.stats()["requests"]["download"] == 1
    client.close()


def test_callers_waiting_for_a_failed_flight_all_see_its_error_and_the_next_call_retries() -> None:
    flight: SingleFlight[str, int] = SingleFlight()
    gate = threading.Event()
    runs: list[str] = []
    outcomes: list[object] = []

    def failing_download() -> int:
        runs.append("leader")
        gate.wait(30)
        raise IntegrityError("bad bytes")

    def call(fn: Callable[[], int]) -> None:
        try:
            outcomes.append(flight.do("blob", fn))
        except IntegrityError as error:
            outcomes.append(error)

    leader = threading.Thread(target=call, args=(failing_download,))
    leader.start()
    wait_for(lambda: runs, what="the first call to start")

    def own_download() -> int:
        runs.append("follower")  # must not happen: followers share the leader's call
        return 0

    followers = [threading.Thread(target=call, args=(own_download,)) for _ in range(5)]
    for thread in followers:
        thread.start()
    wait_for(lambda: flight.waiting("blob") == 5, what="five callers waiting")
    gate.set()
    for thread in [leader, *followers]:
        thread.join(30)
    assert runs == ["leader"]
    assert len(outcomes) == 6 and all(isinstance(o, IntegrityError) for o in outcomes)
    assert flight.waiting("blob") == 0
    assert flight.do("blob", lambda: 42) == 42  # a failure is not remembered


def test_file_still_uploading_is_not_ready_without_a_request(
    emulator: Emulator, client: JuliaHubClient, tmp_path: Path
) -> None:
    file = result_job(emulator, client, uploading=True)
    assert not file.is_uploaded
    cache = FileCache(client, tmp_path)
    before = downloads(emulator)
    with pytest.raises(FileNotReadyError):
        cache.fetch(file)
    assert cache.cached(file) is None
    assert downloads(emulator) == before


def test_leftovers_of_a_dead_process_are_removed_at_start(
    emulator: Emulator, client: JuliaHubClient, tmp_path: Path
) -> None:
    FileCache(client, tmp_path)
    dead = tmp_path / "tmp" / "999999999.abc.part"  # beyond pid_max: no such process
    live = tmp_path / "tmp" / f"{os.getpid()}.def.part"  # a download of a mount still running
    dead.write_bytes(b"partial")
    live.write_bytes(b"partial")
    FileCache(client, tmp_path)
    assert not dead.exists()
    assert live.exists()


def test_hashing_writer_follows_restarts_and_odd_writes(tmp_path: Path) -> None:
    def digest_of(steps: list[tuple[str, object]]) -> tuple[bytes, bytes]:
        fd = os.open(tmp_path / "f", os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o600)
        writer = _HashingWriter(fd)
        for op, arg in steps:
            if op == "write":
                assert isinstance(arg, bytes)
                writer.write(arg)
            elif op == "seek":
                assert isinstance(arg, int)
                writer.seek(arg)
            elif op == "truncate":
                writer.truncate()
        digest = writer.digest()
        writer.close()
        os.close(fd)
        return digest, hashlib.sha256((tmp_path / "f").read_bytes()).digest()

    # Restart from zero (the client's fallback when Range is not honoured).
    digest, on_disk = digest_of(
        [("write", b"bad start"), ("seek", 0), ("truncate", None), ("write", b"good bytes")]
    )
    assert digest == on_disk == hashlib.sha256(b"good bytes").digest()
    # Resume where it stopped (Range honoured).
    digest, on_disk = digest_of([("write", b"abc"), ("seek", 3), ("write", b"def")])
    assert digest == on_disk == hashlib.sha256(b"abcdef").digest()
    # Rewriting bytes already hashed: the digest still describes the file.
    digest, on_disk = digest_of([("write", b"abcdef"), ("seek", 2), ("write", b"XY")])
    assert digest == on_disk == hashlib.sha256(b"abXYef").digest()
    # A bytearray the caller reuses afterwards is hashed as it was written.
    buffer = bytearray(b"12345")
    fd = os.open(tmp_path / "g", os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o600)
    writer = _HashingWriter(fd)
    writer.write(buffer)
    buffer[:] = b"zzzzz"
    assert writer.digest() == hashlib.sha256(b"12345").digest()
    writer.close()
    os.close(fd)
