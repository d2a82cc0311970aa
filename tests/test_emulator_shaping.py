"""The emulator's download shaping (throttle, no_range) and faults limited to one job."""

from __future__ import annotations

import asyncio
import http.client
import threading
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import requests
from conftest import Emulator, wait_for
from test_emulator_api import HASURA, get

MB = 1_000_000


def file_job(em: Emulator, size: int) -> tuple[str, str]:
    """A finished job with one result file; returns its jobname and download path."""
    jobname = em.create_finished(files=[{"type": "result", "name": "f.bin", "size": size}])
    return jobname, f"/jobs/{jobname}/files/f.bin"


def download(em: Emulator, path: str, **headers: str) -> requests.Response:
    return requests.get(
        em.url + path, params={"filetype": "result"}, headers={**em.headers, **headers}, timeout=60
    )


def fault_answer(em: Emulator, spec: dict[str, Any]) -> requests.Response:
    return requests.post(f"{em.url}/_emulator/faults", json=spec, headers=em.headers, timeout=10)


def settled(read: Callable[[], int], quiet: float = 0.5) -> int:
    """Poll `read` until its value has stayed the same for `quiet` seconds; that value."""
    last, since = read(), time.monotonic()

    def unchanged() -> tuple[int] | None:
        nonlocal last, since
        value = read()
        if value != last:
            last, since = value, time.monotonic()
            return None
        return (value,) if time.monotonic() - since >= quiet else None

    return int(wait_for(unchanged, what="a value that stops changing")[0])


def test_throttle_paces_a_download_and_keeps_range_and_damage(fresh_emulator: Emulator) -> None:
    em = fresh_emulator
    _, path = file_job(em, 2 * MB)
    whole = download(em, path).content
    em.fault(endpoint="download", mode="throttle", rate=4 * MB)
    em.admin("POST", "stats/reset")
    started = time.monotonic()
    paced = download(em, path)
    assert time.monotonic() - started >= 0.4  # 2 MB at 4 MB/s: 0.5 s
    assert paced.status_code == 200 and paced.content == whole
    assert em.stats()["bytes_sent"] == 2 * MB  # exactly the body, counted as written
    ranged = download(em, path, Range="bytes=1000000-1000099")
    assert ranged.status_code == 206 and ranged.content == whole[1_000_000:1_000_100]
    assert ranged.headers["Content-Range"] == f"bytes 1000000-1000099/{2 * MB}"
    em.fault(endpoint="download", mode="corrupt")
    corrupt = download(em, path)
    assert len(corrupt.content) == len(whole) and corrupt.content != whole
    assert download(em, path).content == whole


def _read_until(em: Emulator, path: str, deadline: float, counts: list[int]) -> None:
    with requests.get(
        em.url + path, params={"filetype": "result"}, headers=em.headers, stream=True, timeout=30
    ) as response:
        for chunk in response.iter_content(8192):
            counts.append(len(chunk))
            if time.monotonic() >= deadline:
                break


def test_each_connection_gets_its_own_rate(fresh_emulator: Emulator) -> None:
    em = fresh_emulator
    rate, window = 2 * MB, 1.0
    _, path = file_job(em, 8 * MB)  # 4 s at the rate: no connection finishes in the window
    em.fault(endpoint="download", mode="throttle", rate=rate)
    started = time.monotonic()
    counts: list[list[int]] = [[], []]
    readers = [
        threading.Thread(target=_read_until, args=(em, path, started + window, c)) for c in counts
    ]
    for reader in readers:
        reader.start()
    for reader in readers:
        reader.join()
    elapsed = time.monotonic() - started
    assert all(sum(c) < 8 * MB for c in counts)
    assert sum(map(sum, counts)) / elapsed > 1.5 * rate


def test_no_range_answers_200_with_the_whole_file(fresh_emulator: Emulator) -> None:
    em = fresh_emulator
    size = 300_000
    _, path = file_job(em, size)
    whole = download(em, path).content
    assert download(em, path, Range=f"bytes={size}-").status_code == 416
    em.fault(endpoint="download", mode="no_range")
    for _ in range(3):  # until DELETE, not just once
        answer = download(em, path, Range="bytes=1000-1999")
        assert answer.status_code == 200 and answer.content == whole
        assert "Content-Range" not in answer.headers and "Accept-Ranges" not in answer.headers
    assert download(em, path, Range=f"bytes={size}-").status_code == 200
    (pending,) = em.admin("GET", "faults")["faults"]
    assert pending["mode"] == "no_range" and pending["count"] is None
    assert em.admin("DELETE", "faults") == {"faults": []}
    ranged = download(em, path, Range="bytes=1000-1999")
    assert ranged.status_code == 206 and ranged.content == whole[1000:2000]


def test_shaping_with_a_count_applies_that_many_times(fresh_emulator: Emulator) -> None:
    em = fresh_emulator
    _, path = file_job(em, 10_000)
    em.fault(endpoint="download", mode="no_range", count=2)
    statuses = [download(em, path, Range="bytes=0-9").status_code for _ in range(3)]
    assert statuses == [200, 200, 206]
    assert em.admin("GET", "faults") == {"faults": []}


