"""Job logs against the emulator: complete finished logs on disk, following running jobs."""

from __future__ import annotations

import os
import stat
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import Emulator, wait_for

from jhfs.client import JuliaHubClient, LogPage, ServerError, TokenSource
from jhfs.state.logs import JobLog, LogStore, _file_name
from jhfs.state.registry import JobRegistry


@pytest.fixture
def client(emulator: Emulator) -> Iterator[JuliaHubClient]:
    c = JuliaHubClient(emulator.url, TokenSource(token=emulator.token))
    yield c
    c.close()


@pytest.fixture
def store(client: JuliaHubClient, tmp_path: Path) -> Iterator[LogStore]:
    s = LogStore(client, JobRegistry(client), tmp_path, watch_window=1.0)
    yield s
    s.close()


def log_requests(emulator: Emulator) -> int:
    return int(emulator.stats()["requests"].get("get_logs", 0))


def read_all(log: JobLog) -> bytes:
    parts = []
    offset = 0
    while chunk := log.read(offset, 64 * 1024):
        parts.append(chunk)
        offset += len(chunk)
    return b"".join(parts)


def expect_no_change(probe: object, what: str, window: float = 1.5) -> None:
    """Poll for `window` seconds and fail as soon as `probe()` differs from its first value."""
    assert callable(probe)
    first = probe()
    deadline = time.monotonic() + window
    while time.monotonic() < deadline:
        now = probe()
        assert now == first, f"{what} changed from {first} to {now}"
        time.sleep(0.1)


def synthetic_line(jobname: str, number: int) -> str:
    # The emulator's synthetic log line (jhfs_emulator.logs.SyntheticLog).
    return f"line {number:07d} of {jobname}: step {number} loss={1.0 / number:.6f}"


def test_finished_log_is_fetched_once_in_order_and_kept_on_disk(
    emulator: Emulator, client: JuliaHubClient, store: LogStore, tmp_path: Path
) -> None:
    jobname = emulator.create_finished(status="Completed", log_lines=25_000)
    log = store.log(jobname)
    assert log.size == 0 and not log.complete
    before = log_requests(emulator)

    log.load()
    # The newest page (9,999 lines + bottom marker), a full page, the rest + top marker.
    assert log_requests(emulator) == before + 3
    assert log.complete
    lines = read_all(log).decode().splitlines()
    assert lines == [synthetic_line(jobname, n) for n in range(1, 25_001)]
    assert log.size == sum(len(line) + 1 for line in lines)
    assert log.read(log.size, 100) == b""
    assert log.read(5, 10) == lines[0].encode()[5:15]

    cached = tmp_path / "logs" / f"{jobname}.log"
    assert cached.stat().st_size == log.size
    assert stat.S_IMODE(cached.stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "logs").stat().st_mode) == 0o700
    assert os.listdir(tmp_path / "tmp") == []  # page chunks are gone

    log.load()
    log.open()
    log.release()
    # A later mount serves it from disk without asking.
    later = LogStore(client, JobRegistry(client), tmp_path)
    again = later.log(jobname)
    assert again.complete and again.size == log.size
    again.load()
    assert read_all(again) == read_all(log)
    later.close()
    assert log_requests(emulator) == before + 3
    assert not log.following


def test_empty_finished_log(emulator: Emulator, store: LogStore) -> None:
    log = store.log(emulator.create_finished(status="Failed", log_lines=0))
    log.load()
    assert log.complete and log.size == 0 and log.read(0, 10) == b""


def test_running_log_grows_while_watched_and_stops_when_done(
    emulator: Emulator, store: LogStore, tmp_path: Path
) -> None:
    jobname = emulator.submit(
        "i=0; while [ $i -lt 30 ]; do i=$((i+1)); echo tick $i; sleep 0.1; done"
    )
    log = store.log(jobname)
    log.load()
    log.open()
    wait_for(lambda: b"tick 5\n" in read_all(log), timeout=20, what="tick 5 in the log")
    assert not log.complete
    wait_for(lambda: log.complete, timeout=30, what="the log to be complete")
    assert read_all(log).decode().splitlines() == [f"tick {i}" for i in range(1, 31)]
    assert (tmp_path / "logs" / f"{jobname}.log").stat().st_size == log.size
    wait_for(lambda: not log.following, timeout=10, what="the follower to stop")
    log.release()
    before = log_requests(emulator)
    expect_no_change(lambda: log_requests(emulator), "get_logs requests", window=1.0)
    assert log_requests(emulator) == before


