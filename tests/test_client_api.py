"""The HTTP client against the emulator: calls, error mapping, retries, downloads, the token."""

from __future__ import annotations

import base64
import hashlib
import http.server
import logging
import os
import re
import socket
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import requests
from conftest import Emulator, wait_for

from jhfs.client import (
    AuthenticationError,
    Identity,
    JobFile,
    JuliaHubClient,
    JuliaHubError,
    NotFoundError,
    PermissionDeniedError,
    ServerError,
    ServerUnreachableError,
    TokenSource,
    TransferCancelled,
)
from jhfs.client.api import RETRY_AFTER_CAP, _retry_after
from jhfs.client.models import FileHash

UNKNOWN_JOB = "jr-zzzzzzzzzz"

SOME_TOKEN = "a-token-that-is-no-word"  # redacted wherever it appears


def make_client(em: Emulator, **kwargs: Any) -> JuliaHubClient:
    return JuliaHubClient(em.url, TokenSource(token=em.token), **kwargs)


@pytest.fixture
def client(emulator: Emulator) -> Iterator[JuliaHubClient]:
    c = make_client(emulator)
    yield c
    c.close()


def requests_to(em: Emulator, endpoint: str) -> int:
    return int(em.stats()["requests"].get(endpoint, 0))


class BytesSink:
    """A DownloadSink into a bytearray of the file's size, recording what it is told.

    Each answer's writes must follow its begin() contiguously and stay inside it.
    """

    def __init__(self, size: int, cancel_after_writes: int | None = None) -> None:
        self.data = bytearray(size)
        self.begins: list[tuple[int, int]] = []
        self.writes: list[tuple[int, int]] = []  # (offset, length)
        self.cancel_after_writes = cancel_after_writes
        self._next = self._end = 0

    def begin(self, start: int, end: int) -> None:
        assert 0 <= start <= end <= len(self.data)
        self.begins.append((start, end))
        self._next, self._end = start, end

    def write(self, offset: int, data: bytes) -> None:
        assert self.begins, "write before begin"
        assert offset == self._next and offset + len(data) <= self._end, (offset, len(data))
        self.data[offset : offset + len(data)] = data
        self.writes.append((offset, len(data)))
        self._next += len(data)

    def cancelled(self) -> bool:
        return self.cancel_after_writes is not None and len(self.writes) >= self.cancel_after_writes

    @property
    def written(self) -> int:
        return sum(length for _, length in self.writes)


def download_all(client: JuliaHubClient, file: JobFile) -> bytes:
    """The whole file through download_range."""
    sink = BytesSink(file.size)
    client.download_range(file, 0, file.size, sink)
    return bytes(sink.data)


def job_file_content(em: Emulator, content: bytes, name: str = "data.bin") -> tuple[str, JobFile]:
    jobname = em.create_finished(
        status="Completed",
        files=[{"type": "result", "name": name, "content": base64.b64encode(content).decode()}],
    )
    job = make_client(em).job(jobname)
    assert job is not None
    return jobname, job.files[0]


# --- the calls ----------------------------------------------------------------------------


def test_whoami(client: JuliaHubClient) -> None:
    assert client.whoami() == Identity("emulator-user", "0.0.1")


def test_jobs_newest_first_with_limit(fresh_emulator: Emulator) -> None:
    em = fresh_emulator
    names = [em.create_finished(status=s) for s in ("Completed", "Failed", "Stopped")]
    client = make_client(em)
    assert [j.jobname for j in client.jobs()] == names[::-1]
    assert [j.jobname for j in client.jobs(limit=2)] == names[::-1][:2]
    assert [j.status for j in client.jobs()] == ["Stopped", "Failed", "Completed"]


def test_jobs_default_limit_is_the_servers(fresh_emulator: Emulator) -> None:
    fresh_emulator.admin("POST", "jobs", {"finished": {"status": "Completed"}, "count": 25})
    assert len(make_client(fresh_emulator).jobs()) == 20
    assert len(make_client(fresh_emulator).jobs(limit=25)) == 25


@pytest.mark.parametrize("limit", [0, -3, 2.5, True])
def test_bad_limit_sends_nothing(fresh_emulator: Emulator, limit: Any) -> None:
    with pytest.raises(ValueError):
        make_client(fresh_emulator).jobs(limit=limit)
    assert requests_to(fresh_emulator, "get_jobs") == 0


