"""Log pages and the log buffer against the emulator: markers, the 10,000 cap, paging."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from conftest import Emulator, wait_for
from test_client_api import download_all

from jhfs.client import (
    Job,
    JuliaHubClient,
    LogBuffer,
    PermissionDeniedError,
    ServerError,
    TokenSource,
)
from jhfs.client.api import LOG_PAGE_CAP
from jhfs.client.models import LogMessage, LogPage, parse_log_page

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


def read_whole_log(buffer: LogBuffer) -> None:
    buffer.extend_newer()
    while not buffer.has_first:
        buffer.extend_older()


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
    buffer = LogBuffer(client, jobname)
    read_whole_log(buffer)
    assert buffer.has_first and buffer.has_last
    texts = [m.message for m in buffer.messages]
    assert texts[:25000] == [f"line {i}" for i in range(1, 25001)]
    assert texts[25000:] == ["to stderr"]
    assert [m.event_id for m in buffer.messages] == [str(i) for i in range(1, 25002)]
    # 25,001 messages and two markers in pages of at most 10,000 entries.
    assert log_requests(emulator) - before == 3
    # Done: nothing more is asked for either way.
    assert buffer.extend_newer() == 0 and buffer.extend_older() == 0
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


def test_big_finished_log_takes_a_request_per_10000_lines(fresh_emulator: Emulator) -> None:
    em = fresh_emulator
    lines = 200_000
    jobname = em.create_finished(status="Completed", log_lines=lines)
    buffer = LogBuffer(make_client(em), jobname)
    read_whole_log(buffer)
    assert len(buffer.messages) == lines
    assert buffer.messages[0].event_id == "1" and buffer.messages[-1].event_id == str(lines)
    # lines + 2 markers, 10,000 entries a page: 21 for 200,000, 101 for a million.
    assert log_requests(em) == -(-(lines + 2) // LOG_PAGE_CAP)


def test_empty_finished_log(fresh_emulator: Emulator) -> None:
    jobname = fresh_emulator.create_finished(status="Failed", log_lines=0)
    buffer = LogBuffer(make_client(fresh_emulator), jobname)
    assert buffer.extend_older() == 0  # with nothing held, this is the newest page
    assert buffer.has_first and buffer.has_last and buffer.messages == []
    assert buffer.extend_newer() == 0 and buffer.extend_older() == 0
    assert log_requests(fresh_emulator) == 1


def test_running_job_buffer_follows_until_the_bottom(emulator: Emulator) -> None:
    client = make_client(emulator)
    jobname = emulator.submit("echo first; while [ ! -e go ]; do sleep 0.05; done; echo second")
    work_dir = Path(emulator.admin("GET", f"jobs/{jobname}")["work_dir"])
    buffer = LogBuffer(client, jobname)
    wait_for(lambda: buffer.extend_newer() or buffer.messages, what="the first line")
    assert [m.message for m in buffer.messages] == ["first"]
    assert buffer.has_first and not buffer.has_last
    assert buffer.extend_newer() == 0 and not buffer.has_last  # running: no bottom yet
    (work_dir / "go").touch()
    assert wait_done(client, jobname).status == "Completed"
    assert buffer.extend_newer() == 1
    assert [m.message for m in buffer.messages] == ["first", "second"]
    assert buffer.has_last


def test_running_job_without_output_yet(emulator: Emulator) -> None:
    client = make_client(emulator)
    jobname = emulator.submit("while [ ! -e go ]; do sleep 0.05; done; seq 1 3")
    work_dir = Path(emulator.admin("GET", f"jobs/{jobname}")["work_dir"])
    buffer = LogBuffer(client, jobname)
    assert buffer.extend_newer() == 0
    assert buffer.has_first and not buffer.has_last and buffer.messages == []
    (work_dir / "go").touch()
    wait_done(client, jobname)
    assert buffer.extend_newer() == 3
    assert [m.message for m in buffer.messages] == ["1", "2", "3"]
    assert buffer.has_first and buffer.has_last


def test_unfinished_log_has_no_bottom(fresh_emulator: Emulator) -> None:
    # A job the server still reports as running, with a long log already.
    jobname = fresh_emulator.create_finished(status="Running", log_lines=15_000)
    buffer = LogBuffer(make_client(fresh_emulator), jobname)
    assert buffer.extend_newer() == LOG_PAGE_CAP
    assert not buffer.has_first and not buffer.has_last
    assert buffer.extend_older() == 5_000
    assert buffer.has_first and not buffer.has_last
    assert buffer.extend_newer() == 0 and not buffer.has_last
    assert [m.event_id for m in buffer.messages] == [str(i) for i in range(1, 15_001)]


def test_consumed_messages_may_be_dropped(fresh_emulator: Emulator) -> None:
    jobname = fresh_emulator.create_finished(status="Completed", log_lines=25_000)
    buffer = LogBuffer(make_client(fresh_emulator), jobname)
    seen: list[str | None] = []
    buffer.extend_newer()
    while True:
        seen[:0] = [m.event_id for m in buffer.messages]
        buffer.messages.clear()  # written elsewhere: the buffer still knows where it was
        if buffer.has_first:
            break
        buffer.extend_older()
    assert seen == [str(i) for i in range(1, 25_001)]


class StuckClient(JuliaHubClient):
    """A server that answers an empty older page without the top marker (no emulator does)."""

    def __init__(self) -> None:
        super().__init__("https://juliahub.example.com", TokenSource(token="t"))

    def log_page(
        self,
        jobname: str,
        *,
        after: LogMessage | None = None,
        before: LogMessage | None = None,
        nentries: int | None = None,
    ) -> LogPage:
        if before is None:
            return parse_log_page(b'[{"message": "m", "eventId": "5", "timestamp": 5}]')
        return parse_log_page(b"[]")


def test_buffer_reports_a_server_that_never_reaches_the_top() -> None:
    buffer = LogBuffer(StuckClient(), "jr-aaaaaaaaaa")
    assert buffer.extend_newer() == 1
    with pytest.raises(ServerError, match="did not mark its start"):
        buffer.extend_older()  # instead of paging on forever