def test_no_background_requests_once_nobody_watches(
    emulator: Emulator, client: JuliaHubClient, store: LogStore
) -> None:
    jobname = emulator.submit("while true; do echo tick; sleep 0.2; done")
    try:
        log = store.log(jobname)
        log.load()
        log.open()
        grown = log.size
        wait_for(lambda: log.size > grown + 10, timeout=20, what="the log to grow")
        log.release()  # watch_window is 1 s in this fixture
        wait_for(lambda: not log.following, timeout=10, what="the follower to stop")
        size = log.size
        expect_no_change(lambda: (log_requests(emulator), log.size), "requests and size")
        assert log.size == size

        # Reading again (an open or a read) brings it up to date and follows again.
        log.load()
        assert log.size > size
        log.watch()
        assert log.following
    finally:
        client.kill_job(jobname)


def test_read_past_the_end_is_end_of_file(emulator: Emulator, store: LogStore) -> None:
    # How fast it returns is scripts/bench's "log read past the end" row.
    jobname = emulator.create_finished(status="Running", log_lines=10)
    log = store.log(jobname)
    log.load()
    assert not log.complete
    assert log.read(log.size, 4096) == b""
    assert log.read(log.size + 10_000, 4096) == b""
    assert read_all(log).count(b"\n") == 10


def test_close_stops_followers(emulator: Emulator, client: JuliaHubClient, tmp_path: Path) -> None:
    jobname = emulator.submit("while true; do echo tick; sleep 0.2; done")
    store = LogStore(client, JobRegistry(client), tmp_path)
    try:
        log = store.log(jobname)
        log.load()
        log.open()
        assert log.following
        store.close()
        assert not log.following
        log.watch()  # a closed store starts no new follower
        assert not log.following
        before = log_requests(emulator)
        expect_no_change(lambda: log_requests(emulator), "get_logs requests", window=1.0)
        assert log_requests(emulator) == before
    finally:
        client.kill_job(jobname)


def test_running_backlog_longer_than_a_page_is_fetched_in_order(
    emulator: Emulator, client: JuliaHubClient, tmp_path: Path
) -> None:
    jobname = emulator.create_finished(status="Running", log_lines=15_000)
    store = LogStore(client, JobRegistry(client), tmp_path)
    log = store.log(jobname)
    before = log_requests(emulator)
    log.load()
    assert log_requests(emulator) == before + 2  # the newest 10,000, then the rest + top
    assert not log.complete
    lines = read_all(log).decode().splitlines()
    assert lines == [synthetic_line(jobname, n) for n in range(1, 15_001)]
    assert not (tmp_path / "logs" / f"{jobname}.log").exists()  # not final: never reused
    assert len(os.listdir(tmp_path / "tmp")) == 1  # the growing file, no chunks
    store.close()
    assert os.listdir(tmp_path / "tmp") == []  # a later mount could not resume it


def test_log_file_names_stay_inside_the_logs_directory() -> None:
    for jobname in ("../../etc/passwd", ".hidden", "a/b", "jr-ok"):
        name = _file_name(jobname)
        assert "/" not in name and not name.startswith(".")
    assert _file_name("jr-eezd3arpcj") == "jr-eezd3arpcj.log"


def test_log_empty_at_first_fills_in_when_the_job_prints(
    emulator: Emulator, store: LogStore
) -> None:
    jobname = emulator.submit("sleep 2; echo first; echo second")
    log = store.log(jobname)
    log.load()
    assert log.size == 0 and not log.complete
    log.open()
    wait_for(lambda: log.complete, timeout=30, what="the log to be complete")
    assert read_all(log) == b"first\nsecond\n"
    log.release()


def test_failed_backlog_leaves_nothing_and_the_next_load_starts_over(
    fresh_emulator: Emulator, tmp_path: Path
) -> None:
    class FaultAfterFirstPage(JuliaHubClient):
        """Arms a real server fault once the first page has arrived."""

        pages = 0

        def log_page(self, jobname: str, **kwargs: Any) -> LogPage:
            page = super().log_page(jobname, **kwargs)
            FaultAfterFirstPage.pages += 1
            if FaultAfterFirstPage.pages == 1:
                fresh_emulator.fault(endpoint="get_logs", mode="status", status=500)
            return page

    client = FaultAfterFirstPage(fresh_emulator.url, TokenSource(token=fresh_emulator.token))
    jobname = fresh_emulator.create_finished(status="Completed", log_lines=25_000)
    store = LogStore(client, JobRegistry(client), tmp_path / "cache")
    log = store.log(jobname)
    with pytest.raises(ServerError):
        log.load()  # the newest page arrived, the next one failed
    assert log.size == 0 and not log.complete
    assert os.listdir(tmp_path / "cache" / "tmp") == []
    assert os.listdir(tmp_path / "cache" / "logs") == []
    log.load()
    assert log.complete
    assert read_all(log).count(b"\n") == 25_000
    assert fresh_emulator.stats()["requests"]["get_logs"] == 2 + 3
    store.close()
    client.close()