def test_job_and_hasura_headers(fresh_emulator: Emulator) -> None:
    em = fresh_emulator
    jobname = em.create_finished(
        status="Completed",
        outputs='{"loss": 0.1}',
        alias="nightly",
        env={"A": "1", "QUOTE": 'say "hi"'},
        escape_inputs=True,
        proxy_link="https://jr-proxy.example.com/",
        files=[
            {"type": "input", "name": "code.jl", "content": base64.b64encode(b"1+1").decode()},
            {"type": "source", "name": "code.jl", "content": base64.b64encode(b"1+1").decode()},
            {"type": "result", "name": "pending.tar.gz", "uploading": True},
        ],
    )
    job = make_client(em).job(jobname)
    assert job is not None
    assert (job.jobname, job.status, job.alias, job.outputs) == (
        jobname,
        "Completed",
        "nightly",
        '{"loss": 0.1}',
    )
    assert job.inputs == {"A": "1", "QUOTE": 'say "hi"'}  # escaped on the wire
    assert job.hostname == "jr-proxy.example.com"
    assert job.raw["inputs"].startswith('{\\"')  # raw keeps the escaped text as sent
    assert [(f.type, f.name, f.is_uploaded) for f in job.files] == [
        ("input", "code.jl", True),
        ("source", "code.jl", True),
        ("result", "pending.tar.gz", False),
    ]
    assert job.files[0].hash == FileHash("sha2_256", hashlib.sha256(b"1+1").digest())
    assert job.files[2].size == 0
    assert job.submitted is not None and job.ended is not None and job.submitted < job.ended
    stats = em.stats()
    assert stats["requests"]["job"] == 1
    assert stats["missing_hasura_headers"] == 0


def test_unknown_job_is_none(client: JuliaHubClient) -> None:
    assert client.job(UNKNOWN_JOB) is None


def test_odd_jobname_is_escaped_in_the_path(client: JuliaHubClient) -> None:
    assert client.job("jr-../../api/v1") is None


def test_miscased_status_from_the_server_is_a_server_error(emulator: Emulator) -> None:
    jobname = emulator.create_finished(status="completed")
    with pytest.raises(ServerError, match="'completed'"):
        make_client(emulator).job(jobname)


def test_unknown_status_passes_through(emulator: Emulator) -> None:
    jobname = emulator.create_finished(status="Paused")
    job = make_client(emulator).job(jobname)
    assert job is not None and job.status == "Paused" and not job.is_done


def test_kill_unknown_job_is_permission_denied(client: JuliaHubClient) -> None:
    with pytest.raises(PermissionDeniedError, match="403"):
        client.kill_job(UNKNOWN_JOB)


def test_extend_then_kill_a_running_job(emulator: Emulator, client: JuliaHubClient) -> None:
    jobname = emulator.submit("echo started; sleep 600", timelimit=1)
    wait_for(lambda: (j := client.job(jobname)) and j.status == "Running", what="Running")
    client.extend_job(jobname, 2)
    assert emulator.admin("GET", f"jobs/{jobname}")["timelimit_hours"] == 3
    client.kill_job(jobname)
    job = wait_for(lambda: (j := client.job(jobname)) and j.is_done and j, what="done")
    assert job.status == "Stopped"


def test_extend_unknown_jobs(client: JuliaHubClient) -> None:
    with pytest.raises(PermissionDeniedError):
        client.extend_job(UNKNOWN_JOB, 1)  # a well-formed unknown name: 403
    with pytest.raises(NotFoundError, match="Invalid jobname"):
        client.extend_job("not-a-job", 1)  # 200 with success false


@pytest.mark.parametrize("hours", [0, -1, 1.5, 2.0, True, "2", None])
def test_extend_validation_sends_nothing(fresh_emulator: Emulator, hours: Any) -> None:
    jobname = fresh_emulator.create_finished(status="Running")
    with pytest.raises(ValueError):
        make_client(fresh_emulator).extend_job(jobname, hours)
    assert requests_to(fresh_emulator, "extend_job") == 0


def test_extend_and_kill_of_a_finished_job_succeed_and_change_nothing(
    emulator: Emulator, client: JuliaHubClient
) -> None:
    jobname = emulator.create_finished(status="Completed")
    before = client.job(jobname)
    client.extend_job(jobname, 1)
    client.kill_job(jobname)
    assert client.job(jobname) == before


def test_server_url_rules(emulator: Emulator) -> None:
    assert make_client(emulator).server == emulator.url
    slashed = JuliaHubClient(emulator.url + "//", TokenSource(token=emulator.token))
    assert slashed.server == emulator.url
    assert slashed.whoami().username == "emulator-user"
    for bad in ("http://juliahub.com", "ftp://127.0.0.1", "http://192.168.1.1:80"):
        with pytest.raises(ValueError):
            JuliaHubClient(bad, TokenSource(token=SOME_TOKEN))


def test_a_path_prefix_is_kept(emulator: Emulator) -> None:
    # The emulator serves no prefix, so every call under one is a 404: proof it was used.
    prefixed = JuliaHubClient(emulator.url + "/prefix/", TokenSource(token=emulator.token))
    assert prefixed.server == emulator.url + "/prefix"
    with pytest.raises(NotFoundError):
        prefixed.whoami()


def test_one_client_shared_by_many_threads(emulator: Emulator) -> None:
    contents = [os.urandom(300_000 + i) for i in range(4)]
    files = [job_file_content(emulator, c, name=f"f{i}.bin") for i, c in enumerate(contents)]
    client = make_client(emulator)

    def work(i: int) -> bool:
        jobname, file = files[i % 4]
        job = client.job(jobname)
        data = download_all(client, file)
        return job is not None and job.jobname == jobname and data == contents[i % 4]

    with ThreadPoolExecutor(max_workers=16) as pool:
        assert all(pool.map(work, range(64)))


