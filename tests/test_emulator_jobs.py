"""Emulator jobs are real processes: logs as printed, results, kill, time limits, streaming."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import io
import json
import os
import tarfile
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import requests
from conftest import Emulator, start_emulator, stop_emulator, wait_for
from test_emulator_api import get, job_object, lines_of, logs, ms


def status_of(em: Emulator, jobname: str) -> str:
    return str(job_object(em, jobname)["status"])


def wait_done(em: Emulator, jobname: str, status: str, timeout: float = 30) -> dict[str, Any]:
    wait_for(lambda: status_of(em, jobname) == status, timeout, what=f"{jobname} {status}")
    return job_object(em, jobname)


def all_lines(em: Emulator, jobname: str) -> list[str]:
    """Every line of a finished job's log, paging older from the newest page."""
    page = logs(em, jobname)
    assert page[-1] == {"_meta": True, "end": "bottom", "message": ""}
    collected = page[:-1]
    while not collected[0].get("_meta"):
        first = collected[0]
        collected = logs(em, jobname, event_id=first["eventId"], end_time=ms(first)) + collected
    return lines_of(collected)


def test_job_printing_25000_lines_completes_with_hashed_result(emulator: Emulator) -> None:
    jobname = emulator.submit(
        "seq 1 25000; head -c 300000 /dev/urandom > result.bin",
        env={"RESULTS_FILE": "result.bin"},
    )
    job = wait_done(emulator, jobname, "Completed")
    assert all_lines(emulator, jobname) == [str(n) for n in range(1, 25_001)]
    (entry,) = [f for f in job["files"] if f["type"] == "result"]
    assert entry["name"] == "result.bin" and entry["size"] == 300_000
    body = get(emulator, f"/jobs/{jobname}/files/result.bin", filetype="result").content
    assert base64.b64encode(hashlib.sha256(body).digest()).decode() == entry["hash"]["value"]


def test_lines_are_logged_as_printed(emulator: Emulator) -> None:
    jobname = emulator.submit("echo first; while [ ! -f go ]; do sleep 0.02; done; echo second")
    wait_for(lambda: lines_of(logs(emulator, jobname)) == ["first"], what="first line")
    assert status_of(emulator, jobname) == "Running"
    page = logs(emulator, jobname)
    assert page[0]["_meta"] and not page[-1].get("_meta")  # no bottom while running
    Path(emulator.admin("GET", f"jobs/{jobname}")["work_dir"], "go").touch()
    wait_done(emulator, jobname, "Completed")
    assert all_lines(emulator, jobname) == ["first", "second"]


def test_stderr_lines_are_logged_and_nonzero_exit_fails(emulator: Emulator) -> None:
    jobname = emulator.submit("echo out; echo oops >&2; exit 3")
    wait_done(emulator, jobname, "Failed")
    page = logs(emulator, jobname)
    by_text = {m["message"]: m for m in page if not m.get("_meta")}
    assert set(by_text) == {"out", "oops"}
    assert by_text["oops"]["metadata"]["stream"] == "stderr"
    assert by_text["out"]["metadata"]["stream"] == "stdout"


def test_results_directory_becomes_tarball(emulator: Emulator) -> None:
    jobname = emulator.submit(
        "mkdir -p outdir/sub && echo a > outdir/a.txt && echo b > outdir/sub/b.txt",
        env={"RESULTS_FILE": "outdir"},
    )
    job = wait_done(emulator, jobname, "Completed")
    (entry,) = [f for f in job["files"] if f["type"] == "result"]
    assert entry["name"] == "outdir.tar.gz"
    body = get(emulator, f"/jobs/{jobname}/files/outdir.tar.gz", filetype="result").content
    assert len(body) == entry["size"]
    assert base64.b64encode(hashlib.sha256(body).digest()).decode() == entry["hash"]["value"]
    with tarfile.open(fileobj=io.BytesIO(body)) as tar:
        assert tar.extractfile("outdir/sub/b.txt").read() == b"b\n"  # type: ignore[union-attr]


def test_jhfs_results_become_outputs_and_env_becomes_inputs(emulator: Emulator) -> None:
    jobname = emulator.submit(
        'echo "{\\"answer\\": $ANSWER}" > "$JHFS_RESULTS"', env={"ANSWER": "42"}
    )
    job = wait_done(emulator, jobname, "Completed")
    assert json.loads(job["outputs"]) == {"answer": 42}
    assert json.loads(job["inputs"]) == {"ANSWER": "42"}
    assert job_object(emulator, emulator.submit("true"))["inputs"] is None


