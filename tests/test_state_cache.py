"""The file cache's bounds and checks against the emulator, without a mount: size
and LRU eviction, blobs checked on first use, bounded workers, unmount and resume."""

from __future__ import annotations

import functools
import hashlib
import os
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import Emulator, wait_for
from test_state_files import file_cache

from jhfs.client import JobFile, JuliaHubClient, TokenSource
from jhfs.state import cachesize, partial
from jhfs.state import download as download_module
from jhfs.state import files as files_module
from jhfs.state.cachedir import durable_rename
from jhfs.state.cachesize import CacheSpace
from jhfs.state.download import Download
from jhfs.state.errors import IntegrityError, ShuttingDownError
from jhfs.state.files import FileCache
from jhfs.state.pools import CONNECTION_WORKERS, HASH_WORKERS, WorkerPool

MIB = 1 << 20


@pytest.fixture
def client(fresh_emulator: Emulator) -> Iterator[JuliaHubClient]:
    c = JuliaHubClient(fresh_emulator.url, TokenSource(token=fresh_emulator.token))
    yield c
    c.close()


def result_files(emulator: Emulator, client: JuliaHubClient, sizes: list[int]) -> list[JobFile]:
    """One finished job with a result file of its own content per size."""
    specs = [
        {"type": "result", "name": f"f{i}.bin", "size": size, "seed": 100 + i}
        for i, size in enumerate(sizes)
    ]
    job = client.job(emulator.create_finished(status="Completed", files=specs))
    assert job is not None
    return sorted(job.files, key=lambda f: int(f.name[1:-4]))


def downloads(emulator: Emulator) -> int:
    return int(emulator.stats()["requests"].get("download", 0))


def read_all(download: Download) -> bytes:
    out = bytearray()
    buf = bytearray(MIB)
    while count := download.readinto(memoryview(buf), len(out)):
        out += buf[:count]
    return bytes(out)


def fetch(cache: FileCache, file: JobFile) -> bytes:
    """The whole file as an open would read it: from its checked blob, else its download."""
    blob = cache.open_blob(file)
    if blob is not None:
        try:
            return os.pread(blob.fd, file.size + 1, 0)
        finally:
            blob.close()
    download = cache.download(file)
    assert download is not None
    try:
        return read_all(download)
    finally:
        cache.release(download)


def blob_path(cache_dir: Path, file: JobFile) -> Path:
    assert file.hash.digest is not None
    return cache_dir / "blobs" / file.hash.digest.hex()


def cached(cache: FileCache, file: JobFile) -> None:
    """Read `file` whole and wait until the cache trusts its blob (its download
    ends just after the last read)."""
    assert hashlib.sha256(fetch(cache, file)).digest() == file.hash.digest

    def trusted() -> bool:
        blob = cache.open_blob(file)
        if blob is not None:
            blob.close()
        return blob is not None

    wait_for(trusted, what="the blob")


def age(cache_dir: Path, *files: JobFile) -> None:
    """Make blobs the least recently used (their mtime the epoch)."""
    for file in files:
        os.utime(blob_path(cache_dir, file), ns=(0, 0))


def stored(cache_dir: Path) -> int:
    """Bytes of the files the size limit counts."""
    return sum(
        entry.stat().st_size
        for name in ("blobs", "logs", "partial")
        if (cache_dir / name).exists()
        for entry in (cache_dir / name).iterdir()
    )


def threads_named(prefix: str) -> int:
    return sum(1 for t in threading.enumerate() if t.name.startswith(prefix))


def no_other_workers() -> None:
    """Let the workers of caches that earlier tests left unclosed end (idle, they do)."""
    wait_for(lambda: threads_named("jhfs-") == 0, what="other caches' workers to end")


# -- size and eviction ------------------------------------------------------------------


