"""The verified file cache and its downloads against the emulator: the read rule,
hashing, faults, parallel ranges, pause and resume, single flight."""

from __future__ import annotations

import base64
import hashlib
import logging
import os
import stat
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import Emulator, wait_for

from jhfs.client import (
    JobFile,
    JuliaHubClient,
    ListedButMissingError,
    ServerUnreachableError,
    TokenSource,
    TransferCancelled,
)
from jhfs.state import download as download_module
from jhfs.state.cachedir import temp_file
from jhfs.state.download import CHUNK_SIZE, Download
from jhfs.state.errors import FileNotReadyError, IntegrityError
from jhfs.state.files import FileCache
from jhfs.state.flight import SingleFlight


def file_cache(client: JuliaHubClient, cache_dir: Path, **options: Any) -> FileCache:
    """A FileCache as a mount makes it; no finished log is open."""
    options.setdefault("on_missing", lambda jobname: None)
    return FileCache(client, cache_dir, log_in_use=lambda path: False, **options)


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


def blob_bytes(cache: FileCache, file: JobFile) -> bytes | None:
    """The checked blob's bytes, or None when this cache has not checked one."""
    blob = cache.open_blob(file)
    if blob is None:
        return None
    try:
        return os.pread(blob.fd, file.size + 1, 0)
    finally:
        blob.close()


def read_from(download: Download, offset: int, size: int) -> bytes:
    buf = bytearray(size)
    count = download.readinto(memoryview(buf), offset)
    return bytes(buf[:count])


def read_all(download: Download, piece: int = 1 << 20) -> bytes:
    out = bytearray()
    while data := read_from(download, len(out), piece):
        out += data
    return bytes(out)


def fetch(cache: FileCache, file: JobFile) -> bytes:
    """Read the whole file through its download, as an open file would."""
    download = cache.download(file)
    assert download is not None
    try:
        return read_all(download)
    finally:
        cache.release(download)


def test_download_verifies_publishes_the_blob_and_is_reused(
    emulator: Emulator, client: JuliaHubClient, tmp_path: Path
) -> None:
    content = b"some result bytes\n" * 1000
    file = result_job(emulator, client, content=base64.b64encode(content).decode())
    cache_dir = tmp_path / "cache" / "server"
    cache = file_cache(client, cache_dir)
    assert cache.open_blob(file) is None
    before = downloads(emulator)

    assert fetch(cache, file) == content
    blob = cache_dir / "blobs" / hashlib.sha256(content).hexdigest()
    wait_for(blob.exists, what="the verified blob")
    assert blob.read_bytes() == content
    assert mode(blob) == 0o600
    for directory in (cache_dir, cache_dir / "blobs", cache_dir / "tmp"):
        assert mode(directory) == 0o700
    # Trusted by this cache once the download has ended (just after the rename).
    wait_for(lambda: blob_bytes(cache, file) == content, what="the blob checked")
    # A later mount of the same cache directory finds it too, and checks it
    # once before trusting it.
    later = file_cache(client, cache_dir)
    assert blob_bytes(later, file) is None
    check = later.download(file)
    assert check is not None and check.checking
    assert read_all(check) == content
    later.release(check)
    assert blob_bytes(later, file) == content
    assert downloads(emulator) == before + 1
    wait_for(lambda: os.listdir(cache_dir / "tmp") == [], what="no temporary file")


def test_bytes_are_readable_while_they_arrive_but_the_end_waits_for_the_hash(
    fresh_emulator: Emulator, tmp_path: Path
) -> None:
    client = JuliaHubClient(fresh_emulator.url, TokenSource(token=fresh_emulator.token))
    size = 2_000_000
    file = result_job(fresh_emulator, client, size=size, seed=3)
    fresh_emulator.fault(endpoint="download", mode="throttle", rate=1_000_000)
    cache = file_cache(client, tmp_path)
    download = cache.download(file)
    assert download is not None
    first = read_from(download, 0, 1000)
    assert len(first) == 1000
    assert fresh_emulator.bytes_sent() < size  # served before the whole file had arrived
    assert cache.open_blob(file) is None
    rest = read_all(download)
    # The read that returned the last bytes came after every byte arrived and matched.
    assert fresh_emulator.bytes_sent() >= size
    assert hashlib.sha256(rest).digest() == file.hash.digest
    assert rest[:1000] == first
    cache.release(download)
    client.close()


