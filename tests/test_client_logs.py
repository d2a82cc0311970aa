"""Log pages against the emulator: markers, the 10,000 cap, paging either way."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from conftest import Emulator, wait_for
from test_client_api import download_all

from jhfs.client import (
    Job,
    JuliaHubClient,
    PermissionDeniedError,
    TokenSource,
)
from jhfs.client.api import LOG_PAGE_CAP
from jhfs.client.models import LogMessage, LogPage

UNKNOWN_JOB = "jr-zzzzzzzzzz"


def make_client(em: Emulator) -> JuliaHubClient:
    return JuliaHubClient(em.url, TokenSource(token=em.token))


def log_requests(em: Emulator) -> int:
    return int(em.stats()["requests"].get("get_logs", 0))


def wait_done(client: JuliaHubClient, jobname: str) -> Job:
    def done() -> Job | None:
        job = client.job(jobname)
        return job if job is not None and job.is_done else None

    return wait_for(done, timeout=60, what=f"{jobname} to finish")  # type: ignore[no-any-return]


def read_whole_log(client: JuliaHubClient, jobname: str) -> tuple[list[LogMessage], LogPage]:
    """Every message, oldest first, paging towards the top; and the newest page."""
    newest = page = client.log_page(jobname)
    messages = list(page.messages)
    while not page.has_top:
        page = client.log_page(jobname, before=messages[0])
        messages[:0] = [m for m in page.messages if m.event_id != messages[0].event_id]
    return messages, newest


@pytest.fixture(scope="module")
def big_job(emulator: Emulator) -> tuple[str, Job]:
    """A real process that prints 25,000 lines (and one on stderr) and writes a result file."""
    client = make_client(emulator)
    command = (
        "seq 1 25000 | sed 's/^/line /'; echo 'to stderr' >&2; "
        "head -c 200000 /dev/urandom > result.bin"
    )
    jobname = emulator.submit(command, env={"RESULTS_FILE": "result.bin"})
    job = wait_done(client, jobname)
    assert job.status == "Completed"
    return jobname, job


def test_real_job_log_pages_across_the_cap(emulator: Emulator, big_job: tuple[str, Job]) -> None:
    jobname, _ = big_job
    client = make_client(emulator)
    before = log_requests(emulator)
    messages, newest = read_whole_log(client, jobname)
    assert newest.has_bottom
    texts = [m.message for m in messages]
    assert texts[:25000] == [f"line {i}" for i in range(1, 25001)]
    assert texts[25000:] == ["to stderr"]
    assert [m.event_id for m in messages] == [str(i) for i in range(1, 25002)]
    # 25,001 messages and two markers in pages of at most 10,000 entries.
    assert log_requests(emulator) - before == 3


def test_real_job_result_file_matches_its_hash(
    emulator: Emulator, big_job: tuple[str, Job]
) -> None:
    _, job = big_job
    (result,) = [f for f in job.files if f.type == "result"]
    assert result.name == "result.bin" and result.size == 200_000 and result.is_uploaded
    data = download_all(make_client(emulator), result)
    assert len(data) == 200_000
    assert hashlib.sha256(data).digest() == result.hash.digest


def test_log_page_newest_after_before(emulator: Emulator, big_job: tuple[str, Job]) -> None:
    jobname, _ = big_job
    client = make_client(emulator)
    newest = client.log_page(jobname)
    # The bottom marker counts toward the cap.
    assert len(newest.messages) == LOG_PAGE_CAP - 1
    assert newest.has_bottom and not newest.has_top
    assert newest.messages[-1].message == "to stderr"
    reference = newest.messages[0]
    assert reference.event_id == "15003"
    older = client.log_page(jobname, before=reference)
    assert [m.event_id for m in older.messages] == [str(i) for i in range(5003, 15003)]
    assert not older.has_top and not older.has_bottom
    oldest = client.log_page(jobname, before=older.messages[0])
    assert oldest.has_top
    assert [m.event_id for m in oldest.messages] == [str(i) for i in range(1, 5003)]
    after = client.log_page(jobname, after=oldest.messages[0], nentries=3)
    assert [m.message for m in after.messages] == ["line 2", "line 3", "line 4"]
    assert not after.has_bottom
    last = client.log_page(jobname, after=newest.messages[-2])
    assert [m.message for m in last.messages] == ["to stderr"] and last.has_bottom
    small = client.log_page(jobname, nentries=5)
    assert [m.event_id for m in small.messages] == [str(i) for i in range(24998, 25002)]
    assert small.has_bottom


@pytest.mark.parametrize("nentries", [0, -1, LOG_PAGE_CAP + 1, True])
def test_log_page_validation_sends_nothing(fresh_emulator: Emulator, nentries: int) -> None:
    jobname = fresh_emulator.create_finished(status="Completed", log_lines=10)
    with pytest.raises(ValueError):
        make_client(fresh_emulator).log_page(jobname, nentries=nentries)
    assert log_requests(fresh_emulator) == 0


def test_log_page_after_and_before_together_is_refused(fresh_emulator: Emulator) -> None:
    jobname = fresh_emulator.create_finished(status="Completed", log_lines=10)
    client = make_client(fresh_emulator)
    message = client.log_page(jobname).messages[4]
    with pytest.raises(ValueError):
        client.log_page(jobname, after=message, before=message)
    assert log_requests(fresh_emulator) == 1


def test_log_page_of_unknown_job(emulator: Emulator) -> None:
    with pytest.raises(PermissionDeniedError):
        make_client(emulator).log_page(UNKNOWN_JOB)


def test_log_page_retried_on_503(fresh_emulator: Emulator) -> None:
    em = fresh_emulator
    jobname = em.create_finished(status="Completed", log_lines=10)
    em.fault(endpoint="get_logs", mode="status", status=503, retry_after=1, count=1)
    page = make_client(em).log_page(jobname)
    assert len(page.messages) == 10 and page.has_top and page.has_bottom
    assert log_requests(em) == 2


def test_running_job_pages_after_its_newest_message_until_the_bottom(emulator: Emulator) -> None:
    client = make_client(emulator)
    jobname = emulator.submit("echo first; while [ ! -e go ]; do sleep 0.05; done; echo second")
    work_dir = Path(emulator.admin("GET", f"jobs/{jobname}")["work_dir"])
    page = wait_for(lambda: (p := client.log_page(jobname)).messages and p, what="the first line")
    assert [m.message for m in page.messages] == ["first"]
    assert page.has_top and not page.has_bottom
    newest = page.messages[-1]
    newer = client.log_page(jobname, after=newest)
    assert newer.messages == [] and not newer.has_bottom  # running: no bottom yet
    (work_dir / "go").touch()
    assert wait_done(client, jobname).status == "Completed"
    newer = client.log_page(jobname, after=newest)
    assert [m.message for m in newer.messages] == ["second"] and newer.has_bottom


def test_running_job_without_output_yet(emulator: Emulator) -> None:
    jobname = emulator.submit("while [ ! -e go ]; do sleep 0.05; done; seq 1 3")
    page = make_client(emulator).log_page(jobname)
    assert page.messages == [] and page.has_top and not page.has_bottom


def test_unfinished_log_has_no_bottom(fresh_emulator: Emulator) -> None:
    # A job the server still reports as running, with a long log already.
    jobname = fresh_emulator.create_finished(status="Running", log_lines=15_000)
    client = make_client(fresh_emulator)
    newest = client.log_page(jobname)
    assert len(newest.messages) == LOG_PAGE_CAP
    assert not newest.has_top and not newest.has_bottom
    older = client.log_page(jobname, before=newest.messages[0])
    assert older.has_top and not older.has_bottom
    assert [m.event_id for m in older.messages] == [str(i) for i in range(1, 5_001)]
    assert client.log_page(jobname, after=newest.messages[-1]).messages == []
