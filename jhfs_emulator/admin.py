"""The admin API under /_emulator/: create jobs, add files, inject faults, read stats.

POST /_emulator/jobs                 {"command", "alias", "env", "files", "timelimit",
                                      "start_delay", "expose", "proxy_link", "escape_inputs",
                                      "hex_hashes", "ms_timestamps"}
                                     -> {"jobname"}
POST /_emulator/jobs                 {"finished": {"status", "log_lines", "outputs", "files",
                                      "ended_seconds_ago", "alias", "env", ...}, "count": N}
                                     -> {"jobname", "jobnames"}
GET  /_emulator/jobs/{jobname}       -> internal state (process id, deadline, work dir...)
POST /_emulator/jobs/{jobname}/files {"type", "name", "content" | "size" [, "seed"]}
                                     adds a file, or finishes one that is still uploading
POST /_emulator/faults               {"endpoint", "mode", "status", "retry_after", "body",
                                      "delay", "rate", "jobname", "count"} -> {"faults": [...]}
                                     one-shot modes (count defaults to 1): status (with
                                     body: that text is the answer), delay,
                                     reset, truncate, corrupt; download shaping modes (until
                                     cleared unless count is given): throttle (rate bytes/s
                                     for each connection), no_range (200 with the whole file
                                     whatever the Range); jobname: only requests about that
                                     job (see jhfs_emulator.faults)
GET / DELETE /_emulator/faults       -> {"faults": [...]}; count null = until DELETE
GET /_emulator/stats                 -> {"requests": {name: n}, "bytes_sent": n,
                                      "missing_hasura_headers": n}; bytes_sent counts API
                                     answers' bodies, and of downloads the bytes really
                                     written to the socket (not the rest after a disconnect)
POST /_emulator/stats/reset, DELETE /_emulator/stats: zero them
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from jhfs_emulator.context import context_of, json_answer
from jhfs_emulator.faults import Fault, FaultSpecError
from jhfs_emulator.store import SpecError
from jhfs_emulator.timefmt import now_ms

MAX_COUNT = 100_000


def _bad(message: str) -> web.Response:
    return json_answer({"error": message}, 400)


async def _body(request: web.Request) -> Any:
    try:
        return await request.json()
    except ValueError:
        raise web.HTTPBadRequest(text='{"error": "the body must be JSON"}') from None


async def create_jobs(request: web.Request) -> web.Response:
    spec = await _body(request)
    if not isinstance(spec, dict):
        return _bad("the body must be a JSON object")
    store = context_of(request).store
    try:
        if "finished" in spec:
            finished, count = spec["finished"], spec.get("count", 1)
            if not isinstance(finished, dict):
                return _bad("finished must be an object")
            if not isinstance(count, int) or not 1 <= count <= MAX_COUNT:
                return _bad(f"count must be a whole number from 1 to {MAX_COUNT}")
            jobs = await store.create_finished(finished, count)
            return json_answer(
                {"jobname": jobs[0].jobname, "jobnames": [job.jobname for job in jobs]}
            )
        job = await store.create_running(spec)
    except SpecError as error:
        return _bad(str(error))
    return json_answer({"jobname": job.jobname})


def _job_or_404(request: web.Request) -> Any:
    job = context_of(request).store.get(request.match_info["jobname"])
    if job is None:
        raise web.HTTPNotFound(text='{"error": "no such job"}', content_type="application/json")
    return job


async def job_state(request: web.Request) -> web.Response:
    job = _job_or_404(request)
    return json_answer(
        {
            "jobname": job.jobname,
            "status": job.status,
            "process_id": job.process_id,
            "work_dir": None if job.work_dir is None else str(job.work_dir),
            "timelimit_hours": job.timelimit_hours,
            "deadline_ms": job.deadline_ms,
            "stop_reason": job.stop_reason,
            "log_lines": len(job.log),
            "log_finished": job.log.finished,
        }
    )


async def add_file(request: web.Request) -> web.Response:
    job = _job_or_404(request)
    spec = await _body(request)
    try:
        entry = await context_of(request).store.file_from_spec(spec, now_ms())
    except SpecError as error:
        return _bad(str(error))
    for index, existing in enumerate(job.files):
        if existing.uploading and (existing.type, existing.name) == (entry.type, entry.name):
            job.files[index] = entry
            break
    else:
        job.files.append(entry)
    return json_answer(entry.wire())


def _faults_answer(request: web.Request) -> web.Response:
    return json_answer({"faults": [f.wire() for f in context_of(request).faults.pending()]})


async def add_fault(request: web.Request) -> web.Response:
    try:
        fault = Fault.from_spec(await _body(request))
    except FaultSpecError as error:
        return _bad(str(error))
    context_of(request).faults.add(fault)
    return _faults_answer(request)


async def list_faults(request: web.Request) -> web.Response:
    return _faults_answer(request)


async def clear_faults(request: web.Request) -> web.Response:
    context_of(request).faults.clear()
    return _faults_answer(request)


async def stats(request: web.Request) -> web.Response:
    return json_answer(context_of(request).stats.wire())


async def reset_stats(request: web.Request) -> web.Response:
    context = context_of(request)
    context.stats.reset()
    return json_answer(context.stats.wire())
