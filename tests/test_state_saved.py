"""The registry with the jobs kept on disk (SavedJobs), against the emulator: what it
serves while the server cannot be reached, what it never masks, and its bounds."""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import Emulator, stop_emulator
from test_state_registry import FakeClock, requests_to

from jhfs.client import (
    AuthenticationError,
    JuliaHubClient,
    ServerError,
    ServerUnreachableError,
    TokenSource,
)
from jhfs.client.models import parse_job
from jhfs.state.freshness import LISTING_TTL, OFFLINE_RETRY
from jhfs.state.registry import JobRegistry
from jhfs.state.saved import SavedJobs

WARNING = "jobs/ shows the jobs listed at"


def client_of(emulator: Emulator, token: str | None = None) -> JuliaHubClient:
    return JuliaHubClient(emulator.url, TokenSource(token=token or emulator.token), retries=0)


@pytest.fixture
def client(fresh_emulator: Emulator) -> Iterator[JuliaHubClient]:
    c = client_of(fresh_emulator)
    yield c
    c.close()


def names(jobs: Any) -> list[str]:
    return [job.jobname for job in jobs]


def warnings(caplog: pytest.LogCaptureFixture) -> int:
    return sum(WARNING in record.getMessage() for record in caplog.records)


def test_an_unreachable_server_gives_the_saved_listing_once_warned_until_it_answers(
    fresh_emulator: Emulator, client: JuliaHubClient, tmp_path: Path, caplog: Any
) -> None:
    caplog.set_level(logging.INFO, logger="jhfs.state.registry")
    finished = fresh_emulator.create_finished(status="Completed")
    running = fresh_emulator.create_finished(status="Running")
    clock = FakeClock()
    registry = JobRegistry(client, saved=SavedJobs(tmp_path), clock=clock)
    assert names(registry.list_jobs()) == [running, finished]

    fresh_emulator.fault(endpoint="get_jobs", mode="reset", count=1000)  # until cleared
    clock.advance(LISTING_TTL)
    asked = requests_to(fresh_emulator, "get_jobs")
    assert names(registry.list_jobs()) == [running, finished]
    assert requests_to(fresh_emulator, "get_jobs") == asked + 1
    for _ in range(3):  # not asked again for a while: each ls is instant
        clock.advance(OFFLINE_RETRY / 4)
        assert names(registry.list_jobs()) == [running, finished]
    assert requests_to(fresh_emulator, "get_jobs") == asked + 1
    clock.advance(OFFLINE_RETRY / 4)  # since the server was asked, however many ls between
    assert names(registry.list_jobs()) == [running, finished]
    assert requests_to(fresh_emulator, "get_jobs") == asked + 2
    assert warnings(caplog) == 1  # one per outage, not one per listing or ask

    fresh_emulator.admin("DELETE", "faults")
    newer = fresh_emulator.create_finished(status="Completed")
    clock.advance(OFFLINE_RETRY)
    assert names(registry.list_jobs()) == [newer, running, finished]
    assert any("answers again" in record.getMessage() for record in caplog.records)
    fresh_emulator.fault(endpoint="get_jobs", mode="reset", count=1000)
    clock.advance(LISTING_TTL)
    assert names(registry.list_jobs()) == [newer, running, finished]
    assert warnings(caplog) == 2  # a new outage is said again


def test_a_refused_token_and_server_errors_are_not_masked(
    fresh_emulator: Emulator, client: JuliaHubClient, tmp_path: Path
) -> None:
    fresh_emulator.create_finished(status="Completed")
    assert JobRegistry(client, saved=SavedJobs(tmp_path)).list_jobs()
    refused = client_of(fresh_emulator, token="not-the-token")
    with pytest.raises(AuthenticationError):
        JobRegistry(refused, saved=SavedJobs(tmp_path)).list_jobs()
    refused.close()
    fresh_emulator.fault(endpoint="get_jobs", mode="status", status=500)
    with pytest.raises(ServerError):
        JobRegistry(client, saved=SavedJobs(tmp_path)).list_jobs()