def test_strict_mode_serves_nothing_before_the_whole_file_matched(
    fresh_emulator: Emulator, tmp_path: Path
) -> None:
    client = JuliaHubClient(fresh_emulator.url, TokenSource(token=fresh_emulator.token))
    size = 1_000_000
    file = result_job(fresh_emulator, client, size=size, seed=4)
    fresh_emulator.fault(endpoint="download", mode="throttle", rate=2_000_000)
    download = file_cache(client, tmp_path, strict=True).download(file)
    assert download is not None
    assert len(read_from(download, 0, 100)) == 100
    assert fresh_emulator.bytes_sent() >= size
    download.detach()
    client.close()


def test_a_corrupt_download_fails_every_read_of_it_once_and_the_next_open_downloads_again(
    fresh_emulator: Emulator, tmp_path: Path
) -> None:
    client = JuliaHubClient(fresh_emulator.url, TokenSource(token=fresh_emulator.token))
    file = result_job(fresh_emulator, client, size=3 << 20)
    cache = file_cache(client, tmp_path)
    fresh_emulator.fault(endpoint="download", mode="corrupt", count=1)
    download = cache.download(file)
    assert download is not None
    with pytest.raises(IntegrityError):
        read_all(download)
    # The reader's retries and any other read of this download fail at once.
    for offset in (0, file.size - 10):
        with pytest.raises(IntegrityError):
            read_from(download, offset, 10)
    cache.release(download)
    assert downloads(fresh_emulator) == 1
    assert os.listdir(tmp_path / "blobs") == []
    wait_for(lambda: os.listdir(tmp_path / "tmp") == [], what="the bad bytes to be deleted")

    assert hashlib.sha256(fetch(cache, file)).digest() == file.hash.digest
    assert downloads(fresh_emulator) == 2
    client.close()


def test_a_404_for_a_listed_file_is_a_server_error_that_the_registry_hears_of(
    fresh_emulator: Emulator, tmp_path: Path
) -> None:
    client = JuliaHubClient(fresh_emulator.url, TokenSource(token=fresh_emulator.token))
    file = result_job(fresh_emulator, client, size=1000)
    missing: list[str] = []
    cache = file_cache(client, tmp_path, on_missing=missing.append)
    fresh_emulator.fault(endpoint="download", mode="status", status=404, count=1)
    download = cache.download(file)
    assert download is not None
    with pytest.raises(ListedButMissingError):
        read_all(download)
    cache.release(download)
    wait_for(lambda: missing == [file.jobname], what="the registry to hear of it")
    client.close()


@pytest.mark.parametrize("fault", ["truncate", "reset"])
def test_interrupted_download_is_completed_with_the_right_bytes(
    fresh_emulator: Emulator, tmp_path: Path, fault: str
) -> None:
    client = JuliaHubClient(fresh_emulator.url, TokenSource(token=fresh_emulator.token))
    file = result_job(fresh_emulator, client, size=5 << 20, seed=7)
    fresh_emulator.fault(endpoint="download", mode=fault, count=1)
    content = fetch(file_cache(client, tmp_path), file)
    assert len(content) == 5 << 20
    assert hashlib.sha256(content).digest() == file.hash.digest
    assert fresh_emulator.stats()["requests"]["download"] == 2  # cut, then the rest
    client.close()