def test_input_files_are_placed_and_published(emulator: Emulator) -> None:
    content = base64.b64encode(b"print(42)").decode()
    jobname = emulator.submit(
        "cat code.jl", files=[{"type": "input", "name": "code.jl", "content": content}]
    )
    job = wait_done(emulator, jobname, "Completed")
    assert all_lines(emulator, jobname) == ["print(42)"]
    assert [(f["type"], f["name"], f["size"]) for f in job["files"]] == [("input", "code.jl", 9)]


def test_submitted_before_it_starts_and_kill_stops_it(emulator: Emulator) -> None:
    jobname = emulator.submit("echo never", start_delay=30)
    job = job_object(emulator, jobname)
    assert job["status"] == "Submitted" and job["starttimestamp"] is None
    assert get(emulator, "/juliaruncloud/kill_job", jobname=jobname).json()["status"] is True
    assert wait_done(emulator, jobname, "Stopped")["endtimestamp"]
    assert lines_of(logs(emulator, jobname)) == []


def test_kill_stops_running_job(emulator: Emulator) -> None:
    jobname = emulator.submit("echo started; sleep 60 & wait")
    wait_for(lambda: lines_of(logs(emulator, jobname)) == ["started"], what="started")
    pid = emulator.admin("GET", f"jobs/{jobname}")["process_id"]
    response = get(emulator, "/juliaruncloud/kill_job", jobname=jobname)
    assert response.json() == {"status": True, "message": f"Job {jobname} stopped successfully"}
    wait_done(emulator, jobname, "Stopped")
    assert logs(emulator, jobname)[-1]["end"] == "bottom"
    wait_for(lambda: not group_alive(pid), what="process group gone")  # the sleep too


def group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


def test_kill_escalates_to_sigkill_after_grace(tmp_path: Path) -> None:
    em = start_emulator(tmp_path, "--kill-grace", "0.3")
    try:
        jobname = em.submit(
            "trap 'echo ignoring TERM' TERM; echo ready; while :; do sleep 0.05; done"
        )
        wait_for(lambda: "ready" in lines_of(logs(em, jobname)), what="ready")
        get(em, "/juliaruncloud/kill_job", jobname=jobname)
        wait_done(em, jobname, "Stopped")
        assert "ignoring TERM" in all_lines(em, jobname)
    finally:
        stop_emulator(em)


def test_time_limit_stops_job(emulator: Emulator) -> None:
    jobname = emulator.submit("sleep 60", timelimit=0.0002)  # 0.72 s
    wait_done(emulator, jobname, "Stopped")
    assert emulator.admin("GET", f"jobs/{jobname}")["stop_reason"] == "time limit reached"


def test_extend_moves_the_deadline(emulator: Emulator) -> None:
    jobname = emulator.submit("sleep 60", timelimit=0.001)
    state = wait_for(lambda: (s := emulator.admin("GET", f"jobs/{jobname}"))["deadline_ms"] and s)
    response = requests.post(
        f"{emulator.url}/juliaruncloud/extend_job_time_limit",
        json={"jobname": jobname, "extendby": 2}, headers=emulator.headers, timeout=10,
    )  # fmt: skip
    assert response.json() == {"success": True, "message": ""}
    after = emulator.admin("GET", f"jobs/{jobname}")
    assert after["deadline_ms"] == state["deadline_ms"] + 2 * 3_600_000
    assert after["timelimit_hours"] == pytest.approx(2.001)
    assert after["status"] == "Running"
    get(emulator, "/juliaruncloud/kill_job", jobname=jobname)
    wait_done(emulator, jobname, "Stopped")
    assert emulator.admin("GET", f"jobs/{jobname}")["stop_reason"] == "killed"


async def _stream(em: Emulator, jobname: str, **params: str) -> list[str]:
    """Frames of /ws/stream_logs until it closes; touches `go` after the first keep-alive."""
    frames: list[str] = []
    query = {"jobname": jobname, "refresh_interval": "0.1", "log_out_type": "json", **params}
    work_dir = em.admin("GET", f"jobs/{jobname}")["work_dir"]
    async with aiohttp.ClientSession(headers=em.headers) as session:
        url = em.url.replace("http://", "ws://") + "/ws/stream_logs"
        async with session.ws_connect(url, params=query) as socket:
            async for frame in socket:
                assert frame.type == aiohttp.WSMsgType.TEXT
                frames.append(frame.data)
                if frame.data == "" and work_dir:
                    Path(work_dir, "go").touch()
    return frames


