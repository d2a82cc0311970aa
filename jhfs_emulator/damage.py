"""Sending a response the way a broken network or server would.

For /ws/stream_logs, `reset` and `truncate` cut the websocket right after the
handshake (with a TCP reset, or a clean close without a close frame), and
`corrupt` sends one frame that is not valid JSON before the real ones.

`reset` cuts the connection mid-body with a TCP reset; `truncate` sends part
of the body and closes cleanly, short of its Content-Length; `corrupt` sends
the whole body with some bytes flipped and the length unchanged. This module
sends damaged in-memory bodies (JSON answers); file downloads damage their own
body with `flip` and `cut_short` (jhfs_emulator.download).
"""

from __future__ import annotations

import logging
import socket
import struct

from aiohttp import web

logger = logging.getLogger(__name__)


def flip(chunk: bytes, at: int) -> bytes:
    """Flip the bits of every 4096th byte from `at` (so the length stays the same)."""
    damaged = bytearray(chunk)
    for index in range(at, len(damaged), 4096):
        damaged[index] ^= 0xFF
    return bytes(damaged)


def reset_connection(request: web.BaseRequest) -> None:
    transport = request.transport
    if transport is None:
        return
    sock = transport.get_extra_info("socket")
    if sock is not None:
        # Linger 0: close() sends RST instead of FIN, and drops unsent data.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    transport.abort()


def cut_short(request: web.BaseRequest, mode: str, sent: int, size: int) -> None:
    """End a body after `sent` of its `size` bytes: with a reset, or (truncate) a clean close."""
    logger.info("fault: %s %s after %d of %d bytes", mode, request.path, sent, size)
    if mode == "reset":
        reset_connection(request)
    elif request.transport is not None:
        request.transport.close()  # flushes what was written, then a clean FIN


async def send_damaged(
    request: web.Request, response: web.Response, body: bytes, mode: str
) -> web.StreamResponse:
    """Send `body` with `response`'s status and headers, damaged."""
    damaged = web.StreamResponse(status=response.status, headers=response.headers)
    damaged.content_length = len(body)
    await damaged.prepare(request)
    if mode == "corrupt":
        await damaged.write(flip(body, min(len(body) // 2, 100)))
        await damaged.write_eof()
        return damaged
    await damaged.write(body[: len(body) // 2])
    cut_short(request, mode, len(body) // 2, len(body))
    return damaged


async def damage_websocket(request: web.Request, socket: web.WebSocketResponse, mode: str) -> bool:
    """Apply a stream_logs fault after the handshake; False when the stream is over."""
    logger.info("fault: %s %s", mode, request.path)
    if mode == "corrupt":
        await socket.send_str('{"message": "corrupt')
        return True
    if mode == "reset":
        reset_connection(request)
    elif request.transport is not None:
        request.transport.close()
    return False
