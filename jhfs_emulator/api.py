"""The JuliaHub jobs API endpoints, with the real service's shapes and quirks."""

from __future__ import annotations

import json
import logging
from typing import Any

from aiohttp import web

from jhfs_emulator.context import USERNAME, context_of, json_answer
from jhfs_emulator.download import BlobResponse
from jhfs_emulator.logpages import LogQueryError, LogQueryRefused, page_positions, render_page
from jhfs_emulator.model import JOBNAME_PATTERN, Job

logger = logging.getLogger(__name__)

DEFAULT_LIST_LIMIT = 20
NO_ACCESS = "User does not have access to this job."


def _no_access() -> web.Response:
    # The real service answers these 403s with a JSON string.
    return json_answer(NO_ACCESS, status=403)


async def api_v1(request: web.Request) -> web.Response:
    return json_answer(
        {
            "api_version": "0.0.1",
            "username": USERNAME,
            "timezone": {"abbreviation": "Etc/UTC", "utc_offset": "+00:00"},
        }
    )


async def get_jobs(request: web.Request) -> web.Response:
    text = request.query.get("limit")
    limit = DEFAULT_LIST_LIMIT
    if text is not None:
        try:
            limit = int(text)
        except ValueError:
            limit = -1
        if limit < 0:
            return json_answer({"success": False, "message": f"invalid limit {text!r}"}, 400)
    jobs = context_of(request).store.latest(limit)
    return json_answer([job.wire() for job in jobs])


async def job_details(request: web.Request) -> web.Response:
    job = context_of(request).store.get(request.match_info["jobname"])
    return json_answer({"details": [] if job is None else [job.wire()]})


async def kill_job(request: web.Request) -> web.Response:
    jobname = request.query.get("jobname")
    if not jobname:
        return json_answer({"success": False, "message": "jobname is required"}, 400)
    store = context_of(request).store
    job = store.get(jobname)
    if job is None:
        return _no_access()
    await store.kill(job)
    return json_answer({"status": True, "message": f"Job {jobname} stopped successfully"})


def _extend_error(message: str, status: int = 200) -> web.Response:
    return json_answer({"success": False, "message": message}, status)


async def extend_job(request: web.Request) -> web.Response:
    try:
        body: Any = await request.json()
    except ValueError:
        return _extend_error("the body must be JSON", 400)
    if not isinstance(body, dict):
        return _extend_error("the body must be a JSON object", 400)
    jobname, extendby = body.get("jobname"), body.get("extendby")
    if not isinstance(jobname, str) or not JOBNAME_PATTERN.fullmatch(jobname):
        # Deterministic choice between the two quirks: a malformed name is a 200 with
        # success false, a well-formed unknown one (below) is a 403.
        return _extend_error(f"Invalid jobname {jobname!r}")
    store = context_of(request).store
    job = store.get(jobname)
    if job is None:
        return _no_access()
    if not isinstance(extendby, int) or isinstance(extendby, bool) or extendby < 1:
        return _extend_error(
            f"extendby must be a whole number of hours >= 1, got {extendby!r}", 400
        )
    if not job.done:  # a finished job has no time left to extend, and it is no error
        store.extend(job, extendby)
    return json_answer({"success": True, "message": ""})


def _logs_error(reason: str) -> web.Response:
    return json_answer({"success": False, "reason": reason})


async def get_logs(request: web.Request) -> web.Response:
    query = request.query
    jobname = query.get("jobname")
    if not jobname:
        return web.Response(status=400, text="jobname missing")
    job: Job | None = context_of(request).store.get(jobname)
    if job is None:
        return _no_access()
    if query.get("log_output_type") != "content" or query.get("log_out_type") != "json":
        return _logs_error("log_output_type=content and log_out_type=json are required")
    try:
        positions = page_positions(job.log, query)
    except LogQueryError as error:
        return _logs_error(str(error))
    except LogQueryRefused as error:
        return web.Response(status=400, text=str(error))
    # The quirk: the array is sent as a JSON string holding its JSON text.
    body = json.dumps(render_page(job.log, positions), ensure_ascii=False)
    return web.Response(body=body.encode(), content_type="application/json")


async def download(request: web.Request) -> web.StreamResponse:
    job = context_of(request).store.get(request.match_info["jobname"])
    if job is None:
        return json_answer({"success": False, "message": "no such job"}, 404)
    filetype = request.query.get("filetype")
    if not filetype:
        return json_answer({"success": False, "message": "filetype is required"}, 400)
    matches = job.find_file(request.match_info["name"], filetype)
    if not matches:
        return json_answer({"success": False, "message": "no such file"}, 404)
    entry = matches[-1]
    if entry.path is None:
        return json_answer({"success": False, "message": "the file is still uploading"}, 404)
    return BlobResponse(entry.path, context_of(request).stats)
