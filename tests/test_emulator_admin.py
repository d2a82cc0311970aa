"""The emulator's admin side: faults, stats, the command line, the demo jobs."""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import http.client
import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import pytest
import requests
from conftest import Emulator, start_emulator, stop_emulator, wait_for
from test_emulator_api import get, job_object, lines_of, logs
from test_emulator_jobs import group_alive


def raw_get(em: Emulator, path: str) -> tuple[http.client.HTTPResponse, http.client.HTTPConnection]:
    parts = urlsplit(em.url)
    connection = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=30)
    connection.request("GET", path, headers=em.headers)
    return connection.getresponse(), connection


def big_file_job(em: Emulator, size: int = 3_000_000) -> tuple[str, str]:
    jobname = em.create_finished(files=[{"type": "result", "name": "f.bin", "size": size}])
    return jobname, f"/jobs/{jobname}/files/f.bin?filetype=result"


def test_fault_status_with_retry_after_for_count_requests(fresh_emulator: Emulator) -> None:
    em = fresh_emulator
    em.fault(endpoint="get_jobs", mode="status", status=503, retry_after=1, count=2)
    for _ in range(2):
        response = get(em, "/juliaruncloud/get_jobs")
        assert response.status_code == 503 and response.headers["Retry-After"] == "1"
        assert get(em, "/api/v1").status_code == 200  # other endpoints unaffected
    assert get(em, "/juliaruncloud/get_jobs").status_code == 200
    assert em.admin("GET", "faults") == {"faults": []}


def test_fault_status_with_a_body_answers_that_text(fresh_emulator: Emulator) -> None:
    em = fresh_emulator
    text = "both start_time and end_time provided"
    em.fault(endpoint="get_logs", mode="status", status=400, body=text)
    response = get(em, "/juliaruncloud/get_logs", jobname="jr-0000000000")
    assert (response.status_code, response.text) == (400, text)
    em.fault(endpoint="graphql", mode="status", status=200, body='{"errors": []}')
    response = requests.post(f"{em.url}/v1/graphql", json={}, headers=em.headers, timeout=10)
    assert (response.status_code, response.json()) == (200, {"errors": []})
    assert em.admin("GET", "faults") == {"faults": []}


def test_fault_delay_answers_late_but_right(fresh_emulator: Emulator) -> None:
    em = fresh_emulator
    # Held: no answer at all while the delay lasts (how long it takes is in the bench).
    em.fault(endpoint="api_v1", mode="delay", delay=3600)
    with pytest.raises(requests.ReadTimeout):
        requests.get(f"{em.url}/api/v1", headers=em.headers, timeout=1)
    em.admin("DELETE", "faults")
    em.fault(endpoint="api_v1", mode="delay", delay=0.1)
    response = get(em, "/api/v1")
    assert response.status_code == 200 and response.json()["api_version"] == "0.0.1"


def test_fault_truncate_ends_the_body_early(fresh_emulator: Emulator) -> None:
    em = fresh_emulator
    _, path = big_file_job(em)
    em.fault(endpoint="download", mode="truncate")
    response, connection = raw_get(em, path)
    assert response.status == 200 and response.headers["Content-Length"] == "3000000"
    with pytest.raises(http.client.IncompleteRead) as error:
        response.read()
    assert 0 < len(error.value.partial) < 3_000_000  # a clean close, short of the length
    connection.close()
    assert len(get(em, path.split("?")[0], filetype="result").content) == 3_000_000


def test_fault_reset_cuts_the_connection(fresh_emulator: Emulator) -> None:
    em = fresh_emulator
    _, path = big_file_job(em)
    em.fault(endpoint="download", mode="reset")
    response, connection = raw_get(em, path)
    assert response.status == 200
    with pytest.raises(ConnectionResetError):
        response.read()
    connection.close()


def test_fault_truncate_on_a_json_endpoint(fresh_emulator: Emulator) -> None:
    em = fresh_emulator
    em.create_finished(log_lines=10)
    em.fault(endpoint="get_jobs", mode="truncate")
    response, connection = raw_get(em, "/juliaruncloud/get_jobs")
    with pytest.raises(http.client.IncompleteRead):
        response.read()
    connection.close()
    with pytest.raises(requests.exceptions.RequestException):
        em.fault(endpoint="job", mode="reset")
        get(em, "/api/rest/jobs/jr-0000000000")