# --- authentication ---------------------------------------------------------------------


def test_wrong_token_is_an_authentication_error(fresh_emulator: Emulator) -> None:
    client = JuliaHubClient(fresh_emulator.url, TokenSource(token="wrong-token-123"))
    with pytest.raises(AuthenticationError, match="401"):
        client.whoami()
    with pytest.raises(AuthenticationError):
        client.jobs()
    assert requests_to(fresh_emulator, "api_v1") == 1  # a fixed token is not retried


# --- the identity check on an older server, and JuliaHub's 500 for a bad token ----------


def test_a_server_without_api_v1_is_asked_over_graphql(fresh_emulator: Emulator) -> None:
    em = fresh_emulator
    em.fault(endpoint="api_v1", mode="status", status=404)
    assert make_client(em).whoami() == Identity("emulator-user", None)
    assert requests_to(em, "api_v1") == 1 and requests_to(em, "graphql") == 1
    assert em.stats()["missing_hasura_headers"] == 0  # X-Hasura-Role: jhuser was sent


def test_a_500_from_api_v1_is_a_refused_token(fresh_emulator: Emulator) -> None:
    em = fresh_emulator
    em.fault(endpoint="api_v1", mode="status", status=500, count=5)
    with pytest.raises(AuthenticationError, match=r"refused the token \(500: .*JULIAHUB_TOKEN"):
        make_client(em).whoami()
    assert requests_to(em, "api_v1") == 1  # not retried, and no fallback
    assert requests_to(em, "graphql") == 0


def test_a_500_elsewhere_is_no_refused_token(fresh_emulator: Emulator) -> None:
    em = fresh_emulator
    em.fault(endpoint="api_v1", mode="status", status=404)
    em.fault(endpoint="graphql", mode="status", status=500)
    with pytest.raises(ServerError, match="500"):
        make_client(em).whoami()


@pytest.mark.parametrize(
    ("status", "body", "error", "says"),
    [
        (401, None, AuthenticationError, r"refused the token \(401"),
        # Hasura answers an expired token with a 200 and this error.
        (200, '{"errors": [{"extensions": {"path": "$", "code": "invalid-jwt"},'
              ' "message": "Could not verify JWT: JWTExpired"}]}',
         AuthenticationError, r"refused the token \(invalid-jwt: Could not verify JWT"),
        (200, '{"errors": [{"message": "field \'users\' not found\\nin type"}]}',
         ServerError, r"errors: field 'users' not found in type$"),
        (200, '{"data": {"users": []}}', ServerError, "0 users"),
        (200, '{"data": {"users": [{"id": 1}]}}', ServerError, "no username"),
        (200, '{"data": null}', ServerError, "no data"),
        (404, None, NotFoundError, "GraphQL.*404"),
    ],
)  # fmt: skip
def test_what_graphql_answers_instead(
    fresh_emulator: Emulator, status: int, body: str | None, error: type[Exception], says: str
) -> None:
    em = fresh_emulator
    em.fault(endpoint="api_v1", mode="status", status=404)
    em.fault(endpoint="graphql", mode="status", status=status, body=body)
    with pytest.raises(error, match=says):
        make_client(em).whoami()
    assert requests_to(em, "graphql") == 1


def test_a_text_answer_is_one_line_and_never_a_piece_of_the_token(
    fresh_emulator: Emulator,
) -> None:
    em = fresh_emulator
    text = "both start_time and end_time provided\r\n\x1b[31mcheck\u2028the query\n"
    em.fault(endpoint="get_logs", mode="status", status=400, body=text)
    with pytest.raises(ServerError) as info:
        make_client(em).log_page(UNKNOWN_JOB)
    assert str(info.value) == (
        f"logs of job {UNKNOWN_JOB}: the server answered 400: "
        "both start_time and end_time provided [31mcheck the query"
    )
    # The token across the point where the quote is cut short: no piece of it is left.
    em.fault(endpoint="get_jobs", mode="status", status=500, body="x" * 295 + em.token)
    with pytest.raises(ServerError) as info:
        make_client(em).jobs()
    assert em.token[:4] not in str(info.value)


def write_auth_toml(path: Path, token: str) -> None:
    path.write_text(f'id_token = "{token}"\nexpires_at = 4102444800\n')


def test_401_rereads_auth_toml_once_and_retries(fresh_emulator: Emulator, tmp_path: Path) -> None:
    em = fresh_emulator
    path = tmp_path / "auth.toml"
    write_auth_toml(path, "x" * len(em.token))
    tokens = TokenSource(auth_toml=path)
    client = JuliaHubClient(em.url, tokens)
    # Refreshed with the same size and mtime: only the re-read after the 401 can see it.
    stat = path.stat()
    write_auth_toml(path, em.token)
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert len(client.jobs()) == 0
    assert requests_to(em, "get_jobs") == 2  # the 401, then the retry