def test_space_evicts_least_recently_used_first_and_skips_files_in_use(tmp_path: Path) -> None:
    directory = tmp_path / "blobs"
    directory.mkdir()
    for age, name in enumerate(["old", "middle", "new"]):
        path = directory / name
        path.write_bytes(b"x" * 100)
        os.utime(path, ns=(age * 10**9, age * 10**9))
    in_use = {"old"}
    evicted: list[str] = []

    def evict(path: Path) -> bool:
        if path.name in in_use:
            return False
        path.unlink()
        evicted.append(path.name)
        return True

    space = CacheSpace([directory, tmp_path / "logs"], 300, evict)  # logs/ does not exist
    assert space.used == 300 and evicted == []
    space.make_room(100)  # "old" is in use: the next oldest goes
    assert evicted == ["middle"]
    assert space.used == 200
    space.reserve(150)
    space.make_room(0)  # over by 50: "new" goes, "old" stays in use
    assert evicted == ["middle", "new"]
    assert space.used == 250 and not space.over()
    space.max_size = 200
    in_use.clear()
    space.make_room(0)
    assert evicted == ["middle", "new", "old"]


def test_space_keeps_the_file_system_below_its_fill_limit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "blob").write_bytes(b"x" * 4096)
    fs = os.statvfs(tmp_path)
    filled = 1 - fs.f_bavail / fs.f_blocks
    # The file system is already past the limit: whatever may go, goes.
    monkeypatch.setattr(cachesize, "MAX_FILL", filled / 2)
    evicted: list[Path] = []

    def evict(path: Path) -> bool:
        evicted.append(path)
        path.unlink()
        return True

    space = CacheSpace([tmp_path], 10**12, evict)
    assert evicted == [tmp_path / "blob"]
    assert space.used == 0


def test_the_cache_stays_within_its_size_and_reads_stay_right(
    fresh_emulator: Emulator, client: JuliaHubClient, tmp_path: Path
) -> None:
    files = result_files(fresh_emulator, client, [2 * MIB] * 6)
    cache = file_cache(client, tmp_path, max_size=5 * MIB)
    for file in files:
        cached(cache, file)
        assert stored(tmp_path) <= 5 * MIB
    kept = [f for f in files if blob_path(tmp_path, f).exists()]
    assert len(kept) == 2 and kept[-1] is files[-1]
    # An evicted file is downloaded again, right.
    before = downloads(fresh_emulator)
    assert hashlib.sha256(fetch(cache, files[0])).digest() == files[0].hash.digest
    assert downloads(fresh_emulator) == before + 1
    cache.close()


def test_an_open_blob_is_not_evicted_and_recency_counts_opens(
    fresh_emulator: Emulator, client: JuliaHubClient, tmp_path: Path
) -> None:
    files = result_files(fresh_emulator, client, [2 * MIB] * 4)
    cache = file_cache(client, tmp_path, max_size=5 * MIB)
    cached(cache, files[0])
    cached(cache, files[1])
    held = cache.open_blob(files[0])
    assert held is not None
    age(tmp_path, files[0])  # the oldest, but open
    cached(cache, files[2])  # room for it: files[1] goes, not the open files[0]
    assert blob_path(tmp_path, files[0]).exists()
    assert not blob_path(tmp_path, files[1]).exists()
    held.close()
    age(tmp_path, files[0], files[2])
    fetch(cache, files[0])  # an open counts as use: files[2] is now the oldest
    cached(cache, files[3])
    assert blob_path(tmp_path, files[0]).exists()
    assert not blob_path(tmp_path, files[2]).exists()
    cache.close()


def test_a_file_larger_than_the_limit_is_served_and_goes_when_closed(
    fresh_emulator: Emulator, client: JuliaHubClient, tmp_path: Path
) -> None:
    (big,) = result_files(fresh_emulator, client, [3 * MIB])
    cache = file_cache(client, tmp_path, max_size=2 * MIB)
    download = cache.download(big)
    assert download is not None
    assert hashlib.sha256(read_all(download)).digest() == big.hash.digest
    wait_for(blob_path(tmp_path, big).exists, what="the blob, kept while it is read")
    cache.release(download)
    # The download's end (on a worker, after the rename) may come after the release.
    wait_for(lambda: not blob_path(tmp_path, big).exists(), what="the blob to go")
    assert stored(tmp_path) == 0
    cache.close()