def test_fault_corrupt_flips_bytes_keeping_the_length(fresh_emulator: Emulator) -> None:
    em = fresh_emulator
    _, path = big_file_job(em)
    good = get(em, path.split("?")[0], filetype="result").content
    em.fault(endpoint="download", mode="corrupt")
    bad = get(em, path.split("?")[0], filetype="result")
    assert bad.status_code == 200 and len(bad.content) == len(good)
    assert bad.content != good
    assert hashlib.sha256(bad.content).digest() != hashlib.sha256(good).digest()
    assert get(em, path.split("?")[0], filetype="result").content == good


def test_wildcard_fault_and_clearing(fresh_emulator: Emulator) -> None:
    em = fresh_emulator
    em.fault(endpoint="*", mode="status", status=500, count=10)
    assert get(em, "/api/v1").status_code == 500
    assert get(em, "/juliaruncloud/get_jobs").status_code == 500
    (pending,) = em.admin("GET", "faults")["faults"]
    assert pending["count"] == 8
    assert em.admin("DELETE", "faults") == {"faults": []}
    assert get(em, "/api/v1").status_code == 200


def test_fault_requests_are_validated(fresh_emulator: Emulator) -> None:
    for spec in (
        {"endpoint": "nope"}, {"mode": "explode"}, {"count": 0}, {"status": 42},
        {"mode": "delay", "body": "text"}, {"mode": "status", "body": 42},
    ):  # fmt: skip
        response = requests.post(
            f"{fresh_emulator.url}/_emulator/faults", json=spec, headers=fresh_emulator.headers,
            timeout=10,
        )  # fmt: skip
        assert response.status_code == 400, spec


def test_stats_count_requests_and_bytes(fresh_emulator: Emulator) -> None:
    em = fresh_emulator
    jobname, path = big_file_job(em, 1_000_000)
    em.admin("POST", "stats/reset")
    assert em.stats() == {"requests": {}, "bytes_sent": 0, "missing_hasura_headers": 0}
    for _ in range(3):
        get(em, "/juliaruncloud/get_jobs")
    job_object(em, jobname)
    logs(em, jobname)
    get(em, "/juliaruncloud/kill_job", jobname=jobname)
    get(em, "/api/v1")
    get(em, path.split("?")[0], filetype="result")
    stats = em.stats()
    assert stats["requests"] == {
        "get_jobs": 3, "job": 1, "get_logs": 1, "kill_job": 1, "api_v1": 1, "download": 1,
    }  # fmt: skip
    assert 1_000_000 < stats["bytes_sent"] < 1_100_000
    em.admin("DELETE", "stats")
    assert em.stats()["requests"] == {}


def _spawn(data_dir: Path | None, env: dict[str, str], *args: str) -> subprocess.Popen[str]:
    command = [sys.executable, "-m", "jhfs_emulator", "--port", "0", *args]
    if data_dir is not None:
        command += ["--data-dir", str(data_dir)]
    return subprocess.Popen(command, stdout=subprocess.PIPE, text=True, env=env)


def _env_without_token() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k != "JULIAHUB_TOKEN"}


def test_first_line_and_made_up_token(tmp_path: Path) -> None:
    process = _spawn(tmp_path, _env_without_token())
    try:
        assert process.stdout is not None
        first = process.stdout.readline()
        match = re.fullmatch(r"jhfs emulator listening on (http://127\.0\.0\.1:(\d+))\n", first)
        assert match and int(match[2]) > 0
        second = process.stdout.readline()
        assert second.startswith("token: ")
        token = second.removeprefix("token: ").strip()
        assert len(token) >= 20
        good = requests.get(f"{match[1]}/api/v1", headers={"Authorization": f"Bearer {token}"})
        assert good.status_code == 200
        assert requests.get(f"{match[1]}/api/v1").status_code == 401
    finally:
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=10) == 0


def test_token_from_environment_is_not_printed(tmp_path: Path) -> None:
    process = _spawn(tmp_path, {**_env_without_token(), "JULIAHUB_TOKEN": "env-token-123"})
    assert process.stdout is not None
    url = process.stdout.readline().split()[-1]
    headers = {"Authorization": "Bearer env-token-123"}
    assert requests.get(f"{url}/api/v1", headers=headers, timeout=10).status_code == 200
    process.terminate()
    assert process.wait(timeout=10) == 0
    assert process.stdout.read() == ""