def test_401_with_an_unchanged_auth_toml_fails_after_one_request(
    fresh_emulator: Emulator, tmp_path: Path
) -> None:
    path = tmp_path / "auth.toml"
    write_auth_toml(path, "stale-token")
    client = JuliaHubClient(fresh_emulator.url, TokenSource(auth_toml=path))
    with pytest.raises(AuthenticationError, match=r"JuliaHub\.authenticate"):
        client.jobs()
    assert requests_to(fresh_emulator, "get_jobs") == 1


def test_auth_toml_change_on_disk_is_picked_up(fresh_emulator: Emulator, tmp_path: Path) -> None:
    path = tmp_path / "auth.toml"
    write_auth_toml(path, "stale-token")
    client = JuliaHubClient(fresh_emulator.url, TokenSource(auth_toml=path))
    with pytest.raises(AuthenticationError):
        client.whoami()
    write_auth_toml(path, fresh_emulator.token)  # a different size: noticed without a 401
    assert client.whoami().username == "emulator-user"
    assert requests_to(fresh_emulator, "api_v1") == 2


def test_from_environment(fresh_emulator: Emulator, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JULIAHUB_SERVER", fresh_emulator.url + "/")
    monkeypatch.setenv("JULIAHUB_TOKEN", fresh_emulator.token)
    client = JuliaHubClient.from_environment(timeout=5.0)
    assert client.server == fresh_emulator.url
    assert client.whoami().username == "emulator-user"


# --- retries ------------------------------------------------------------------------------


def test_get_retried_on_503_with_retry_after(fresh_emulator: Emulator) -> None:
    em = fresh_emulator
    em.create_finished(status="Completed")
    em.fault(endpoint="get_jobs", mode="status", status=503, retry_after=1, count=2)
    assert len(make_client(em).jobs()) == 1
    assert requests_to(em, "get_jobs") == 3


@pytest.mark.parametrize("status", [429, 502, 504])
def test_get_retried_on_other_transient_statuses(fresh_emulator: Emulator, status: int) -> None:
    fresh_emulator.fault(endpoint="api_v1", mode="status", status=status, retry_after=0, count=1)
    assert make_client(fresh_emulator).whoami().username == "emulator-user"
    assert requests_to(fresh_emulator, "api_v1") == 2


def test_get_gives_up_after_the_retries(fresh_emulator: Emulator) -> None:
    em = fresh_emulator
    em.fault(endpoint="job", mode="status", status=503, retry_after=0, count=10)
    with pytest.raises(ServerUnreachableError, match="3 attempts"):
        make_client(em, retries=2).job(UNKNOWN_JOB)
    assert requests_to(em, "job") == 3


def test_500_is_a_server_error_not_retried(fresh_emulator: Emulator) -> None:
    fresh_emulator.fault(endpoint="get_jobs", mode="status", status=500, count=5)
    with pytest.raises(ServerError, match="500"):
        make_client(fresh_emulator).jobs()
    assert requests_to(fresh_emulator, "get_jobs") == 1


def test_get_retried_on_reset_and_truncated_answers(fresh_emulator: Emulator) -> None:
    em = fresh_emulator
    em.admin("POST", "jobs", {"finished": {"status": "Completed"}, "count": 30})
    em.fault(endpoint="get_jobs", mode="reset", count=1)
    em.fault(endpoint="get_jobs", mode="truncate", count=1)
    assert len(make_client(em).jobs(limit=30)) == 30
    assert requests_to(em, "get_jobs") == 3


def test_get_retried_after_a_read_timeout(fresh_emulator: Emulator) -> None:
    em = fresh_emulator
    em.fault(endpoint="api_v1", mode="delay", delay=3.0, count=1)
    assert make_client(em, timeout=0.5).whoami().username == "emulator-user"
    assert requests_to(em, "api_v1") == 2


def test_kill_not_retried_on_an_answer(fresh_emulator: Emulator) -> None:
    em = fresh_emulator
    jobname = em.create_finished(status="Running")
    em.fault(endpoint="kill_job", mode="status", status=503, retry_after=0, count=3)
    with pytest.raises(ServerError, match="503"):
        make_client(em).kill_job(jobname)
    assert requests_to(em, "kill_job") == 1


def test_kill_not_retried_when_it_may_have_taken_effect(fresh_emulator: Emulator) -> None:
    em = fresh_emulator
    jobname = em.create_finished(status="Running")
    em.fault(endpoint="kill_job", mode="delay", delay=2.0, count=1)
    client = make_client(em, timeout=0.5)
    with pytest.raises(ServerUnreachableError, match="may have taken effect"):
        client.kill_job(jobname)
    assert requests_to(em, "kill_job") == 1
    # ... and it did take effect: a blind retry would have sent a second kill.
    wait_for(lambda: (j := client.job(jobname)) and j.status == "Stopped", what="Stopped")


def test_kill_not_retried_on_a_reset(fresh_emulator: Emulator) -> None:
    em = fresh_emulator
    jobname = em.create_finished(status="Running")
    em.fault(endpoint="kill_job", mode="reset", count=3)
    with pytest.raises(ServerUnreachableError):
        make_client(em).kill_job(jobname)
    assert requests_to(em, "kill_job") == 1


@pytest.mark.parametrize("mode", ["status", "reset", "delay"])
def test_extend_never_retried(fresh_emulator: Emulator, mode: str) -> None:
    em = fresh_emulator
    jobname = em.create_finished(status="Running")
    em.fault(endpoint="extend_job", mode=mode, status=503, retry_after=0, delay=2.0, count=3)
    with pytest.raises((ServerError, ServerUnreachableError)):
        make_client(em, timeout=0.5).extend_job(jobname, 1)
    assert requests_to(em, "extend_job") == 1


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_connection_refused(caplog: pytest.LogCaptureFixture) -> None:
    client = JuliaHubClient(
        f"http://127.0.0.1:{free_port()}", TokenSource(token=SOME_TOKEN), retries=2
    )
    with caplog.at_level(logging.WARNING, logger="jhfs.client"):
        with pytest.raises(ServerUnreachableError, match="3 attempts"):
            client.jobs()
        # Nothing reached a server, so even the actions may be retried safely.
        with pytest.raises(ServerUnreachableError, match="3 attempts"):
            client.kill_job("jr-aaaaaaaaaa")
        with pytest.raises(ServerUnreachableError, match="3 attempts"):
            client.extend_job("jr-aaaaaaaaaa", 1)
    assert caplog.text.count("retry 2 of 2") == 3


# --- downloads ----------------------------------------------------------------------------


def test_download_matches_the_hash(emulator: Emulator) -> None:
    jobname = emulator.create_finished(
        status="Completed", files=[{"type": "result", "name": "big.bin", "size": 5_000_000}]
    )
    client = make_client(emulator)
    job = client.job(jobname)
    assert job is not None
    (file,) = job.files
    assert file.size == 5_000_000
    sink = BytesSink(file.size)
    client.download_range(file, 0, file.size, sink)
    assert sink.written == 5_000_000
    assert hashlib.sha256(sink.data).digest() == file.hash.digest


def test_download_name_with_odd_characters(emulator: Emulator) -> None:
    content = b"spaces and unicode"
    _, file = job_file_content(emulator, content, name="my file é#?.txt")
    assert download_all(make_client(emulator), file) == content


def test_a_404_for_what_the_server_listed_is_its_error_not_a_missing_name(
    emulator: Emulator,
) -> None:
    # A file, a log and the job list come from the server's own listings: a 404
    # for one is EIO ("the server answered 404"), never ENOENT, which would say
    # that a name `ls` shows does not exist.
    jobname = emulator.create_finished(status="Completed")
    # A size > 0: a well-formed Range (an empty one would be bytes=0--1).
    missing = JobFile(jobname, "result", "nope.bin", 10, FileHash(None, None), None)
    with pytest.raises(ServerError, match="404"):
        download_all(make_client(emulator), missing)


@pytest.mark.parametrize("endpoint", ["get_jobs", "get_logs"])
def test_a_404_for_the_job_list_or_a_log_is_a_server_error(
    fresh_emulator: Emulator, endpoint: str
) -> None:
    jobname = fresh_emulator.create_finished(status="Completed")
    fresh_emulator.fault(endpoint=endpoint, mode="status", status=404)
    client = make_client(fresh_emulator)
    with pytest.raises(ServerError, match="404"):
        client.jobs() if endpoint == "get_jobs" else client.log_page(jobname)


@pytest.mark.parametrize("mode", ["truncate", "reset"])
def test_download_resumes_with_range(fresh_emulator: Emulator, mode: str) -> None:
    em = fresh_emulator
    content = os.urandom(3_000_001)
    _, file = job_file_content(em, content)
    em.admin("POST", "stats/reset")
    em.fault(endpoint="download", mode=mode, count=1)
    sink = BytesSink(file.size)
    make_client(em).download_range(file, 0, file.size, sink)
    assert sink.data == content
    stats = em.stats()
    assert stats["requests"]["download"] == 2
    assert sink.begins[0] == (0, len(content))
    if mode == "truncate":
        # The second answer carried only what was missing (a 206), not the whole file again
        # (every byte of the first answer is kept: nothing need be sent twice).
        assert len(content) <= stats["bytes_sent"] < 2 * len(content)
        ((resumed_at, end),) = sink.begins[1:]
        assert 0 < resumed_at < len(content) and end == len(content)


def test_download_gives_up_after_the_retries(fresh_emulator: Emulator) -> None:
    em = fresh_emulator
    _, file = job_file_content(em, os.urandom(100_000))
    em.fault(endpoint="download", mode="truncate", count=10)
    with pytest.raises(ServerUnreachableError, match="2 attempts"):
        download_all(make_client(em, retries=1), file)
    assert requests_to(em, "download") == 2


def test_download_retried_on_503(fresh_emulator: Emulator) -> None:
    em = fresh_emulator
    content = os.urandom(10_000)
    _, file = job_file_content(em, content)
    em.fault(endpoint="download", mode="status", status=503, retry_after=0, count=2)
    assert download_all(make_client(em), file) == content


def test_download_does_not_check_the_hash(fresh_emulator: Emulator) -> None:
    # Verifying is the file cache's job: the client hands over what it got.
    em = fresh_emulator
    content = os.urandom(50_000)
    _, file = job_file_content(em, content)
    em.fault(endpoint="download", mode="corrupt", count=1)
    data = download_all(make_client(em), file)
    assert len(data) == len(content) and data != content
    assert hashlib.sha256(data).digest() != file.hash.digest


def test_download_of_a_range_in_the_middle(fresh_emulator: Emulator) -> None:
    em = fresh_emulator
    content = os.urandom(1_000_000)
    _, file = job_file_content(em, content)
    em.admin("POST", "stats/reset")
    start, end = 123_457, 876_543
    sink = BytesSink(file.size)
    make_client(em).download_range(file, start, end, sink)
    assert sink.begins == [(start, end)]  # a 206 for just that range
    assert sink.written == end - start
    assert sink.data[start:end] == content[start:end]
    assert not any(sink.data[:start]) and not any(sink.data[end:])
    assert em.stats()["bytes_sent"] == end - start


def test_download_of_a_range_when_the_server_ignores_range(fresh_emulator: Emulator) -> None:
    em = fresh_emulator
    content = os.urandom(1_000_000)
    _, file = job_file_content(em, content)
    em.fault(endpoint="download", mode="no_range")
    try:
        sink = BytesSink(file.size)
        make_client(em).download_range(file, 400_000, 600_000, sink)
    finally:
        em.admin("DELETE", "faults")
    # The caller learns that ranges are not served: the whole file, announced as such.
    assert sink.begins == [(0, len(content))]
    assert sink.written == len(content)
    assert sink.data == content


def test_download_cancelled_after_the_first_write(fresh_emulator: Emulator) -> None:
    em = fresh_emulator
    jobname = em.create_finished(
        status="Completed", files=[{"type": "result", "name": "big.bin", "size": 5_000_000}]
    )
    job = make_client(em).job(jobname)
    assert job is not None
    (file,) = job.files
    em.fault(endpoint="download", mode="throttle", rate=1_000_000)  # 5 s for the whole file
    sink = BytesSink(file.size, cancel_after_writes=1)
    try:
        with pytest.raises(TransferCancelled):
            make_client(em).download_range(file, 0, file.size, sink)
    finally:
        em.admin("DELETE", "faults")
    assert len(sink.writes) == 1  # stopped at the first check after it
    assert 0 < sink.written < file.size
    assert requests_to(em, "download") == 1  # a cancellation is not retried


def test_download_cancelled_before_it_starts_sends_nothing(fresh_emulator: Emulator) -> None:
    em = fresh_emulator
    _, file = job_file_content(em, os.urandom(10_000))
    sink = BytesSink(file.size, cancel_after_writes=0)
    with pytest.raises(TransferCancelled):
        make_client(em).download_range(file, 0, file.size, sink)
    assert sink.begins == [] and sink.writes == []
    assert requests_to(em, "download") == 0


def test_an_empty_range_asks_the_server_nothing(fresh_emulator: Emulator) -> None:
    em = fresh_emulator
    _, file = job_file_content(em, b"")
    sink = BytesSink(0)
    make_client(em).download_range(file, 0, 0, sink)
    assert sink.begins == [] and sink.writes == []
    assert requests_to(em, "download") == 0


def test_download_delivers_bytes_as_they_arrive(fresh_emulator: Emulator) -> None:
    em = fresh_emulator
    content = os.urandom(1_000_000)
    _, file = job_file_content(em, content)
    em.fault(endpoint="download", mode="throttle", rate=200_000)  # 5 s for the whole file
    sink = BytesSink(file.size)
    try:
        make_client(em).download_range(file, 0, file.size, sink)
    finally:
        em.admin("DELETE", "faults")
    assert sink.data == content
    # Written in pieces as the socket delivered them, not once the whole body was in.
    first_offset, first_length = sink.writes[0]
    assert first_offset == 0 and first_length < len(content)
    assert len(sink.writes) > 1


class RecordingServer:
    """A tiny HTTP server on a loopback address, recording the headers of each request."""

    def __init__(self, host: str, respond: Callable[[http.server.BaseHTTPRequestHandler], None]):
        self.seen: list[tuple[str, dict[str, str]]] = []
        owner = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                owner.seen.append((self.path, dict(self.headers)))
                respond(self)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer((host, 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


BLOB = b"redirected bytes " * 1000


def send_blob(handler: http.server.BaseHTTPRequestHandler) -> None:
    handler.send_response(200)
    handler.send_header("Content-Length", str(len(BLOB)))
    handler.end_headers()
    handler.wfile.write(BLOB)


@pytest.fixture
def storage() -> Iterator[RecordingServer]:
    server = RecordingServer("127.0.0.1", send_blob)
    yield server
    server.close()


def redirecting_api(location: Callable[[], str]) -> RecordingServer:
    def respond(handler: http.server.BaseHTTPRequestHandler) -> None:
        if handler.path.startswith("/jobs/"):
            handler.send_response(302)
            handler.send_header("Location", location())
            handler.send_header("Content-Length", "0")
            handler.end_headers()
        else:
            send_blob(handler)

    return RecordingServer("127.0.0.1", respond)


def test_redirect_to_another_host_drops_the_token(storage: RecordingServer) -> None:
    # The API answers on 127.0.0.1, the storage is reached as "localhost": another host.
    api = redirecting_api(lambda: f"http://localhost:{storage.port}/blob?sig=1")
    try:
        client = JuliaHubClient(f"http://127.0.0.1:{api.port}", TokenSource(token="secret-tok"))
        file = JobFile("jr-aaaaaaaaaa", "result", "out.bin", len(BLOB), FileHash(None, None), None)
        assert download_all(client, file) == BLOB
    finally:
        api.close()
    ((api_path, api_headers),) = api.seen
    assert api_path == "/jobs/jr-aaaaaaaaaa/files/out.bin?filetype=result"
    assert api_headers["Authorization"] == "Bearer secret-tok"
    ((blob_path, blob_headers),) = storage.seen
    assert blob_path == "/blob?sig=1"
    assert "Authorization" not in blob_headers
    assert "secret-tok" not in repr(blob_headers)


def test_netrc_does_not_replace_the_token(
    storage: RecordingServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # requests swaps a plain Authorization header for a matching ~/.netrc entry.
    netrc = tmp_path / "netrc"
    netrc.write_text("machine 127.0.0.1 login someone password netrc-password\n")
    netrc.chmod(0o600)
    monkeypatch.setenv("NETRC", str(netrc))
    client = JuliaHubClient(f"http://127.0.0.1:{storage.port}", TokenSource(token="secret-tok"))
    file = JobFile("jr-aaaaaaaaaa", "result", "out.bin", len(BLOB), FileHash(None, None), None)
    assert download_all(client, file) == BLOB
    ((_, headers),) = storage.seen
    assert headers["Authorization"] == "Bearer secret-tok"


def test_redirect_within_the_host_keeps_the_token() -> None:
    # The control for the test above: the header is kept where it belongs.
    api = redirecting_api(lambda: "/blob")
    try:
        client = JuliaHubClient(f"http://127.0.0.1:{api.port}", TokenSource(token="secret-tok"))
        file = JobFile("jr-aaaaaaaaaa", "result", "out.bin", len(BLOB), FileHash(None, None), None)
        assert download_all(client, file) == BLOB
    finally:
        api.close()
    assert [(p, h.get("Authorization")) for p, h in api.seen] == [
        ("/jobs/jr-aaaaaaaaaa/files/out.bin?filetype=result", "Bearer secret-tok"),
        ("/blob", "Bearer secret-tok"),
    ]


def range_headers(server: RecordingServer) -> list[str | None]:
    return [h.get("Range") for _, h in server.seen]


def test_download_restarts_when_range_is_not_honoured() -> None:
    blob = os.urandom(3 << 20)
    answers = 0

    def respond(handler: http.server.BaseHTTPRequestHandler) -> None:
        nonlocal answers
        answers += 1
        handler.send_response(200)  # never 206
        handler.send_header("Content-Length", str(len(blob)))
        handler.end_headers()
        # The first answer stops after 1.5 MiB: the client keeps what it has read of it.
        handler.wfile.write(blob if answers > 1 else blob[: 3 << 19])
        handler.close_connection = True

    server = RecordingServer("127.0.0.1", respond)
    try:
        client = JuliaHubClient(f"http://127.0.0.1:{server.port}", TokenSource(token=SOME_TOKEN))
        file = JobFile("jr-aaaaaaaaaa", "result", "out.bin", len(blob), FileHash(None, None), None)
        sink = BytesSink(file.size)
        client.download_range(file, 0, file.size, sink)
    finally:
        server.close()
    assert sink.data == blob
    # Started over from byte 0 (each 200 announced as the whole file), not appended.
    assert sink.begins == [(0, len(blob)), (0, len(blob))]
    first, resume = range_headers(server)
    assert first == f"bytes=0-{len(blob) - 1}"
    match = re.fullmatch(rf"bytes=(\d+)-{len(blob) - 1}", resume or "")
    assert match is not None and 0 < int(match.group(1)) <= 3 << 19, resume


def test_download_refuses_a_range_it_did_not_ask_for() -> None:
    blob = os.urandom(3 << 20)
    answers = 0

    def respond(handler: http.server.BaseHTTPRequestHandler) -> None:
        nonlocal answers
        answers += 1
        if answers == 2:  # the resume, answered from the wrong offset
            wrong = blob[7:]
            handler.send_response(206)
            handler.send_header("Content-Range", f"bytes 7-{len(blob) - 1}/{len(blob)}")
            handler.send_header("Content-Length", str(len(wrong)))
            handler.end_headers()
            handler.wfile.write(wrong)
            return
        handler.send_response(200)
        handler.send_header("Content-Length", str(len(blob)))
        handler.end_headers()
        handler.wfile.write(blob if answers > 1 else blob[: 3 << 19])
        handler.close_connection = True

    server = RecordingServer("127.0.0.1", respond)
    try:
        client = JuliaHubClient(f"http://127.0.0.1:{server.port}", TokenSource(token=SOME_TOKEN))
        file = JobFile("jr-aaaaaaaaaa", "result", "out.bin", len(blob), FileHash(None, None), None)
        sink = BytesSink(file.size)
        client.download_range(file, 0, file.size, sink)
    finally:
        server.close()
    assert sink.data == blob
    # The 206 from byte 7 was not used: no begin() for it, and asked for again.
    assert sink.begins == [(0, len(blob)), (0, len(blob))]
    first, resume, again = range_headers(server)
    assert first == f"bytes=0-{len(blob) - 1}"
    assert resume is not None and resume != first and again == resume


# --- the token never shows -----------------------------------------------------------------


def test_token_never_in_errors_or_logs(
    fresh_emulator: Emulator, caplog: pytest.LogCaptureFixture, tmp_path: Path
) -> None:
    em = fresh_emulator
    wrong = "wrong-secret-4711"
    good = make_client(em, retries=1, timeout=0.5)
    bad = JuliaHubClient(em.url, TokenSource(token=wrong), retries=1)
    jobname = em.create_finished(status="Running")
    _, file = job_file_content(em, os.urandom(10_000))
    errors: list[JuliaHubError] = []

    def expect_error(call: Callable[[], object]) -> None:
        with pytest.raises(JuliaHubError) as info:
            call()
        errors.append(info.value)

    with caplog.at_level(logging.DEBUG):
        expect_error(bad.whoami)  # 401
        expect_error(lambda: good.kill_job(UNKNOWN_JOB))  # 403
        expect_error(lambda: good.extend_job("bogus", 1))  # 200 Invalid jobname
        em.fault(endpoint="get_jobs", mode="status", status=500, count=1)
        expect_error(good.jobs)  # 500
        em.fault(endpoint="get_jobs", mode="status", status=503, retry_after=0, count=2)
        expect_error(good.jobs)  # 503 after the retries
        em.fault(endpoint="kill_job", mode="reset", count=1)
        expect_error(lambda: good.kill_job(jobname))  # reset, not retried
        em.fault(endpoint="api_v1", mode="delay", delay=2.0, count=2)
        expect_error(good.whoami)  # timeouts
        em.fault(endpoint="download", mode="truncate", count=2)
        expect_error(lambda: download_all(good, file))  # cut short
        expect_error(lambda: good.log_page(UNKNOWN_JOB))  # 403 on logs
        unreachable = JuliaHubClient(
            f"http://127.0.0.1:{free_port()}", TokenSource(token=em.token), retries=0
        )
        expect_error(unreachable.whoami)  # refused
    assert [type(e).__name__ for e in errors] == [
        "AuthenticationError",
        "PermissionDeniedError",
        "NotFoundError",
        "ServerError",
        "ServerUnreachableError",
        "ServerUnreachableError",
        "ServerUnreachableError",
        "ServerUnreachableError",
        "PermissionDeniedError",
        "ServerUnreachableError",
    ]
    texts = [str(e) for e in errors] + [repr(e) for e in errors]
    texts += [repr(good), repr(bad), caplog.text]
    texts += [str(e.__cause__) for e in errors if e.__cause__ is not None]
    for secret in (em.token, wrong):
        assert not [t for t in texts if secret in t]
    assert caplog.text  # the calls were logged (without the token)


def test_requests_exceptions_never_escape(fresh_emulator: Emulator) -> None:
    em = fresh_emulator
    em.fault(endpoint="*", mode="reset", count=100)
    client = make_client(em, retries=0)
    calls: list[Callable[[], object]] = [
        client.whoami,
        client.jobs,
        lambda: client.job(UNKNOWN_JOB),
        lambda: client.kill_job(UNKNOWN_JOB),
        lambda: client.extend_job(UNKNOWN_JOB, 1),
        lambda: client.log_page(UNKNOWN_JOB),
    ]
    for call in calls:
        with pytest.raises(ServerUnreachableError) as info:
            call()
        assert not isinstance(info.value, requests.RequestException)


@pytest.mark.parametrize(
    ("value", "seconds"),
    [("2", 2.0), ("-5", 0.0), ("1e9", RETRY_AFTER_CAP), ("inf", RETRY_AFTER_CAP), ("nan", None),
     ("soon", None), ("", None)],
)  # fmt: skip
def test_retry_after_is_a_bounded_wait_or_none(value: str, seconds: float | None) -> None:
    response = requests.Response()
    response.headers["Retry-After"] = value
    assert _retry_after(response) == seconds


@pytest.mark.parametrize("token", ["q", "sh0rt", "a-long-enough-token"])
def test_a_token_the_server_echoes_is_redacted_whatever_its_length(token: str) -> None:
    def echo(handler: http.server.BaseHTTPRequestHandler) -> None:
        body = f"bad token {token} for {token}".encode()
        handler.send_response(500)
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        handler.wfile.write(body)

    server = RecordingServer("127.0.0.1", echo)
    try:
        client = JuliaHubClient(f"http://127.0.0.1:{server.port}", TokenSource(token=token))
        with pytest.raises(ServerError) as raised:
            client.jobs()
        assert token not in str(raised.value)  # a short token garbles the text: so be it
        assert "<token>" in str(raised.value)
    finally:
        server.close()