def test_finished_logs_are_evicted_unless_in_use(
    fresh_emulator: Emulator, client: JuliaHubClient, tmp_path: Path
) -> None:
    logs = tmp_path / "logs"
    logs.mkdir()
    for name in ("a.log", "b.log"):
        (logs / name).write_bytes(b"line\n" * 200_000)  # 1 MB each
        os.utime(logs / name, ns=(0, 0))  # older than any blob
    (file,) = result_files(fresh_emulator, client, [2 * MIB])
    cache = FileCache(
        client,
        tmp_path,
        max_size=3 * MIB,
        log_in_use=lambda path: path.name == "a.log",
        on_missing=lambda jobname: None,
    )
    cached(cache, file)
    assert (logs / "a.log").exists()
    assert not (logs / "b.log").exists()
    cache.close()


def test_partial_downloads_count_against_the_size_and_are_evicted_like_blobs(
    fresh_emulator: Emulator, client: JuliaHubClient, tmp_path: Path
) -> None:
    files = result_files(fresh_emulator, client, [2 * MIB] * 2)
    fresh_emulator.fault(endpoint="download", mode="throttle", rate=4_000_000)
    cache = file_cache(client, tmp_path, max_size=3 * MIB)
    download = cache.download(files[0])
    assert download is not None
    assert download.readinto(memoryview(bytearray(100)), 0) == 100
    cache.close()  # kept as a partial download
    assert files[0].hash.digest is not None
    kept = tmp_path / "partial" / files[0].hash.digest.hex()
    assert kept.exists()
    os.utime(kept, ns=(0, 0))
    fresh_emulator.admin("DELETE", "faults")
    later = file_cache(client, tmp_path, max_size=3 * MIB)
    cached(later, files[1])  # 2 MiB more would not fit with the partial's 2 MiB
    assert not kept.exists()
    assert stored(tmp_path) <= 3 * MIB
    later.close()


# -- checks of cached blobs -------------------------------------------------------------


def test_a_cut_blob_is_deleted_at_open_and_downloaded_again(
    fresh_emulator: Emulator, client: JuliaHubClient, tmp_path: Path
) -> None:
    (file,) = result_files(fresh_emulator, client, [3 * MIB])
    cached(file_cache(client, tmp_path), file)
    os.truncate(blob_path(tmp_path, file), MIB)
    cache = file_cache(client, tmp_path)
    before = downloads(fresh_emulator)
    download = cache.download(file)
    assert download is not None and not download.checking
    assert hashlib.sha256(read_all(download)).digest() == file.hash.digest
    cache.release(download)
    assert downloads(fresh_emulator) > before
    blob = blob_path(tmp_path, file)
    wait_for(lambda: blob.exists() and blob.stat().st_size == file.size, what="the new blob")
    cache.close()