def test_sigterm_kills_jobs_and_removes_the_temporary_data_dir() -> None:
    process = _spawn(None, _env_without_token(), "--token", "T")
    assert process.stdout is not None
    url = process.stdout.readline().split()[-1]
    em = Emulator(url, "T", Path("/nonexistent"), process)
    jobname = em.submit("echo up; sleep 60")
    wait_for(lambda: lines_of(logs(em, jobname)) == ["up"], what="job up")
    state = em.admin("GET", f"jobs/{jobname}")
    process.terminate()
    assert process.wait(timeout=10) == 0
    wait_for(lambda: not group_alive(state["process_id"]), what="job killed")
    assert not Path(state["work_dir"]).exists()


def test_demo_jobs(tmp_path: Path) -> None:
    em = start_emulator(tmp_path, "--demo")
    try:
        listed = get(em, "/juliaruncloud/get_jobs").json()
        by_alias: dict[str, Any] = {job["jobname_alias"]: job for job in listed}
        assert set(by_alias) >= {
            "linear-regression", "parameter-sweep", "train-model", "broken-script",
            "cancelled-sweep", "live-monitor", "long-simulation", "web-dashboard",
        }  # fmt: skip

        def settled() -> dict[str, str]:
            jobs = get(em, "/juliaruncloud/get_jobs").json()
            return {j["jobname_alias"]: j for j in jobs if j["status"] != "Running"}

        done = wait_for(lambda: (s := settled()) and len(s) == 6 and s, what="demo jobs done")
        assert {alias: job["status"] for alias, job in done.items()} == {
            "linear-regression": "Completed", "parameter-sweep": "Completed",
            "train-model": "Completed", "long-simulation": "Completed",
            "broken-script": "Failed", "cancelled-sweep": "Stopped",
        }  # fmt: skip
        files = {(f["type"], f["name"]) for f in done["parameter-sweep"]["files"]}
        assert ("result", "outdir.tar.gz") in files and ("project", "Project.toml") in files
        assert done["linear-regression"]["outputs"].startswith("{")
        sizes = {f["size"] for job in done.values() for f in job["files"] if f["type"] == "result"}
        assert len(sizes) >= 3
        assert by_alias["web-dashboard"]["proxy_link"].startswith("https://")
        monitor = by_alias["live-monitor"]["jobname"]
        wait_for(lambda: job_object(em, monitor)["status"] == "Running", what="monitor runs")
        ticks = wait_for(lambda: (t := lines_of(logs(em, monitor)))[1:] and t, what="ticks")
        assert ticks[:2] == ["heartbeat 1: all systems nominal", "heartbeat 2: all systems nominal"]
        long_log = logs(em, done["long-simulation"]["jobname"])
        assert long_log[-2]["eventId"] == "50000"
        # Finished long ago, newest first: the listing puts them after today's jobs.
        order = [job["jobname_alias"] for job in listed]
        assert order[-3:] == ["long-simulation", "train-model", "cancelled-sweep"]
        ended = dt.datetime.fromisoformat(done["cancelled-sweep"]["endtimestamp"])
        assert dt.datetime.now(dt.UTC) - ended > dt.timedelta(days=2, hours=23)
    finally:
        stop_emulator(em)


async def _first_frame(em: Emulator, jobname: str) -> Any:
    async with aiohttp.ClientSession(headers=em.headers) as session:
        url = em.url.replace("http://", "ws://") + "/ws/stream_logs"
        async with session.ws_connect(url, params={"jobname": jobname, "offset": "0"}) as socket:
            return await socket.receive()


def test_stream_logs_faults(fresh_emulator: Emulator) -> None:
    em = fresh_emulator
    jobname = em.create_finished(log_lines=2)
    em.fault(endpoint="stream_logs", mode="status", status=503)
    with pytest.raises(aiohttp.WSServerHandshakeError):
        asyncio.run(_first_frame(em, jobname))
    em.fault(endpoint="stream_logs", mode="reset")
    frame = asyncio.run(_first_frame(em, jobname))
    assert frame.type in (aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.ERROR)
    em.fault(endpoint="stream_logs", mode="corrupt")
    frame = asyncio.run(_first_frame(em, jobname))
    with pytest.raises(ValueError):
        json.loads(frame.data)
    assert json.loads(asyncio.run(_first_frame(em, jobname)).data)["eventId"] == "1"
    assert em.stats()["requests"]["stream_logs"] == 4
