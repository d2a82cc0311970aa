"""Sending a response the way a broken network or server would.

For /ws/stream_logs, `reset` and `truncate` cut the websocket right after the
handshake (with a TCP reset, or a clean close without a close frame), and
`corrupt` sends one frame that is not valid JSON before the real ones.

`reset` cuts the connection mid-body with a TCP reset; `truncate` sends part
of the body and closes cleanly, short of its Content-Length; `corrupt` sends
the whole body with some bytes flipped and the length unchanged.
"""

from __future__ import annotations

import logging
import socket
import struct
from collections.abc import Iterator
from pathlib import Path

from aiohttp import web

logger = logging.getLogger(__name__)

_CHUNK = 1 << 20


def _chunks(body: bytes | Path, limit: int) -> Iterator[bytes]:
    if isinstance(body, bytes):
        yield body[:limit]
        return
    with open(body, "rb") as source:
        while limit > 0 and (chunk := source.read(min(_CHUNK, limit))):
            limit -= len(chunk)
            yield chunk


def _flip(chunk: bytes, at: int) -> bytes:
    """Flip the bits of every 4096th byte from `at` (so the length stays the same)."""
    damaged = bytearray(chunk)
    for index in range(at, len(damaged), 4096):
        damaged[index] ^= 0xFF
    return bytes(damaged)


def reset_connection(request: web.Request) -> None:
    transport = request.transport
    if transport is None:
        return
    sock = transport.get_extra_info("socket")
    if sock is not None:
        # Linger 0: close() sends RST instead of FIN, and drops unsent data.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    transport.abort()


async def send_damaged(
    request: web.Request, response: web.StreamResponse, body: bytes | Path, mode: str
) -> web.StreamResponse:
    """Send `body` (bytes, or a file) with `response`'s status and headers, damaged."""
    size = len(body) if isinstance(body, bytes) else body.stat().st_size
    damaged = web.StreamResponse(status=response.status, headers=response.headers)
    damaged.content_length = size
    await damaged.prepare(request)
    if mode == "corrupt":
        first = True
        for chunk in _chunks(body, size):
            await damaged.write(_flip(chunk, min(len(chunk) // 2, 100)) if first else chunk)
            first = False
        await damaged.write_eof()
        return damaged
    for chunk in _chunks(body, size // 2):
        await damaged.write(chunk)
    logger.info("fault: %s %s after %d of %d bytes", mode, request.path, size // 2, size)
    if mode == "reset":
        reset_connection(request)
    elif request.transport is not None:
        request.transport.close()  # flushes what was written, then a clean FIN
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
