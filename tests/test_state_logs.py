"""Job logs against the emulator: complete logs on disk, running ones followed while open."""

from __future__ import annotations

import http.server
import json
import os
import stat
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pytest
from conftest import Emulator, expect_no_change, settle, wait_for

from jhfs.client import JuliaHubClient, LogMessage, LogPage, ServerError, TokenSource
from jhfs.client.pacing import RateLimiter, in_background
from jhfs.state import freshness, logfollow
from jhfs.state.errors import CacheChurnError
from jhfs.state.logformat import Rendering
from jhfs.state.logs import OPEN_ATTEMPTS, LogReader, LogStore, _file_name
from jhfs.state.registry import JobRegistry

TEXT, JSONL = Rendering.TEXT, Rendering.JSONL
TICKER = "i=0; while [ ! -e stop ]; do i=$((i+1)); echo tick $i; sleep 0.05; done; echo last"


class Clock:
    """The store's clock, moved by the test: whether a log is still current is no race."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def client(emulator: Emulator) -> Iterator[JuliaHubClient]:
    c = JuliaHubClient(emulator.url, TokenSource(token=emulator.token))
    yield c
    c.close()


@pytest.fixture
def store(client: JuliaHubClient, tmp_path: Path) -> Iterator[LogStore]:
    s = LogStore(client, JobRegistry(client), tmp_path)
    yield s
    s.close()


def requests(emulator: Emulator, endpoint: str) -> int:
    return int(emulator.stats()["requests"].get(endpoint, 0))


def log_requests(emulator: Emulator) -> int:
    return requests(emulator, "get_logs")


def all_requests(emulator: Emulator) -> int:
    return sum(emulator.stats()["requests"].values())


def read_all(reader: LogReader) -> bytes:
    parts = []
    offset = 0
    while chunk := reader.read(offset, 64 * 1024):
        parts.append(chunk)
        offset += len(chunk)
    return b"".join(parts)


def synthetic_line(jobname: str, number: int) -> str:
    # The emulator's synthetic log line (jhfs_emulator.logs.SyntheticLog).
    return f"line {number:07d} of {jobname}: step {number} loss={1.0 / number:.6f}"


def ticks(data: bytes) -> list[int]:
    """The tick numbers of a TICKER log, which must be 1, 2, 3... without gap or repeat."""
    numbers = [int(line.split()[1]) for line in data.decode().splitlines() if line != "last"]
    assert numbers == list(range(1, len(numbers) + 1)), "a gap or a repeat in the log"
    return numbers


def wait_grows(reader: LogReader, lines: int, what: str) -> int:
    """Wait until the TICKER log read through `reader` has `lines` more lines; how many now."""
    grown = len(ticks(read_all(reader)))
    return int(
        wait_for(lambda: (n := len(ticks(read_all(reader)))) > grown + lines and n, what=what)
    )


def stop_ticker(emulator: Emulator, jobname: str) -> None:
    (Path(emulator.admin("GET", f"jobs/{jobname}")["work_dir"]) / "stop").touch()


def test_finished_log_is_fetched_once_in_order_and_kept_on_disk(
    emulator: Emulator, client: JuliaHubClient, store: LogStore, tmp_path: Path
) -> None:
    jobname = emulator.create_finished(status="Completed", log_lines=25_000)
    before, streams = log_requests(emulator), requests(emulator, "stream_logs")

    reader = store.open(jobname, TEXT)
    log = reader.log
    # The newest page (9,999 lines + bottom marker), a full page, the rest + top marker.
    assert log_requests(emulator) == before + 3
    assert log.complete
    lines = read_all(reader).decode().splitlines()
    assert lines == [synthetic_line(jobname, n) for n in range(1, 25_001)]
    assert reader.size == sum(len(line) + 1 for line in lines)
    assert reader.read(reader.size, 100) == b""
    assert reader.read(5, 10) == lines[0].encode()[5:15]
    reader.close()

    cached = tmp_path / "logs" / f"{jobname}.log"
    assert cached.stat().st_size == reader.size
    assert stat.S_IMODE(cached.stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "logs").stat().st_mode) == 0o700
    assert os.listdir(tmp_path / "tmp") == []  # page chunks are gone

    # The JSON lines, from the same fetch: one object per message, in order.
    as_json = store.open(jobname, JSONL)
    assert log_requests(emulator) == before + 3
    objects = [json.loads(line) for line in read_all(as_json).splitlines()]
    assert [o["message"] for o in objects] == lines
    assert [o["eventId"] for o in objects] == [str(n) for n in range(1, 25_001)]
    assert objects[0]["keywords"]["jrun_hostname"] == f"{jobname}-x5z4g"
    assert objects[0]["metadata"]["level"] == "Info"
    assert as_json.size == (tmp_path / "logs" / f"{jobname}.jsonl").stat().st_size
    as_json.close()

    store.open(jobname, TEXT).close()
    # A later mount serves it from disk without asking.
    later = LogStore(client, JobRegistry(client), tmp_path)
    again = later.open(jobname, TEXT)
    assert again.log.complete and again.size == reader.size
    assert read_all(again) == "".join(line + "\n" for line in lines).encode()
    again.close()
    later.close()
    assert log_requests(emulator) == before + 3
    assert requests(emulator, "stream_logs") == streams  # nothing to follow


def test_a_stat_fetches_a_finished_log_once_for_both_renderings(
    emulator: Emulator, client: JuliaHubClient, store: LogStore, tmp_path: Path
) -> None:
    jobname = emulator.create_finished(status="Completed", log_lines=12_000)
    before = log_requests(emulator)
    size = store.size(jobname, TEXT)
    assert log_requests(emulator) == before + 2  # the whole log, two pages
    json_size = store.size(jobname, JSONL)
    assert log_requests(emulator) == before + 2
    text, lines = store.open(jobname, TEXT), store.open(jobname, JSONL)
    assert len(read_all(text)) == size and len(read_all(lines)) == json_size
    text.close()
    lines.close()
    assert log_requests(emulator) == before + 2
    later = LogStore(client, JobRegistry(client), tmp_path)  # a later mount: from disk
    assert (later.size(jobname, TEXT), later.size(jobname, JSONL)) == (size, json_size)
    later.close()
    assert log_requests(emulator) == before + 2


def test_concurrent_stats_of_one_log_share_one_fetch(emulator: Emulator, store: LogStore) -> None:
    jobname = emulator.create_finished(status="Completed", log_lines=25_000)
    before = log_requests(emulator)
    sizes: list[int] = []
    threads = [
        threading.Thread(target=lambda r=rendering: sizes.append(store.size(jobname, r)))
        for rendering in [TEXT, JSONL] * 8
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert log_requests(emulator) == before + 3  # one fetch: its three pages
    assert len(set(sizes)) == 2 and len(sizes) == 16


def test_a_stat_of_a_running_log_asks_for_what_is_new_once_it_is_not_current(
    emulator: Emulator, store: LogStore
) -> None:
    clock = Clock()
    store.clock = clock
    jobname = emulator.submit(TICKER)
    try:
        wait_for(lambda: emulator.admin("GET", f"jobs/{jobname}")["log_lines"], what="a line")
        first = store.size(jobname, TEXT)
        logged = emulator.admin("GET", f"jobs/{jobname}")["log_lines"]  # at least those
        assert first > 0
        before = log_requests(emulator)
        assert store.size(jobname, TEXT) == first and log_requests(emulator) == before
        wait_for(
            lambda: emulator.admin("GET", f"jobs/{jobname}")["log_lines"] > logged + 3,
            what="more lines",
        )
        clock.now += freshness.CURRENT_FOR
        grown = store.size(jobname, TEXT)
        assert grown > first and log_requests(emulator) == before + 1  # one page after
        reader = store.open(jobname, TEXT)  # current: the open asks nothing
        assert len(read_all(reader)) >= grown and log_requests(emulator) == before + 1
        reader.close()
    finally:
        stop_ticker(emulator, jobname)


def test_empty_finished_log(emulator: Emulator, store: LogStore) -> None:
    reader = store.open(emulator.create_finished(status="Failed", log_lines=0), TEXT)
    assert reader.log.complete and reader.size == 0 and reader.read(0, 10) == b""
    reader.close()


def test_running_log_is_followed_over_the_stream_while_open(
    emulator: Emulator, client: JuliaHubClient, store: LogStore, tmp_path: Path
) -> None:
    jobname = emulator.submit(TICKER)
    streams = requests(emulator, "stream_logs")
    reader = store.open(jobname, TEXT)
    try:
        wait_for(lambda: requests(emulator, "stream_logs") > streams, what="a stream")
        polls = log_requests(emulator)
        grown = wait_grows(reader, 20, "20 more lines")
        assert log_requests(emulator) == polls  # the lines came over the stream
        stop_ticker(emulator, jobname)
        # The bottom marker ends the stream: the log is complete and final.
        wait_for(lambda: reader.log.complete, what="the log to be complete")
        data = read_all(reader)
        # The ticker may see `stop` before it ticks again: "last" is what came after.
        assert data.endswith(b"\nlast\n") and len(ticks(data)) >= grown
        assert (tmp_path / "logs" / f"{jobname}.log").read_bytes() == data
        assert log_requests(emulator) == polls
    finally:
        reader.close()
        stop_ticker(emulator, jobname)


def test_a_log_empty_at_open_is_streamed_from_its_end_without_polling(
    emulator: Emulator, store: LogStore
) -> None:
    jobname = emulator.submit("while [ ! -e go ]; do sleep 0.05; done; " + TICKER)
    streams = requests(emulator, "stream_logs")
    reader = store.open(jobname, TEXT)
    try:
        assert reader.size == 0
        wait_for(lambda: requests(emulator, "stream_logs") > streams, what="a stream")
        # One poll after the stream began (what came before it); then none.
        polls = settle(lambda: log_requests(emulator), "the poll after the stream began")
        work_dir = emulator.admin("GET", f"jobs/{jobname}")["work_dir"]
        Path(work_dir, "go").touch()
        wait_grows(reader, 20, "20 lines")
        assert read_all(reader).startswith(b"tick 1\ntick 2\n")  # from the first line on
        assert log_requests(emulator) == polls
    finally:
        reader.close()
        stop_ticker(emulator, jobname)


def test_following_stops_at_the_last_close_and_an_open_catches_up_with_one_request(
    emulator: Emulator, client: JuliaHubClient, store: LogStore
) -> None:
    clock = store.clock = Clock()
    jobname = emulator.submit(TICKER)
    try:
        first = store.open(jobname, TEXT)
        second = store.open(jobname, TEXT)  # one log, followed once
        grown = first.size
        wait_for(lambda: first.size > grown + 100, what="the log to grow")
        first.close()
        grown = second.size
        wait_for(lambda: second.size > grown + 100, what="the log to grow after one close")
        second.close()
        size = settle(lambda: (all_requests(emulator), first.size), "following to stop")[1]
        expect_no_change(lambda: (all_requests(emulator), first.size), "requests and size", 1.5)

        # The log is older than CURRENT_FOR: an open asks for what is new, once.
        clock.now += freshness.CURRENT_FOR + 1
        before = log_requests(emulator)
        reader = store.open(jobname, TEXT)
        assert log_requests(emulator) == before + 1
        assert reader.size > size
        ticks(read_all(reader))
        reader.close()
        settle(lambda: all_requests(emulator), "following to stop again")
    finally:
        stop_ticker(emulator, jobname)


def test_an_open_of_a_current_log_asks_nothing(emulator: Emulator, store: LogStore) -> None:
    jobname = emulator.submit(TICKER)
    try:
        streams = requests(emulator, "stream_logs")
        tail = store.open(jobname, TEXT)  # followed: tail -f
        wait_for(lambda: requests(emulator, "stream_logs") > streams, what="a stream")
        wait_grows(tail, 5, "lines over the stream")
        before = log_requests(emulator)
        cat = store.open(jobname, TEXT)  # and a cat of the same log meanwhile
        assert log_requests(emulator) == before
        ticks(read_all(cat))
        cat.close()
        tail.close()
    finally:
        stop_ticker(emulator, jobname)


@pytest.mark.parametrize(
    "fault",
    [
        {"mode": "status", "status": 503},  # refused at the handshake
        {"mode": "status", "status": 404},
        {"mode": "reset"},  # dropped after the handshake
        {"mode": "truncate"},
        {"mode": "corrupt"},  # a frame that is not JSON
    ],
)
def test_without_the_stream_the_log_is_polled_and_streamed_again_later(
    fresh_emulator: Emulator, tmp_path: Path, fault: dict[str, Any]
) -> None:
    emulator = fresh_emulator
    client = JuliaHubClient(emulator.url, TokenSource(token=emulator.token))
    store = LogStore(client, JobRegistry(client), tmp_path)
    jobname = emulator.submit(TICKER)
    emulator.fault(endpoint="stream_logs", jobname=jobname, **fault)
    reader = store.open(jobname, TEXT)
    try:
        wait_for(lambda: requests(emulator, "stream_logs") == 1, what="the failed stream")
        polls = log_requests(emulator)
        wait_for(lambda: log_requests(emulator) > polls + 2, what="polls instead")
        wait_grows(reader, 10, "lines from polls")
        # The stream is tried again after a backoff, and then carries the log.
        wait_for(lambda: requests(emulator, "stream_logs") == 2, what="a stream again")
        polls = settle(lambda: log_requests(emulator), "polling to stop")
        wait_grows(reader, 10, "lines from the stream")
        assert log_requests(emulator) == polls
        stop_ticker(emulator, jobname)
        wait_for(lambda: reader.log.complete, what="the log to be complete")
        assert read_all(reader).endswith(b"\nlast\n")
    finally:
        reader.close()
        stop_ticker(emulator, jobname)
        store.close()
        client.close()


def test_logs_beyond_the_stream_cap_are_polled(
    fresh_emulator: Emulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(logfollow, "MAX_STREAMS", 1)
    emulator = fresh_emulator
    client = JuliaHubClient(emulator.url, TokenSource(token=emulator.token))
    store = LogStore(client, JobRegistry(client), tmp_path)
    jobnames = [emulator.submit(TICKER), emulator.submit(TICKER)]
    readers = [store.open(jobname, TEXT) for jobname in jobnames]
    try:
        wait_for(lambda: requests(emulator, "stream_logs") == 1, what="one stream")
        polls = log_requests(emulator)
        for reader in readers:
            wait_grows(reader, 20, "both logs to grow")
        assert log_requests(emulator) > polls + 5  # the other log is polled
        assert requests(emulator, "stream_logs") == 1
    finally:
        for reader in readers:
            reader.close()
        for jobname in jobnames:
            stop_ticker(emulator, jobname)
        store.close()
        client.close()


def test_following_sends_background_requests_only(
    fresh_emulator: Emulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    emulator = fresh_emulator

    class Recording(RateLimiter):
        background: list[bool] = []  # noqa: RUF012 (the test's own record)

        def reserve(self, *, background: bool) -> float:
            Recording.background.append(background)
            return super().reserve(background=background)

    class RecordingClient(JuliaHubClient):
        pages: list[bool] = []  # noqa: RUF012

        def log_page(self, jobname: str, **kwargs: Any) -> LogPage:
            RecordingClient.pages.append(in_background())
            return super().log_page(jobname, **kwargs)

    client = RecordingClient(
        emulator.url, TokenSource(token=emulator.token), limiter=Recording(rate=1000)
    )
    store = LogStore(client, JobRegistry(client), tmp_path)
    jobname = emulator.submit(TICKER)
    try:
        emulator.fault(endpoint="stream_logs", mode="status", status=503, count=3)
        reader = store.open(jobname, TEXT)  # the open's own request is the user's
        assert RecordingClient.pages == [False]
        wait_for(lambda: requests(emulator, "stream_logs") >= 2, timeout=60, what="two streams")
        wait_for(lambda: len(RecordingClient.pages) > 3, what="polls")
        reader.close()
        settle(lambda: all_requests(emulator), "following to stop")
        assert RecordingClient.pages[0] is False and all(RecordingClient.pages[1:])
        streams = requests(emulator, "stream_logs")
        # Each stream waited its turn: background reservations cover streams and polls.
        assert Recording.background.count(True) >= streams + len(RecordingClient.pages) - 1
    finally:
        stop_ticker(emulator, jobname)
        store.close()
        client.close()


def test_idle_logs_are_bounded_and_open_ones_stay(
    emulator: Emulator, client: JuliaHubClient, tmp_path: Path
) -> None:
    store = LogStore(client, JobRegistry(client), tmp_path, max_idle=4)
    # The clock stands still: a running log in memory stays current, so only a
    # log dropped from memory is fetched again by a stat.
    store.clock = Clock()
    finished = emulator.admin("POST", "jobs", {"finished": {"log_lines": 1}, "count": 10})
    others = finished["jobnames"]
    running = emulator.create_finished(status="Running", log_lines=10)

    def stat_others() -> None:
        for jobname in others:
            store.size(jobname, TEXT)

    try:
        store.size(running, TEXT)
        before = log_requests(emulator)
        assert store.size(running, TEXT) > 0 and log_requests(emulator) == before  # kept
        assert len(os.listdir(tmp_path / "tmp")) == 2  # its renderings, growing
        stat_others()
        assert os.listdir(tmp_path / "tmp") == []  # dropped with its partial files
        before = log_requests(emulator)
        store.size(running, TEXT)
        assert log_requests(emulator) == before + 1  # fetched again

        reader = store.open(running, TEXT)
        stat_others()
        before = log_requests(emulator)
        store.size(running, TEXT)
        assert log_requests(emulator) == before  # open: never dropped
        reader.close()
        assert len(os.listdir(tmp_path / "tmp")) == 2  # its bytes stay after the close

        def dropped() -> bool:
            stat_others()
            return os.listdir(tmp_path / "tmp") == []

        # Once its follow has stopped (it pins the log too), it may go.
        wait_for(dropped, what="the closed log to be dropped")
    finally:
        store.close()


def test_in_use_is_true_while_an_open_file_reads_the_log(
    emulator: Emulator, store: LogStore, tmp_path: Path
) -> None:
    jobname = emulator.create_finished(status="Completed", log_lines=10)
    path = tmp_path / "logs" / f"{jobname}.log"
    assert not store.in_use(path)
    reader = store.open(jobname, TEXT)
    assert path.exists() and store.in_use(path)
    assert not store.in_use(tmp_path / "logs" / "jr-other.log")
    assert not store.in_use(tmp_path / "elsewhere" / path.name)
    reader.close()
    assert not store.in_use(path)


def test_a_complete_log_deleted_by_eviction_reads_on_and_is_fetched_again(
    emulator: Emulator, store: LogStore, tmp_path: Path
) -> None:
    jobname = emulator.create_finished(status="Completed", log_lines=10)
    path = tmp_path / "logs" / f"{jobname}.log"
    reader = store.open(jobname, TEXT)
    expected = path.read_bytes()
    path.unlink()  # as another mount sharing the cache directory may do
    assert read_all(reader) == expected  # what was opened reads to its end
    before = log_requests(emulator)
    again = store.open(jobname, TEXT)
    assert log_requests(emulator) == before + 1
    assert read_all(again) == expected and path.read_bytes() == expected
    assert read_all(reader) == expected
    again.close()
    reader.close()


def test_a_log_evicted_each_time_it_is_fetched_fails_the_open_with_the_reason(
    emulator: Emulator, store: LogStore, tmp_path: Path
) -> None:
    jobname = emulator.create_finished(status="Completed", log_lines=10)
    path = tmp_path / "logs" / f"{jobname}.log"
    evictions: list[bool] = []

    def evicting_clock() -> float:
        # Asked right after each fetch, before the open opens the file: the
        # moment another mount's eviction (or this one's) may delete it.
        if path.exists():
            path.unlink()
            evictions.append(True)
        return 1000.0

    store.clock = evicting_clock
    before = log_requests(emulator)
    with pytest.raises(CacheChurnError, match=f"the log of {jobname} was evicted"):
        store.open(jobname, TEXT)
    assert len(evictions) == OPEN_ATTEMPTS
    assert log_requests(emulator) == before + OPEN_ATTEMPTS  # one page each: no loop
    store.clock = Clock()
    reader = store.open(jobname, TEXT)  # kept this time
    assert reader.log.pins == 1  # the failed opens hold nothing
    assert read_all(reader).count(b"\n") == 10
    reader.close()


def test_read_past_the_end_is_end_of_file(emulator: Emulator, store: LogStore) -> None:
    # How fast it returns is scripts/bench's "log read past the end" row.
    jobname = emulator.create_finished(status="Running", log_lines=10)
    reader = store.open(jobname, TEXT)
    assert not reader.log.complete
    assert reader.read(reader.size, 4096) == b""
    assert reader.read(reader.size + 10_000, 4096) == b""
    assert read_all(reader).count(b"\n") == 10
    reader.close()


def threads_named(name: str) -> list[threading.Thread]:
    return [thread for thread in threading.enumerate() if thread.name == name]


def test_close_stops_the_scheduler_mid_fetch(
    fresh_emulator: Emulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    emulator = fresh_emulator
    client = JuliaHubClient(emulator.url, TokenSource(token=emulator.token))
    store = LogStore(client, JobRegistry(client), tmp_path)
    streamed, polled = emulator.submit(TICKER), emulator.submit(TICKER)
    monkeypatch.setattr(logfollow, "MAX_STREAMS", 1)
    try:
        readers = [store.open(streamed, TEXT)]
        wait_for(lambda: requests(emulator, "stream_logs") == 1, what="a stream")
        polls = log_requests(emulator)
        readers.append(store.open(polled, TEXT))  # brought up to now: one request
        # The other log is polled (beyond the stream cap), and its polls hang for 30 s.
        emulator.fault(endpoint="get_logs", mode="delay", delay=30, jobname=polled, count=100)
        wait_for(lambda: log_requests(emulator) > polls + 1, what="a poll under way")
        assert threads_named("jhfs-logs")
        store.close()
        assert not threads_named("jhfs-logs")
        expect_no_change(lambda: all_requests(emulator), "requests", 1.5)
        assert os.listdir(tmp_path / "tmp") == []  # partial logs are discarded
        for reader in readers:
            reader.close()
    finally:
        stop_ticker(emulator, streamed)
        stop_ticker(emulator, polled)
        client.close()


def test_running_backlog_longer_than_a_page_is_fetched_in_order(
    emulator: Emulator, client: JuliaHubClient, tmp_path: Path
) -> None:
    jobname = emulator.create_finished(status="Running", log_lines=15_000)
    store = LogStore(client, JobRegistry(client), tmp_path)
    before = log_requests(emulator)
    reader = store.open(jobname, TEXT)
    assert log_requests(emulator) == before + 2  # the newest 10,000, then the rest + top
    assert not reader.log.complete
    lines = read_all(reader).decode().splitlines()
    assert lines == [synthetic_line(jobname, n) for n in range(1, 15_001)]
    assert not (tmp_path / "logs" / f"{jobname}.log").exists()  # not final: never reused
    assert (
        len(os.listdir(tmp_path / "tmp")) == 2
    )  # the growing files (one per rendering), no chunks
    reader.close()
    store.close()
    assert os.listdir(tmp_path / "tmp") == []  # a later mount could not resume it


def test_overlapping_fetches_append_each_message_once(emulator: Emulator, store: LogStore) -> None:
    # A stream and an open's catch-up may both bring the messages after one reference.
    jobname = emulator.create_finished(status="Running", log_lines=10)
    reader = store.open(jobname, TEXT)
    newest = reader.log.newest
    assert newest is not None and newest.event_id == "10"

    def message(number: int) -> LogMessage:
        return replace(newest, message=f"new {number}", event_id=str(number))

    eighth = replace(newest, event_id="8")
    assert reader.log.apply_newer(eighth, [message(n) for n in (9, 10, 11, 12)], bottom=False) == 2
    assert reader.log.apply_newer(eighth, [message(n) for n in (9, 10, 11)], bottom=False) == 0
    assert reader.log.apply_newer(message(12), [message(13)], bottom=False) == 1
    # A server that sends the reference again: it is in the file already.
    assert reader.log.apply_newer(message(13), [message(13)], bottom=False) == 0
    lines = read_all(reader).decode().splitlines()
    assert lines[:10] == [synthetic_line(jobname, n) for n in range(1, 11)]
    assert lines[10:] == ["new 11", "new 12", "new 13"]
    reader.close()


def test_log_file_names_stay_inside_the_logs_directory() -> None:
    for jobname in ("../../etc/passwd", ".hidden", "a/b", "jr-ok"):
        name = _file_name(jobname, JSONL)
        assert "/" not in name and not name.startswith(".")
    assert _file_name("jr-eezd3arpcj", TEXT) == "jr-eezd3arpcj.log"
    assert _file_name("jr-eezd3arpcj", JSONL) == "jr-eezd3arpcj.jsonl"


def test_log_empty_at_first_fills_in_when_the_job_prints(
    emulator: Emulator, store: LogStore
) -> None:
    jobname = emulator.submit("while [ ! -e go ]; do sleep 0.05; done; echo first; echo second")
    reader = store.open(jobname, TEXT)
    assert reader.size == 0 and not reader.log.complete
    (Path(emulator.admin("GET", f"jobs/{jobname}")["work_dir"]) / "go").touch()
    wait_for(lambda: reader.log.complete, what="the log to be complete")
    assert read_all(reader) == b"first\nsecond\n"
    reader.close()


def test_failed_backlog_leaves_nothing_and_the_next_open_starts_over(
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
    with pytest.raises(ServerError):
        store.open(jobname, TEXT)  # the newest page arrived, the next one failed
    assert os.listdir(tmp_path / "cache" / "tmp") == []
    assert os.listdir(tmp_path / "cache" / "logs") == []
    reader = store.open(jobname, TEXT)
    assert reader.log.complete
    assert read_all(reader).count(b"\n") == 25_000
    assert fresh_emulator.stats()["requests"]["get_logs"] == 2 + 3
    reader.close()
    store.close()
    client.close()


@dataclass
class SamePageServer:
    """A server whose get_logs answers every request with the same three messages
    (whatever it is asked), as a broken or hostile server might."""

    url: str = ""
    top_first: bool = False  # the first answer carries the top marker
    asked: list[str] = field(default_factory=list)  # the paths it was asked


@pytest.fixture
def same_page_server() -> Iterator[SamePageServer]:
    page = [
        {"message": f"line {n}", "timestamp": 1_700_000_000_000 + n, "eventId": str(n)}
        for n in range(1, 4)
    ]
    fake = SamePageServer()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # the http.server API
            fake.asked.append(self.path)
            top = fake.top_first and len(fake.asked) == 1
            messages = [{"_meta": True, "end": "top"}, *page] if top else page
            body = json.dumps(json.dumps(messages)).encode()  # a JSON string of the array
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    fake.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield fake
    finally:
        server.shutdown()
        server.server_close()


def test_a_server_that_sends_the_same_page_for_older_messages_fails_the_fetch(
    same_page_server: SamePageServer, tmp_path: Path
) -> None:
    client = JuliaHubClient(same_page_server.url, TokenSource(token="t" * 20))
    store = LogStore(client, JobRegistry(client), tmp_path)
    try:
        with pytest.raises(ServerError, match="same messages again"):
            store.open("jr-loop", TEXT)
        assert len(same_page_server.asked) == 2  # the newest, then one "older" page: no loop
        assert os.listdir(tmp_path / "tmp") == []  # and no chunk files left behind
    finally:
        store.close()
        client.close()


def test_a_server_that_sends_the_same_page_for_newer_messages_fails_the_poll(
    same_page_server: SamePageServer, tmp_path: Path
) -> None:
    same_page_server.top_first = True
    client = JuliaHubClient(same_page_server.url, TokenSource(token="t" * 20))
    store = LogStore(client, JobRegistry(client), tmp_path, page_size=3)  # every page full
    try:
        reader = store.open("jr-loop", TEXT)
        # Ends (asking again and again would never return), with the reason.
        with pytest.raises(ServerError, match="same messages again"):
            reader.log.poll()
        reader.close()
    finally:
        store.close()
        client.close()
