"""The job registry against the emulator: listing reuse, status freshness, negative cache."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest
from conftest import Emulator, wait_for

from jhfs.client import JuliaHubClient, NotFoundError, ServerError, TokenSource
from jhfs.state.freshness import FAILURE_MEMORY
from jhfs.state.registry import JobRegistry


class FakeClock:
    """Time that moves only when the test says so (TTL expiry without sleeping)."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def client(emulator: Emulator) -> Iterator[JuliaHubClient]:
    c = JuliaHubClient(emulator.url, TokenSource(token=emulator.token), retries=0)
    yield c
    c.close()


def requests_to(emulator: Emulator, endpoint: str) -> int:
    return int(emulator.stats()["requests"].get(endpoint, 0))


def test_listing_is_one_request_reused_for_ttl_and_answers_get(
    emulator: Emulator, client: JuliaHubClient
) -> None:
    emulator.admin("POST", "jobs", {"finished": {"status": "Completed"}, "count": 3})
    running = emulator.create_finished(status="Running")
    clock = FakeClock()
    registry = JobRegistry(client, jobs_limit=50, ttl=2.0, listing_ttl=2.0, clock=clock)
    listings, lookups = requests_to(emulator, "get_jobs"), requests_to(emulator, "job")

    jobs = registry.list_jobs()
    names = [job.jobname for job in jobs]
    assert names[0] == running  # newest first, as the server lists them
    assert registry.names() == names
    clock.advance(1.9)
    assert [job.jobname for job in registry.list_jobs()] == names
    for name in names:
        assert registry.get(name).jobname == name
    assert requests_to(emulator, "get_jobs") == listings + 1
    assert requests_to(emulator, "job") == lookups

    clock.advance(0.2)  # the listing is now older than 2 s
    registry.list_jobs()
    assert requests_to(emulator, "get_jobs") == listings + 2


