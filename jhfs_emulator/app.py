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

from jhfs_emulator import admin, api, streamlogs
from jhfs_emulator.context import CONTEXT, STREAM_FAULT, EmulatorContext, context_of, json_answer
from jhfs_emulator.damage import send_damaged
from jhfs_emulator.faults import ENDPOINTS

logger = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


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
    if endpoint == "job" and (
        request.headers.get("X-Hasura-Role") != "jhuser"
        or request.headers.get("X-JuliaHub-Ensure-JS") != "true"
    ):
        # The real service needs these; answer anyway, but make the omission visible.
        context.stats.missing_hasura_headers += 1
        logger.warning("%s without the X-Hasura-Role/X-JuliaHub-Ensure-JS headers", request.path)
    return await handler(request)


@web.middleware
async def inject_faults(request: web.Request, handler: Handler) -> web.StreamResponse:
    endpoint = _endpoint(request)
    fault = None if endpoint is None else context_of(request).faults.take(endpoint)
    if fault is None:
        return await handler(request)
    logger.info("fault for %s: %s", request.path, fault)
    if fault.mode == "status":
        headers = {} if fault.retry_after is None else {"Retry-After": f"{fault.retry_after:g}"}
        answer = json_answer({"success": False, "message": "injected fault"}, fault.status)
        answer.headers.update(headers)
        return answer
    if fault.mode == "delay":
        await asyncio.sleep(fault.delay)
        return await handler(request)
    if endpoint == "stream_logs":
        request[STREAM_FAULT] = fault.mode
        return await handler(request)
    response = await handler(request)
    if isinstance(response, api.BlobResponse):
        return await send_damaged(request, response, response.source, fault.mode)
    if isinstance(response, web.Response) and isinstance(response.body, bytes):
        return await send_damaged(request, response, response.body, fault.mode)
    return response


async def _count_bytes(request: web.Request, response: web.StreamResponse) -> None:
    length = response.content_length
    if length is not None and _endpoint(request) is not None:
        request.app[CONTEXT].stats.bytes_sent += length


def build_app(context: EmulatorContext) -> web.Application:
    app = web.Application(middlewares=[authenticate, inject_faults], client_max_size=1 << 30)
    app[CONTEXT] = context
    app.on_response_prepare.append(_count_bytes)
    app.router.add_get("/api/v1", api.api_v1, name="api_v1")
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