@pytest.mark.parametrize("strict", [False, True])
def test_a_flipped_byte_in_a_blob_fails_its_reads_and_deletes_it(
    fresh_emulator: Emulator, client: JuliaHubClient, tmp_path: Path, strict: bool
) -> None:
    (file,) = result_files(fresh_emulator, client, [3 * MIB])
    cached(file_cache(client, tmp_path), file)
    path = blob_path(tmp_path, file)
    with path.open("r+b") as blob:
        blob.seek(file.size // 2)
        byte = blob.read(1)
        blob.seek(file.size // 2)
        blob.write(bytes([byte[0] ^ 0xFF]))
    cache = file_cache(client, tmp_path, strict=strict)
    before = downloads(fresh_emulator)
    check = cache.download(file)
    assert check is not None and check.checking
    head = bytearray(100)
    if strict:  # not one byte before the hash matched
        with pytest.raises(IntegrityError):
            check.readinto(memoryview(head), 0)
    else:  # the head is served at once; the end never
        assert check.readinto(memoryview(head), 0) == 100
        with pytest.raises(IntegrityError):
            read_all(check)
    with pytest.raises(IntegrityError):  # and every later read of it
        check.readinto(memoryview(head), 0)
    cache.release(check)
    assert not path.exists()
    assert downloads(fresh_emulator) == before  # a check asks the server nothing
    assert cache.forget_failure(file)  # the kernel drops the pages it may hold
    assert hashlib.sha256(fetch(cache, file)).digest() == file.hash.digest
    assert downloads(fresh_emulator) == before + 1
    cache.close()


def test_a_blob_is_checked_once_per_mount_by_many_readers(
    fresh_emulator: Emulator, client: JuliaHubClient, tmp_path: Path
) -> None:
    (file,) = result_files(fresh_emulator, client, [20 * MIB])
    cached(file_cache(client, tmp_path), file)
    cache = file_cache(client, tmp_path)
    checks: list[Download] = []
    for _ in range(8):
        check = cache.download(file)
        assert check is not None
        checks.append(check)
    assert all(check is checks[0] for check in checks)
    contents: list[bytes] = []
    readers = [
        threading.Thread(target=lambda: contents.append(read_all(checks[0]))) for _ in range(8)
    ]
    for reader in readers:
        reader.start()
    for reader in readers:
        reader.join(60)
    assert len(contents) == 8
    assert {hashlib.sha256(c).digest() for c in contents} == {file.hash.digest}
    for check in checks:
        cache.release(check)
    blob = cache.open_blob(file)  # trusted from now on: no second check
    assert blob is not None
    blob.close()
    cache.close()


# -- bounded work ----------------------------------------------------------------------


def test_many_slow_downloads_share_a_bounded_number_of_workers(
    fresh_emulator: Emulator, client: JuliaHubClient, tmp_path: Path
) -> None:
    files = result_files(fresh_emulator, client, [300_000] * 40)
    fresh_emulator.fault(endpoint="download", mode="throttle", rate=1_000_000)
    no_other_workers()
    cache = file_cache(client, tmp_path)
    before = threading.active_count()
    started = [cache.download(file) for file in files]
    most = [0]

    def all_done() -> bool:
        most[0] = max(most[0], threads_named("jhfs-download"))
        assert threads_named("jhfs-sha256") <= HASH_WORKERS
        return all(blob_path(tmp_path, file).exists() for file in files)

    wait_for(all_done, timeout=60, what="every download")
    assert most[0] == CONNECTION_WORKERS  # busy, and no more
    assert threading.active_count() - before <= CONNECTION_WORKERS + HASH_WORKERS
    for download, file in zip(started, files, strict=True):
        assert download is not None
        assert hashlib.sha256(read_all(download)).digest() == file.hash.digest
        cache.release(download)
    cache.close()


# -- unmount and resume ----------------------------------------------------------------


@pytest.mark.parametrize("later_streams", [4, 1])
def test_close_lets_waiting_reads_go_and_keeps_the_bytes_for_the_next_mount(
    fresh_emulator: Emulator, client: JuliaHubClient, tmp_path: Path, later_streams: int
) -> None:
    (file,) = result_files(fresh_emulator, client, [24 * MIB])
    fresh_emulator.fault(endpoint="download", mode="throttle", rate=4_000_000)
    no_other_workers()
    cache = file_cache(client, tmp_path)
    download = cache.download(file)
    assert download is not None
    outcome: list[BaseException] = []

    def read_the_end() -> None:
        try:
            download.readinto(memoryview(bytearray(10)), file.size - 10)
        except ShuttingDownError as exc:
            outcome.append(exc)

    reader = threading.Thread(target=read_the_end)
    reader.start()
    wait_for(lambda: fresh_emulator.bytes_sent() > 4 * MIB, what="the download to run")
    cache.close()
    reader.join(10)
    assert not reader.is_alive() and len(outcome) == 1
    wait_for(lambda: threads_named("jhfs-") == 0, what="the workers to stop")
    sent = fresh_emulator.settled_bytes_sent()
    assert file.hash.digest is not None
    assert os.listdir(tmp_path / "partial") == [file.hash.digest.hex()]
    assert os.listdir(tmp_path / "tmp") == []

    # The next mount (after a stale-temp cleaning) resumes: only the rest is sent,
    # also when it cuts the file into other chunks (one stream: one chunk).
    fresh_emulator.admin("DELETE", "faults")
    later = file_cache(client, tmp_path, streams=later_streams)
    assert hashlib.sha256(fetch(later, file)).digest() == file.hash.digest
    resent = fresh_emulator.settled_bytes_sent() - sent
    assert resent < file.size - 2 * MIB
    assert os.listdir(tmp_path / "partial") == []
    later.close()


def test_close_right_after_the_last_read_waits_for_the_blob_to_be_kept(
    fresh_emulator: Emulator,
    client: JuliaHubClient,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The last read returns once the hash matched, before the fsync and the
    # rename; the process ends right after close(), and its workers with it.
    monkeypatch.setattr(files_module, "STOP_TIMEOUT", 60.0)
    renaming, disk = threading.Event(), threading.Event()

    def slow_disk_rename(src: Path, dst: Path) -> None:
        renaming.set()
        disk.wait(60)
        durable_rename(src, dst)

    monkeypatch.setattr(download_module, "durable_rename", slow_disk_rename)
    (file,) = result_files(fresh_emulator, client, [3 * MIB])
    cache = file_cache(client, tmp_path)
    download = cache.download(file)
    assert download is not None
    assert hashlib.sha256(read_all(download)).digest() == file.hash.digest
    cache.release(download)
    closer = threading.Thread(target=cache.close)
    closer.start()
    wait_for(renaming.is_set, what="the rename to start")
    assert closer.is_alive()  # close() waits for it
    disk.set()
    closer.join(60)
    assert blob_path(tmp_path, file).stat().st_size == file.size


def test_a_paused_download_beyond_the_limit_is_kept_on_disk_and_resumed(
    fresh_emulator: Emulator, client: JuliaHubClient, tmp_path: Path
) -> None:
    files = result_files(fresh_emulator, client, [2 * MIB] * 5)
    fresh_emulator.fault(endpoint="download", mode="throttle", rate=2_000_000)
    cache = file_cache(client, tmp_path)
    first = cache.download(files[0])
    assert first is not None
    assert first.readinto(memoryview(bytearray(100)), 0) == 100
    cache.release(first)  # paused
    wait_for(lambda: first.idle, what="the first download to pause")
    for file in files[1:]:  # four more paused: the first is stopped for good
        download = cache.download(file)
        assert download is not None
        cache.release(download)
        wait_for(lambda: download.idle, what="the download to pause")  # noqa: B023
    assert files[0].hash.digest is not None
    key = files[0].hash.digest.hex()
    wait_for(lambda: key in os.listdir(tmp_path / "partial"), what="the first download kept")
    fresh_emulator.admin("DELETE", "faults")
    assert hashlib.sha256(fetch(cache, files[0])).digest() == files[0].hash.digest
    cache.close()


def test_a_partial_download_that_does_not_describe_itself_is_deleted(tmp_path: Path) -> None:
    (tmp_path / "partial").mkdir()
    (tmp_path / "tmp").mkdir()
    (tmp_path / "partial" / "ab").write_bytes(b"\0" * 100 + b"garbage")
    assert partial.claim(tmp_path / "partial", tmp_path / "tmp", "ab", 100) is None
    assert os.listdir(tmp_path / "partial") == []
    assert os.listdir(tmp_path / "tmp") == []
    # A good one is claimed once, by whoever renames it first.
    path = tmp_path / "tmp" / "download"
    fd = os.open(path, os.O_RDWR | os.O_CREAT)
    os.pwrite(fd, b"y" * 40, 0)
    partial.park(fd, path, tmp_path / "partial", "cd", 100, [(0, 40)])
    os.close(fd)
    claimed = partial.claim(tmp_path / "partial", tmp_path / "tmp", "cd", 100)
    assert claimed is not None and claimed.ranges == [(0, 40)]
    assert os.pread(claimed.fd, 200, 0) == b"y" * 40 + b"\0" * 60
    os.close(claimed.fd)
    assert partial.claim(tmp_path / "partial", tmp_path / "tmp", "cd", 100) is None


def test_a_pool_runs_every_task_on_at_most_its_workers_in_order_and_then_ends() -> None:
    pool = WorkerPool("jhfs-test", 4)
    gate = threading.Event()
    started: list[int] = []

    def task(number: int) -> None:
        started.append(number)
        gate.wait(30)

    for number in range(20):
        assert pool.submit(functools.partial(task, number))
    wait_for(lambda: len(started) == 4, what="four tasks running")
    assert threads_named("jhfs-test") == 4
    assert sorted(started) == [0, 1, 2, 3]  # the first ones queued
    gate.set()
    wait_for(lambda: len(started) == 20, what="every task")
    assert sorted(started) == list(range(20))
    pool.shutdown()
    assert not pool.submit(lambda: None)
    wait_for(lambda: threads_named("jhfs-test") == 0, what="the workers to end")
