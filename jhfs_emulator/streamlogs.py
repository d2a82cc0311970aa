"""`/ws/stream_logs`: a job's log as a websocket, one message object per frame.

Without `offset` it starts at the current end of the log (tail); with it, after
that eventId. While nothing new arrives it sends empty keep-alive frames every
`refresh_interval` seconds; when the job is done it sends the bottom marker
and closes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from aiohttp import web

from jhfs_emulator.api import NO_ACCESS
from jhfs_emulator.context import STREAM_FAULT, context_of, json_answer
from jhfs_emulator.damage import damage_websocket
from jhfs_emulator.logs import BOTTOM_MARKER

logger = logging.getLogger(__name__)

_BATCH = 1000


def _float(text: str | None, default: float) -> float:
    try:
        return default if text is None else max(0.05, float(text))
    except ValueError:
        return default


async def stream_logs(request: web.Request) -> web.StreamResponse:
    context = context_of(request)
    job = context.store.get(request.query.get("jobname", ""))
    if job is None:
        return json_answer(NO_ACCESS, status=403)
    offset_text = request.query.get("offset")
    if offset_text is None:
        position = len(job.log)
    else:
        try:
            position = max(0, int(offset_text))
        except ValueError:
            return json_answer({"success": False, "reason": "invalid offset"}, 400)
    refresh = _float(request.query.get("refresh_interval"), 1.0)
    socket = web.WebSocketResponse(heartbeat=None)
    await socket.prepare(request)
    fault = request.get(STREAM_FAULT)
    if fault is not None and not await damage_websocket(request, socket, fault):
        return socket
    log = job.log
    # Reading is what answers the client's close frame (and its pings), as a
    # real server does: a client hanging up is not left waiting for a reply.
    reader = asyncio.create_task(_read_until_closed(socket))
    try:
        while not socket.closed:
            changed = log.changed()
            count = len(log)
            while position < count:
                batch_end = min(count, position + _BATCH)
                for number in range(position + 1, batch_end + 1):
                    frame = log.message_json(number)
                    context.stats.bytes_sent += len(frame)
                    await socket.send_str(frame)
                position = batch_end
            if log.finished and position >= len(log):
                await socket.send_str(BOTTOM_MARKER)
                break
            change = asyncio.ensure_future(changed.wait())
            done, _ = await asyncio.wait(
                {change, reader}, timeout=refresh, return_when=asyncio.FIRST_COMPLETED
            )
            change.cancel()
            if reader in done:
                break  # the client closed the stream
            if not done:
                await socket.send_str("")  # keep-alive
    except ConnectionError:
        logger.debug("stream_logs: the client of %s went away", job.jobname)
    finally:
        reader.cancel()
        with contextlib.suppress(ConnectionError):
            await socket.close()
    return socket


async def _read_until_closed(socket: web.WebSocketResponse) -> None:
    async for _ in socket:
        pass  # a client sends nothing else