def test_concurrent_listings_share_one_request(
    fresh_emulator: Emulator,
) -> None:
    fresh_emulator.create_finished(status="Completed")
    client = JuliaHubClient(fresh_emulator.url, TokenSource(token=fresh_emulator.token))
    registry = JobRegistry(client)
    # A slow answer keeps the first request in flight while the others arrive.
    fresh_emulator.fault(endpoint="get_jobs", mode="delay", delay=1.0, count=1)
    start = threading.Barrier(8)
    results: list[int] = []

    def list_after_barrier() -> None:
        start.wait()
        results.append(len(registry.list_jobs()))

    threads = [threading.Thread(target=list_after_barrier) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert results == [1] * 8
    assert fresh_emulator.stats()["requests"]["get_jobs"] == 1
    client.close()


def test_finished_job_is_fetched_once_for_the_life_of_the_mount(
    emulator: Emulator, client: JuliaHubClient
) -> None:
    name = emulator.create_finished(status="Failed")
    clock = FakeClock()
    registry = JobRegistry(client, clock=clock)
    before = requests_to(emulator, "job")
    assert registry.get(name).status == "Failed"
    clock.advance(86_400)
    assert registry.get(name).status == "Failed"
    assert registry.cached(name) is not None
    assert requests_to(emulator, "job") == before + 1


def test_running_job_is_reread_once_its_copy_is_older_than_ttl(
    emulator: Emulator, client: JuliaHubClient
) -> None:
    name = emulator.create_finished(status="Running")
    clock = FakeClock()
    registry = JobRegistry(client, ttl=2.0, clock=clock)
    before = requests_to(emulator, "job")
    assert registry.get(name).status == "Running"
    clock.advance(1.5)
    registry.get(name)
    assert requests_to(emulator, "job") == before + 1
    clock.advance(0.6)
    registry.get(name)
    assert requests_to(emulator, "job") == before + 2


def test_unknown_name_is_not_found_and_remembered_briefly(
    emulator: Emulator, client: JuliaHubClient
) -> None:
    clock = FakeClock()
    registry = JobRegistry(client, negative_ttl=10.0, clock=clock)
    before = requests_to(emulator, "job")
    for _ in range(5):
        with pytest.raises(NotFoundError):
            registry.get("jr-doesnotexist")
    assert requests_to(emulator, "job") == before + 1
    clock.advance(10.1)
    with pytest.raises(NotFoundError):
        registry.get("jr-doesnotexist")
    assert requests_to(emulator, "job") == before + 2


def test_negative_cache_is_bounded(emulator: Emulator, client: JuliaHubClient) -> None:
    registry = JobRegistry(client, negative_max=3)
    before = requests_to(emulator, "job")
    for index in range(5):
        with pytest.raises(NotFoundError):
            registry.get(f"jr-missing{index}")
    # Names 3 and 4 are still remembered; name 0 was pushed out and costs a request.
    for index in (3, 4, 0):
        with pytest.raises(NotFoundError):
            registry.get(f"jr-missing{index}")
    assert requests_to(emulator, "job") == before + 6


def test_server_errors_propagate_are_remembered_briefly_and_not_cached_as_missing(
    fresh_emulator: Emulator,
) -> None:
    name = fresh_emulator.create_finished(status="Completed")
    client = JuliaHubClient(fresh_emulator.url, TokenSource(token=fresh_emulator.token), retries=0)
    clock = FakeClock()
    registry = JobRegistry(client, clock=clock)
    fresh_emulator.fault(endpoint="job", mode="status", status=500, count=2)
    with pytest.raises(ServerError):
        registry.get(name)
    with pytest.raises(ServerError):
        registry.get("jr-unknown")
    asked = requests_to(fresh_emulator, "job")
    # The kernel's repeats of the failed operations fail at once, without a request.
    with pytest.raises(ServerError, match="moments ago"):
        registry.get(name)
    with pytest.raises(ServerError, match="moments ago"):
        registry.get("jr-unknown")
    assert requests_to(fresh_emulator, "job") == asked
    # A little later the server is asked again, and answers: the job exists, and
    # the unknown name is now known missing.
    clock.advance(FAILURE_MEMORY)
    assert registry.get(name).jobname == name
    with pytest.raises(NotFoundError):
        registry.get("jr-unknown")
    client.close()


def test_a_failed_listing_is_remembered_briefly(fresh_emulator: Emulator) -> None:
    client = JuliaHubClient(fresh_emulator.url, TokenSource(token=fresh_emulator.token), retries=0)
    clock = FakeClock()
    registry = JobRegistry(client, clock=clock)
    fresh_emulator.fault(endpoint="get_jobs", mode="status", status=500)
    with pytest.raises(ServerError):
        registry.list_jobs()
    with pytest.raises(ServerError, match="moments ago"):
        registry.list_jobs()
    assert requests_to(fresh_emulator, "get_jobs") == 1
    clock.advance(FAILURE_MEMORY)
    assert registry.list_jobs() == []
    client.close()


def test_a_name_created_after_a_miss_shows_up_with_the_next_listing(
    fresh_emulator: Emulator,
) -> None:
    client = JuliaHubClient(fresh_emulator.url, TokenSource(token=fresh_emulator.token))
    clock = FakeClock()
    registry = JobRegistry(client, clock=clock)
    name = fresh_emulator.create_finished(status="Completed")
    registry._missing[name] = True  # as if it had been probed just before it was created
    with pytest.raises(NotFoundError):
        registry.get(name)
    clock.advance(3)
    assert name in registry.names()
    assert registry.get(name).jobname == name
    client.close()


def test_refresh_fetches_at_once(emulator: Emulator, client: JuliaHubClient) -> None:
    name = emulator.submit("sleep 60")
    registry = JobRegistry(client, ttl=3600)
    wait_for(lambda: registry.refresh(name).status == "Running", what="job running")
    assert registry.get(name).status == "Running"
    client.kill_job(name)
    # get() may keep the running copy for the ttl; refresh() goes to the server.
    assert registry.get(name).status == "Running"
    wait_for(lambda: registry.refresh(name).status == "Stopped", what="job stopped")
    assert registry.get(name).status == "Stopped"


def test_a_job_that_changed_is_told_of_once_per_change(
    emulator: Emulator, client: JuliaHubClient
) -> None:
    name = emulator.submit("sleep 60")
    changed: list[str] = []
    registry = JobRegistry(client, ttl=3600, on_change=changed.append)
    wait_for(lambda: registry.refresh(name).status == "Running", what="job running")
    registry.list_jobs()
    registry.refresh(name)
    start = len(changed)  # Submitted -> Running may have been seen
    assert registry.refresh(name).status == "Running" and len(changed) == start  # no news
    client.kill_job(name)
    wait_for(lambda: registry.refresh(name).status == "Stopped", what="job stopped")
    assert changed[start:] == [name]
    registry.refresh(name)
    registry.list_jobs()  # the listing's copy says the same: no news either
    assert changed[start:] == [name]


def test_finished_job_pushed_out_of_the_listing_stays_known(
    fresh_emulator: Emulator,
) -> None:
    client = JuliaHubClient(fresh_emulator.url, TokenSource(token=fresh_emulator.token))
    clock = FakeClock()
    registry = JobRegistry(client, jobs_limit=1, clock=clock)
    older = fresh_emulator.create_finished(status="Completed")
    assert registry.names() == [older]
    newer = fresh_emulator.create_finished(status="Completed")
    clock.advance(2.1)
    assert registry.names() == [newer]
    assert registry.get(older).jobname == older
    assert fresh_emulator.stats()["requests"].get("job", 0) == 0
    client.close()


def test_refresh_of_an_unknown_name_is_remembered_as_missing(
    emulator: Emulator, client: JuliaHubClient
) -> None:
    registry = JobRegistry(client)
    before = requests_to(emulator, "job")
    with pytest.raises(NotFoundError):
        registry.refresh("jr-neverexisted")
    with pytest.raises(NotFoundError):
        registry.get("jr-neverexisted")
    assert registry.cached("jr-neverexisted") is None
    assert requests_to(emulator, "job") == before + 1


def test_listing_may_be_kept_longer_than_the_copies_of_running_jobs(
    emulator: Emulator, client: JuliaHubClient
) -> None:
    running = emulator.create_finished(status="Running")
    clock = FakeClock()
    registry = JobRegistry(client, jobs_limit=50, ttl=1.5, listing_ttl=2.0, clock=clock)
    listings, lookups = requests_to(emulator, "get_jobs"), requests_to(emulator, "job")
    registry.list_jobs()
    clock.advance(1.7)
    assert running in registry.names()
    assert requests_to(emulator, "get_jobs") == listings + 1  # the listing is still fresh
    assert registry.get(running).status == "Running"
    assert requests_to(emulator, "job") == lookups + 1  # its running job is not
    clock.advance(0.4)
    registry.list_jobs()
    assert requests_to(emulator, "get_jobs") == listings + 2
