"""The client's pacing: the mount-wide rate limit and the operation deadline."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator

import pytest
from conftest import Emulator, wait_for

from jhfs.client import JuliaHubClient, TokenSource
from jhfs.client.errors import DeadlineExceeded, ServerUnreachableError
from jhfs.client.pacing import (
    RateLimiter,
    RecentCounts,
    background,
    operation_deadline,
    remaining,
)


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_the_foreground_never_waits_and_the_background_waits_for_its_token() -> None:
    clock = FakeClock()
    limiter = RateLimiter(rate=10, burst=2, clock=clock)
    assert [limiter.reserve(background=True) for _ in range(2)] == [0.0, 0.0]
    # The bucket is empty: the next background request waits a tenth of a second.
    assert limiter.reserve(background=True) == pytest.approx(0.1)
    assert limiter.reserve(background=False) == 0.0
    # The foreground's token was taken too: the background's next wait is longer.
    assert limiter.reserve(background=True) == pytest.approx(0.3)
    clock.now += 1.0  # ten tokens' worth, capped at the burst
    assert limiter.reserve(background=True) == 0.0


def test_recent_counts_keep_the_last_window_and_the_total() -> None:
    clock = FakeClock()
    counts = RecentCounts(window=60, clock=clock)
    for _ in range(3):
        counts.add()
    clock.now = 30.5
    counts.add(2)
    assert (counts.recent(), counts.total) == (5, 5)
    clock.now = 60.0  # the first second has left the window
    assert (counts.recent(), counts.total) == (2, 5)
    clock.now = 200.0
    assert (counts.recent(), counts.total) == (0, 5)


def test_a_rate_is_over_the_window_or_the_time_since_counting_began() -> None:
    clock = FakeClock()
    clock.now = 100.0
    counts = RecentCounts(window=5, clock=clock)
    clock.now = 102.0
    counts.add(4000)
    assert counts.rate() == pytest.approx(2000)  # 4000 bytes in 2 s
    clock.now = 110.5
    counts.add(1000)  # the window: 106.0 to 110.5
    assert counts.rate() == pytest.approx(1000 / 4.5)
    counts.restart()
    assert counts.rate() == 0.0 and counts.total == 5000
    clock.now = 111.0
    counts.add(500)
    assert counts.rate() == pytest.approx(1000)


def test_a_foreground_burst_delays_the_background_a_bounded_time() -> None:
    clock = FakeClock()
    limiter = RateLimiter(rate=10, burst=5, clock=clock)
    for _ in range(1000):
        limiter.reserve(background=False)
    assert limiter.reserve(background=True) == pytest.approx(0.6)


def test_background_requests_keep_to_the_rate(emulator: Emulator) -> None:
    clock = FakeClock()
    limiter = RateLimiter(rate=1000, burst=1, clock=clock)
    client = JuliaHubClient(emulator.url, TokenSource(token=emulator.token), limiter=limiter)
    waits: list[float] = []
    original = limiter.reserve

    def recorded(*, background: bool) -> float:
        wait = original(background=background)
        waits.append(wait)
        return wait

    limiter.reserve = recorded  # type: ignore[method-assign]
    try:
        client.whoami()
        with background():
            client.whoami()
    finally:
        client.close()
    # The clock stood still: the foreground request took the only token, the
    # background one waited for the next.
    assert waits == [0.0, pytest.approx(0.001)]


def test_no_deadline_outside_an_operation() -> None:
    assert remaining() is None
    with operation_deadline(30):
        left = remaining()
        assert left is not None and 0 < left <= 30
    assert remaining() is None


def test_a_stalled_server_fails_the_operation_at_its_deadline(fresh_emulator: Emulator) -> None:
    client = JuliaHubClient(fresh_emulator.url, TokenSource(token=fresh_emulator.token))
    fresh_emulator.fault(endpoint="*", mode="delay", delay=3600, count=100)
    try:
        with operation_deadline(1.0), pytest.raises(DeadlineExceeded):
            client.jobs()
    finally:
        client.close()


@pytest.fixture
def dripping_server() -> Iterator[str]:
    """A server that answers every request with headers, then a byte of body at a time."""
    listener = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()

    def serve() -> None:
        listener.settimeout(0.1)
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            with conn:
                conn.recv(65536)
                conn.sendall(
                    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                    b"Content-Length: 100000\r\n\r\n"
                )
                while not stop.wait(0.05):
                    try:
                        conn.sendall(b" ")
                    except OSError:
                        break

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    finally:
        stop.set()
        thread.join()
        listener.close()


def test_a_body_that_drips_in_ends_at_the_deadline(dripping_server: str) -> None:
    # Each byte comes well within the socket timeout: only the deadline ends it.
    client = JuliaHubClient(dripping_server, TokenSource(token="t" * 20), timeout=30)
    try:
        with operation_deadline(1.0), pytest.raises(DeadlineExceeded):
            client.jobs()
    finally:
        client.close()


def test_closing_the_client_ends_a_request_waiting_to_retry(fresh_emulator: Emulator) -> None:
    client = JuliaHubClient(fresh_emulator.url, TokenSource(token=fresh_emulator.token))
    fresh_emulator.fault(endpoint="get_jobs", mode="status", status=503, retry_after=60, count=10)
    errors: list[BaseException] = []

    def list_jobs() -> None:
        try:
            client.jobs()
        except BaseException as error:
            errors.append(error)

    caller = threading.Thread(target=list_jobs)
    caller.start()
    wait_for(
        lambda: fresh_emulator.stats()["requests"].get("get_jobs", 0) == 1,
        what="the first answer (503, retry after 10 s)",
    )
    client.close()  # the mount ends
    caller.join(timeout=30)
    assert not caller.is_alive()
    assert len(errors) == 1 and isinstance(errors[0], ServerUnreachableError)
    assert "the mount is ending" in str(errors[0])
    assert fresh_emulator.stats()["requests"]["get_jobs"] == 1