def test_a_later_registry_on_a_dead_server_serves_what_an_earlier_one_saw(
    fresh_emulator: Emulator, client: JuliaHubClient, tmp_path: Path
) -> None:
    by_name = fresh_emulator.create_finished(status="Stopped")
    pushed_out = fresh_emulator.create_finished(status="Failed")
    listed = fresh_emulator.create_finished(status="Completed")
    running = fresh_emulator.create_finished(status="Running")
    clock = FakeClock()
    first = JobRegistry(client, jobs_limit=3, saved=SavedJobs(tmp_path), clock=clock)
    assert names(first.list_jobs()) == [running, listed, pushed_out]
    newest = fresh_emulator.create_finished(status="Completed")
    clock.advance(LISTING_TTL)
    assert names(first.list_jobs()) == [newest, running, listed]
    assert first.get(by_name).status == "Stopped"  # outside the listing, looked up by name
    stop_emulator(fresh_emulator)

    later = JobRegistry(client, jobs_limit=3, saved=SavedJobs(tmp_path))
    assert names(later.list_jobs()) == [newest, running, listed]
    assert later.get(pushed_out).status == "Failed"
    assert later.get(by_name).status == "Stopped"
    assert later.get(listed).status == "Completed"
    with pytest.raises(ServerUnreachableError):
        later.get(running)  # no fresh status to give: not made up from the listing
    cached = later.cached(running)
    assert cached is not None and cached.status == "Running"  # any copy, for attributes
    with pytest.raises(ServerUnreachableError):
        later.get("jr-neverseen")


def job_object(jobname: str, status: str = "Completed", note: str = "") -> dict[str, Any]:
    return {"jobname": jobname, "status": status, "outputs": note, "inputs": None, "files": []}


def job_file(directory: Path, jobname: str) -> Path:
    return directory / "jobs" / (hashlib.sha256(jobname.encode()).hexdigest() + ".json")


def test_saved_final_jobs_are_bounded_least_recently_used_first(tmp_path: Path) -> None:
    size = len(json.dumps(job_object("jr-a0", note="x" * 100)))
    saved = SavedJobs(tmp_path, max_job_bytes=2 * size, max_jobs_bytes=3 * size)
    for index in range(3):
        saved.save_job(parse_job(job_object(f"jr-a{index}", note="x" * 100)))
        os.utime(job_file(tmp_path, f"jr-a{index}"), (index + 1, index + 1))
    first = saved.job("jr-a0")  # used now: jr-a1 is the least recently used
    assert first is not None and first.outputs == "x" * 100
    saved.save_job(parse_job(job_object("jr-a3", note="x" * 100)))
    kept = [name for name in ("jr-a0", "jr-a1", "jr-a2", "jr-a3") if saved.job(name)]
    assert kept == ["jr-a0", "jr-a2", "jr-a3"]
    saved.save_job(parse_job(job_object("jr-big", note="x" * 3 * size)))  # over max_job_bytes
    assert saved.job("jr-big") is None
    saved.save_job(parse_job(job_object("jr-running", status="Running")))
    assert saved.job("jr-running") is None  # only final jobs are kept
    assert len(list(tmp_path.glob("jobs/*"))) == 3
    assert not list(tmp_path.glob("tmp/*"))


def test_a_saved_listing_keeps_its_newest_jobs_and_skips_damage(tmp_path: Path) -> None:
    jobs = [parse_job(job_object(f"jr-l{index}")) for index in range(10)]
    line = len(json.dumps(jobs[0].raw)) + 1
    SavedJobs(tmp_path, max_listing_bytes=4 * line).save_listing(jobs)
    reread = SavedJobs(tmp_path).listing()
    assert reread is not None
    assert names(reread[0]) == ["jr-l0", "jr-l1", "jr-l2", "jr-l3"]
    path = tmp_path / "listing.jsonl"
    lines = path.read_bytes().splitlines(keepends=True)
    path.write_bytes(lines[0] + b'{"jobname": "jr-cut", "sta\n' + b"".join(lines[1:]))
    damaged = SavedJobs(tmp_path).listing()
    assert damaged is not None and names(damaged[0]) == ["jr-l0", "jr-l1", "jr-l2", "jr-l3"]
    assert SavedJobs(tmp_path / "none").listing() is None
    SavedJobs(tmp_path / "empty").save_listing([])  # an account without jobs
    empty = SavedJobs(tmp_path / "empty").listing()
    assert empty is not None and empty[0] == []


def test_a_forgotten_job_is_not_served_from_disk(tmp_path: Path) -> None:
    # The server had no log or file it listed for the job (registry.forget): the
    # copies held may be out of date.
    listed, looked_up = parse_job(job_object("jr-listed")), parse_job(job_object("jr-by-name"))
    saved = SavedJobs(tmp_path)
    saved.save_listing([listed])
    saved.save_job(looked_up)
    assert saved.job("jr-listed") is not None and saved.job("jr-by-name") is not None
    saved.forget("jr-listed")
    saved.forget("jr-by-name")
    assert saved.listed("jr-listed") is None
    assert saved.job("jr-listed") is None and saved.job("jr-by-name") is None