def test_a_large_file_on_a_slow_connection_comes_in_ranges_over_parallel_connections(
    fresh_emulator: Emulator, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    client = JuliaHubClient(fresh_emulator.url, TokenSource(token=fresh_emulator.token))
    size = 5 * CHUNK_SIZE + 12345
    file = result_job(fresh_emulator, client, size=size, seed=8)
    # Throttled per connection, as storage services do: more connections help.
    fresh_emulator.fault(endpoint="download", mode="throttle", rate=20_000_000)
    before = fresh_emulator.bytes_sent()
    with caplog.at_level(logging.DEBUG, logger="jhfs.state.download"):
        content = fetch(file_cache(client, tmp_path, streams=4), file)
    assert hashlib.sha256(content).digest() == file.hash.digest
    assert downloads(fresh_emulator) == 6  # one request per chunk
    assert fresh_emulator.bytes_sent() - before == size
    assert "MB/s; opening 3 more" in caplog.text
    client.close()


def test_a_fast_connection_stays_alone(
    fresh_emulator: Emulator,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Whatever this machine's load, the first connection counts as fast.
    monkeypatch.setattr(download_module, "FAST_CONNECTION", 1)
    client = JuliaHubClient(fresh_emulator.url, TokenSource(token=fresh_emulator.token))
    size = 3 * CHUNK_SIZE
    file = result_job(fresh_emulator, client, size=size, seed=13)
    with caplog.at_level(logging.DEBUG, logger="jhfs.state.download"):
        content = fetch(file_cache(client, tmp_path, streams=4), file)
    assert hashlib.sha256(content).digest() == file.hash.digest
    assert downloads(fresh_emulator) == 3  # the ranges, one after the other
    assert "MB/s; it stays alone" in caplog.text
    assert "opening" not in caplog.text
    client.close()


def test_a_server_that_ignores_range_gets_one_stream(
    fresh_emulator: Emulator, tmp_path: Path
) -> None:
    client = JuliaHubClient(fresh_emulator.url, TokenSource(token=fresh_emulator.token))
    size = 3 * CHUNK_SIZE
    file = result_job(fresh_emulator, client, size=size, seed=9)
    fresh_emulator.fault(endpoint="download", mode="no_range")
    before = fresh_emulator.bytes_sent()
    content = fetch(file_cache(client, tmp_path, streams=4), file)
    assert hashlib.sha256(content).digest() == file.hash.digest
    assert downloads(fresh_emulator) == 1
    assert fresh_emulator.bytes_sent() - before == size
    client.close()


def test_a_server_that_stops_answering_ranges_midway_gets_one_stream_from_what_is_there(
    fresh_emulator: Emulator, tmp_path: Path
) -> None:
    client = JuliaHubClient(fresh_emulator.url, TokenSource(token=fresh_emulator.token))
    size = 5 * CHUNK_SIZE
    file = result_job(fresh_emulator, client, size=size, seed=14)
    fresh_emulator.fault(endpoint="download", mode="throttle", rate=10_000_000)
    before = fresh_emulator.bytes_sent()
    download = file_cache(client, tmp_path, streams=4).download(file)
    assert download is not None
    wait_for(lambda: fresh_emulator.bytes_sent() - before > 2 * CHUNK_SIZE, what="ranges in flight")
    fresh_emulator.fault(endpoint="download", mode="no_range")
    # The ranges in flight finish; the next request gets the whole file, and
    # only the bytes after the contiguous prefix are written from it.
    assert hashlib.sha256(read_all(download)).digest() == file.hash.digest
    download.detach()
    client.close()


def test_the_last_reader_leaving_stops_the_download_and_the_next_resumes_it(
    fresh_emulator: Emulator, tmp_path: Path
) -> None:
    client = JuliaHubClient(fresh_emulator.url, TokenSource(token=fresh_emulator.token))
    size = 3 * CHUNK_SIZE
    file = result_job(fresh_emulator, client, size=size, seed=10)
    fresh_emulator.fault(endpoint="download", mode="throttle", rate=2_000_000)
    cache = file_cache(client, tmp_path, streams=3)
    before = fresh_emulator.bytes_sent()
    download = cache.download(file)
    assert download is not None
    assert len(read_from(download, 0, 100)) == 100
    cache.release(download)
    stopped_at = fresh_emulator.settled_bytes_sent() - before
    assert stopped_at < size
    assert cache.open_blob(file) is None

    fresh_emulator.admin("DELETE", "faults")
    assert hashlib.sha256(fetch(cache, file)).digest() == file.hash.digest
    # Resumed from the bytes it had, not from 0: at most what was in flight
    # on the connections when they stopped was sent twice.
    assert size <= fresh_emulator.settled_bytes_sent() - before < size + (1 << 20)
    client.close()


def test_a_read_still_waiting_when_the_last_reader_leaves_is_let_go(
    fresh_emulator: Emulator, tmp_path: Path
) -> None:
    # The kernel releases the file of a killed process while its read still
    # waits; that read must end (its thread is needed), not wait forever.
    client = JuliaHubClient(fresh_emulator.url, TokenSource(token=fresh_emulator.token))
    file = result_job(fresh_emulator, client, size=4_000_000, seed=12)
    fresh_emulator.fault(endpoint="download", mode="throttle", rate=500_000)
    download = file_cache(client, tmp_path).download(file)
    assert download is not None
    outcome: list[BaseException] = []

    def read_the_end() -> None:
        try:
            read_from(download, file.size - 10, 10)
        except TransferCancelled as exc:
            outcome.append(exc)

    reader = threading.Thread(target=read_the_end)
    reader.start()
    wait_for(lambda: fresh_emulator.bytes_sent() > 100_000, what="the download to run")
    download.detach()
    reader.join(30)
    assert not reader.is_alive()
    assert len(outcome) == 1
    client.close()


def test_a_remaining_reader_keeps_the_download_going(
    fresh_emulator: Emulator, tmp_path: Path
) -> None:
    client = JuliaHubClient(fresh_emulator.url, TokenSource(token=fresh_emulator.token))
    file = result_job(fresh_emulator, client, size=2_000_000, seed=11)
    fresh_emulator.fault(endpoint="download", mode="throttle", rate=4_000_000)
    cache = file_cache(client, tmp_path)
    staying, leaving = cache.download(file), cache.download(file)
    assert staying is leaving is not None
    cache.release(leaving)
    assert hashlib.sha256(read_all(staying)).digest() == file.hash.digest
    cache.release(staying)
    assert downloads(fresh_emulator) == 1
    client.close()


def test_download_failing_after_retries_fails_its_readers_and_is_retried_later(
    fresh_emulator: Emulator, tmp_path: Path
) -> None:
    client = JuliaHubClient(fresh_emulator.url, TokenSource(token=fresh_emulator.token), retries=1)
    file = result_job(fresh_emulator, client, size=1 << 20)
    cache = file_cache(client, tmp_path)
    fresh_emulator.fault(endpoint="download", mode="reset", count=2)
    download = cache.download(file)
    assert download is not None
    with pytest.raises(ServerUnreachableError):
        read_all(download)
    cache.release(download)
    assert os.listdir(tmp_path / "blobs") == []
    wait_for(lambda: os.listdir(tmp_path / "tmp") == [], what="the partial bytes to go")
    assert len(fetch(cache, file)) == 1 << 20
    client.close()


def test_many_concurrent_readers_make_one_download(
    fresh_emulator: Emulator, tmp_path: Path
) -> None:
    client = JuliaHubClient(fresh_emulator.url, TokenSource(token=fresh_emulator.token))
    file = result_job(fresh_emulator, client, size=8 << 20)
    cache = file_cache(client, tmp_path)
    # A slow start keeps the download in flight while every reader arrives.
    fresh_emulator.fault(endpoint="download", mode="delay", delay=1.0, count=1)
    start = threading.Barrier(16)
    contents: list[bytes] = []

    def read() -> None:
        start.wait()
        contents.append(fetch(cache, file))

    threads = [threading.Thread(target=read) for _ in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert len(contents) == 16 and len(set(contents)) == 1
    assert hashlib.sha256(contents[0]).digest() == file.hash.digest
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
    cache = file_cache(client, tmp_path)
    before = downloads(emulator)
    with pytest.raises(FileNotReadyError):
        cache.download(file)
    assert downloads(emulator) == before


def test_leftovers_of_a_dead_process_are_removed_at_start(
    emulator: Emulator, client: JuliaHubClient, tmp_path: Path
) -> None:
    file_cache(client, tmp_path)
    tmp = tmp_path / "tmp"
    fd, live = temp_file(tmp, ".part")  # a download of a mount still running: this one
    os.close(fd)
    pid, start = live.name.split(".", 1)[0].split("-")
    # The pid is ours, but the file is another process's, which used it before.
    reused = tmp / f"{pid}-{int(start) - 1}.abc.part"
    dead = tmp / "999999999-1.abc.part"  # beyond pid_max: no such process
    old_dead = tmp / "999999999.abc.part"  # named by an older jhfs
    old_live = tmp / f"{pid}.abc.part"
    for path in (reused, dead, old_dead, old_live):
        path.write_bytes(b"partial")
    file_cache(client, tmp_path)
    assert sorted(os.listdir(tmp)) == sorted([live.name, old_live.name])


def test_leftovers_of_a_killed_process_go_while_it_is_still_a_zombie(
    emulator: Emulator, client: JuliaHubClient, tmp_path: Path
) -> None:
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    # A process that made a temporary file, then was killed and not reaped (yet).
    child = subprocess.Popen(
        [sys.executable, "-c",
         "import sys, time; from pathlib import Path; from jhfs.state.cachedir import temp_file; "
         f"temp_file(Path({str(tmp)!r}), '.part'); print('made', flush=True); time.sleep(60)"],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert child.stdout is not None and child.stdout.readline() == "made\n"
        (leftover,) = os.listdir(tmp)
        assert leftover.startswith(f"{child.pid}-")
        child.kill()
        wait_for(lambda: zombie(child.pid), what="the killed process to be a zombie")
        file_cache(client, tmp_path)
        assert os.listdir(tmp) == []
    finally:
        child.kill()
        child.wait()


def zombie(pid: int) -> bool:
    text = Path(f"/proc/{pid}/stat").read_text()
    return text[text.rindex(")") + 2] == "Z"
