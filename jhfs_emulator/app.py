"""The aiohttp application: routes, bearer-token check, faults and statistics.

API routes are named by their endpoint names (get_jobs, job, ...), which are
the names faults target and stats count.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
from collections.abc import Awaitable, Callable

from aiohttp import web

from jhfs_emulator import admin, api, graphql, streamlogs
from jhfs_emulator.context import CONTEXT, STREAM_FAULT, EmulatorContext, context_of, json_answer
from jhfs_emulator.damage import send_damaged
from jhfs_emulator.download import BlobResponse
from jhfs_emulator.faults import ENDPOINTS, JOB_ENDPOINTS, Shaping

logger = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

# What the official client sends to the Hasura-backed endpoints (GraphQL gets the role only).
HASURA_HEADERS = {
    "job": {"X-Hasura-Role": "jhuser", "X-JuliaHub-Ensure-JS": "true"},
    "graphql": {"X-Hasura-Role": "jhuser"},
}


def _endpoint(request: web.Request) -> str | None:
    name = request.match_info.route.name
    return name if name in ENDPOINTS else None


@web.middleware
async def authenticate(request: web.Request, handler: Handler) -> web.StreamResponse:
    context = context_of(request)
    endpoint = _endpoint(request)
    if endpoint is not None:
        context.stats.requests[endpoint] += 1
    expected = f"Bearer {context.token}".encode()
    given = request.headers.get("Authorization", "").encode()
    if not hmac.compare_digest(given, expected):
        return web.Response(status=401, text="Invalid authentication")
    if endpoint in HASURA_HEADERS and any(
        request.headers.get(name) != value for name, value in HASURA_HEADERS[endpoint].items()
    ):
        # The real service needs these; answer anyway, but make the omission visible.
        context.stats.missing_hasura_headers += 1
        logger.warning("%s without the headers %s", request.path, HASURA_HEADERS[endpoint])
    return await handler(request)


async def _jobname(request: web.Request, endpoint: str) -> str | None:
    """The job a request is about, for faults limited to one job."""
    if endpoint not in JOB_ENDPOINTS:
        return None
    if endpoint in ("job", "download"):
        return request.match_info["jobname"]
    if endpoint == "extend_job":
        try:
            body = await request.json()  # aiohttp keeps the body: the handler reads it again
        except ValueError:
            return None
        jobname = body.get("jobname") if isinstance(body, dict) else None
        return jobname if isinstance(jobname, str) else None
    return request.query.get("jobname")


@web.middleware
async def inject_faults(request: web.Request, handler: Handler) -> web.StreamResponse:
    endpoint = _endpoint(request)
    if endpoint is None:
        return await handler(request)
    faults = context_of(request).faults
    jobname = await _jobname(request, endpoint)
    fault = faults.take(endpoint, jobname)
    shaping = faults.shaping(jobname) if endpoint == "download" else Shaping()
    damage = None
    if fault is not None:
        logger.info("fault for %s: %s", request.path, fault)
        if fault.mode == "status":
            headers = {} if fault.retry_after is None else {"Retry-After": f"{fault.retry_after:g}"}
            if fault.body is None:
                answer = json_answer({"success": False, "message": "injected fault"}, fault.status)
            else:
                answer = web.Response(text=fault.body, status=fault.status)
            answer.headers.update(headers)
            return answer
        if fault.mode == "delay":
            await asyncio.sleep(fault.delay)
        elif endpoint == "stream_logs":
            request[STREAM_FAULT] = fault.mode
        else:
            damage = fault.mode
    response = await handler(request)
    if isinstance(response, BlobResponse):
        response.shaping, response.damage = shaping, damage
        return response
    if (
        damage is not None
        and isinstance(response, web.Response)
        and isinstance(response.body, bytes)
    ):
        return await send_damaged(request, response, response.body, damage)
    return response


async def _count_bytes(request: web.Request, response: web.StreamResponse) -> None:
    """Count an API answer's body; a download counts the bytes it really sends itself."""
    length = response.content_length
    if (
        length is not None
        and _endpoint(request) is not None
        and not isinstance(response, BlobResponse)
    ):
        request.app[CONTEXT].stats.bytes_sent += length


def build_app(context: EmulatorContext) -> web.Application:
    app = web.Application(middlewares=[authenticate, inject_faults], client_max_size=1 << 30)
    app[CONTEXT] = context
    app.on_response_prepare.append(_count_bytes)
    app.router.add_get("/api/v1", api.api_v1, name="api_v1")
    app.router.add_post("/v1/graphql", graphql.graphql, name="graphql")
    app.router.add_get("/juliaruncloud/get_jobs", api.get_jobs, name="get_jobs")
    app.router.add_get("/api/rest/jobs/{jobname}", api.job_details, name="job")
    app.router.add_get("/juliaruncloud/kill_job", api.kill_job, name="kill_job")
    app.router.add_post("/juliaruncloud/extend_job_time_limit", api.extend_job, name="extend_job")
    app.router.add_get("/juliaruncloud/get_logs", api.get_logs, name="get_logs")
    app.router.add_get("/jobs/{jobname}/files/{name:.+}", api.download, name="download")
    app.router.add_get("/ws/stream_logs", streamlogs.stream_logs, name="stream_logs")
    app.router.add_post("/_emulator/jobs", admin.create_jobs)
    app.router.add_get("/_emulator/jobs/{jobname}", admin.job_state)
    app.router.add_post("/_emulator/jobs/{jobname}/files", admin.add_file)
    app.router.add_post("/_emulator/faults", admin.add_fault)
    app.router.add_get("/_emulator/faults", admin.list_faults)
    app.router.add_delete("/_emulator/faults", admin.clear_faults)
    app.router.add_get("/_emulator/stats", admin.stats)
    app.router.add_post("/_emulator/stats/reset", admin.reset_stats)
    app.router.add_delete("/_emulator/stats", admin.reset_stats)
    return app