def test_stream_logs_tail_and_offset(emulator: Emulator) -> None:
    command = "echo a; echo b; while [ ! -f go ]; do sleep 0.02; done; echo c; echo d"
    tail_job, offset_job = emulator.submit(command), emulator.submit(command)
    for jobname in (tail_job, offset_job):
        wait_for(lambda j=jobname: len(lines_of(logs(emulator, j))) == 2, what="a and b")
    tail = asyncio.run(_stream(emulator, tail_job))
    resumed = asyncio.run(_stream(emulator, offset_job, offset="1"))
    for frames, expected in ((tail, ["c", "d"]), (resumed, ["b", "c", "d"])):
        assert "" in frames  # keep-alives while the job is quiet
        messages = [json.loads(frame) for frame in frames if frame]
        assert messages[-1] == {"_meta": True, "end": "bottom", "message": ""}
        assert [m["message"] for m in messages[:-1]] == expected
    offsets = [json.loads(frame).get("eventId") for frame in resumed if frame]
    assert offsets == ["2", "3", "4", None]


def test_stream_logs_sends_a_new_line_at_once_not_at_the_next_keep_alive(
    emulator: Emulator,
) -> None:
    jobname = emulator.submit("while [ ! -f go ]; do sleep 0.02; done; echo c; sleep 600")
    work_dir = emulator.admin("GET", f"jobs/{jobname}")["work_dir"]

    async def first_frame() -> str:
        query = {"jobname": jobname, "refresh_interval": "3600", "log_out_type": "json"}
        async with aiohttp.ClientSession(headers=emulator.headers) as session:
            url = emulator.url.replace("http://", "ws://") + "/ws/stream_logs"
            async with session.ws_connect(url, params=query) as socket:
                Path(work_dir, "go").touch()
                # Nothing else would come for an hour: no keep-alive wakes the sender.
                frame = await socket.receive(timeout=60)
                return str(frame.data)

    try:
        assert json.loads(asyncio.run(first_frame()))["message"] == "c"
    finally:
        get(emulator, "/juliaruncloud/kill_job", jobname=jobname)


def test_stream_logs_of_finished_job_ends_with_bottom(emulator: Emulator) -> None:
    jobname = emulator.create_finished(log_lines=3)
    assert [json.loads(f) for f in asyncio.run(_stream(emulator, jobname))] == [
        {"_meta": True, "end": "bottom", "message": ""}
    ]
    frames = [json.loads(f) for f in asyncio.run(_stream(emulator, jobname, offset="0"))]
    assert [m.get("eventId") for m in frames] == ["1", "2", "3", None]


def test_result_is_served_as_is_whatever_lies_beside_it(emulator: Emulator) -> None:
    jobname = emulator.submit(
        "echo plain > result.txt && echo not-gzip > result.txt.gz",
        env={"RESULTS_FILE": "result.txt"},
    )
    wait_done(emulator, jobname, "Completed")
    response = requests.get(
        f"{emulator.url}/jobs/{jobname}/files/result.txt", params={"filetype": "result"},
        headers={**emulator.headers, "Accept-Encoding": "gzip"}, timeout=10,
    )  # fmt: skip
    assert response.content == b"plain\n" and "Content-Encoding" not in response.headers


def test_input_file_names_stay_inside_the_work_dir(emulator: Emulator) -> None:
    content = base64.b64encode(b"x").decode()
    for name in ("../escape.txt", "/tmp/escape.txt"):
        files = [{"type": "input", "name": name, "content": content}]
        response = requests.post(
            f"{emulator.url}/_emulator/jobs", headers=emulator.headers, timeout=10,
            json={"command": "true", "files": files},
        )  # fmt: skip
        assert response.status_code == 400, name
    nested = emulator.submit(
        "cat data/in.txt", files=[{"type": "input", "name": "data/in.txt", "content": content}]
    )
    wait_done(emulator, nested, "Completed")
    assert all_lines(emulator, nested) == ["x"]