def test_persistent_throttle_stays_until_delete(fresh_emulator: Emulator) -> None:
    em = fresh_emulator
    _, path = file_job(em, 1000)
    em.fault(endpoint="download", mode="throttle", rate=100 * MB)
    for _ in range(3):
        assert download(em, path).status_code == 200
    (pending,) = em.admin("GET", "faults")["faults"]
    assert pending == {
        "endpoint": "download", "mode": "throttle", "count": None, "status": 503,
        "retry_after": None, "delay": 1.0, "rate": 100 * MB, "jobname": None, "body": None,
    }  # fmt: skip
    em.admin("DELETE", "faults")
    assert em.admin("GET", "faults") == {"faults": []}


def test_faults_for_one_job_leave_the_others_alone(fresh_emulator: Emulator) -> None:
    em = fresh_emulator
    target, target_path = file_job(em, 10_000)
    other, other_path = file_job(em, 10_000)

    def status_of_job(jobname: str) -> int:
        response = requests.get(
            f"{em.url}/api/rest/jobs/{jobname}", headers={**em.headers, **HASURA}, timeout=30
        )
        return response.status_code

    em.fault(endpoint="job", mode="status", status=502, jobname=target)
    assert status_of_job(other) == 200  # does not use up the target's fault
    assert status_of_job(target) == 502
    assert status_of_job(target) == 200

    em.fault(endpoint="*", mode="status", status=503, jobname=target, count=3)
    logs_query = {"log_output_type": "content", "log_out_type": "json"}
    assert get(em, "/juliaruncloud/get_logs", jobname=other, **logs_query).status_code == 200
    assert get(em, "/juliaruncloud/get_logs", jobname=target, **logs_query).status_code == 503

    def extend(jobname: str) -> int:
        body = {"jobname": jobname, "extendby": 1}
        url = f"{em.url}/juliaruncloud/extend_job_time_limit"
        return requests.post(url, json=body, headers=em.headers, timeout=10).status_code

    assert extend(other) == 200 and extend(target) == 503
    assert get(em, "/juliaruncloud/kill_job", jobname=other).status_code == 200
    assert get(em, "/juliaruncloud/kill_job", jobname=target).status_code == 503
    assert em.admin("GET", "faults") == {"faults": []}

    em.fault(endpoint="download", mode="no_range", jobname=target)
    assert download(em, other_path, Range="bytes=0-9").status_code == 206
    assert download(em, target_path, Range="bytes=0-9").status_code == 200


async def _job_answers_while_another_waits(em: Emulator, slow: str, quick: str) -> None:
    async with aiohttp.ClientSession(headers={**em.headers, **HASURA}) as session:

        async def status(jobname: str) -> int:
            async with session.get(f"{em.url}/api/rest/jobs/{jobname}") as response:
                await response.read()
                return response.status

        delayed = asyncio.create_task(status(slow))
        while em.stats()["requests"].get("job", 0) < 1:  # the delayed request has arrived
            await asyncio.sleep(0.02)
        assert await status(quick) == 200
        assert not delayed.done()
        delayed.cancel()


def test_a_delay_for_one_job_does_not_hold_up_the_others(fresh_emulator: Emulator) -> None:
    em = fresh_emulator
    slow, quick = em.create_finished(), em.create_finished()
    em.admin("POST", "stats/reset")
    em.fault(endpoint="job", mode="delay", delay=20, jobname=slow)
    asyncio.run(asyncio.wait_for(_job_answers_while_another_waits(em, slow, quick), 30))


def test_bytes_sent_stop_when_a_throttled_client_goes_away(fresh_emulator: Emulator) -> None:
    em = fresh_emulator
    size, rate = 8 * MB, 1 * MB
    _, path = file_job(em, size)
    em.fault(endpoint="download", mode="throttle", rate=rate)
    em.admin("POST", "stats/reset")
    parts = urlsplit(em.url)
    connection = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=30)
    connection.request("GET", f"{path}?filetype=result", headers=em.headers)
    response = connection.getresponse()
    received = len(response.read(300_000))
    wait_for(lambda: em.stats()["bytes_sent"] >= received, what="the server counts what we got")
    connection.close()  # unread bytes in our socket: the kernel answers with a reset
    sent = settled(lambda: int(em.stats()["bytes_sent"]))
    assert received <= sent <= received + MB  # the rest of the 8 MB is not sent nor counted


def test_shaping_and_jobname_requests_are_validated(fresh_emulator: Emulator) -> None:
    for spec in (
        {"endpoint": "download", "mode": "throttle"},
        {"endpoint": "download", "mode": "throttle", "rate": 0},
        {"endpoint": "download", "mode": "throttle", "rate": -5},
        {"endpoint": "download", "mode": "throttle", "rate": "fast"},
        {"endpoint": "download", "mode": "throttle", "rate": True},
        {"endpoint": "job", "mode": "throttle", "rate": 1000},
        {"endpoint": "*", "mode": "no_range"},
        {"endpoint": "download", "mode": "no_range", "count": 0},
        {"endpoint": "download", "mode": "no_range", "count": None},
        {"endpoint": "api_v1", "mode": "status", "count": None},
        {"endpoint": "download", "mode": "status", "rate": 1000},
        {"endpoint": "get_jobs", "mode": "status", "jobname": "jr-abc"},
        {"endpoint": "job", "mode": "status", "jobname": ""},
        {"endpoint": "job", "mode": "status", "jobname": 7},
    ):
        response = fault_answer(fresh_emulator, spec)
        assert response.status_code == 400 and "error" in response.json(), spec
    assert fresh_emulator.admin("GET", "faults") == {"faults": []}
