"""Sending a job file's bytes: Range, shaping (throttle, no_range), damage, byte counts.

`BlobResponse` sends the body itself instead of with sendfile(), so that it can
pace the writes and count what really left for the socket: a throttled body
goes out in pieces of at most rate/20 bytes, each when the bytes up to its end
are due at `rate` since the first byte (so oversleeping is made up for, and
each connection is paced on its own). Stats' bytes_sent grows as bytes leave
the transport's buffer for the socket; when the peer goes away the next write
fails (within one piece, at most 1/20 s when throttled) and what was still
buffered is not counted.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from aiohttp import hdrs, web
from aiohttp.abc import AbstractStreamWriter

from jhfs_emulator.damage import cut_short, flip
from jhfs_emulator.faults import Shaping, Stats

_BLOCK = 1 << 20  # unthrottled writes
_THROTTLED_PIECE = 1 << 16  # and at most rate/20, so pieces go out at least 20 times a second


class BlobResponse(web.StreamResponse):
    """A file download; the fault middleware sets `shaping` and `damage` before it is sent."""

    def __init__(self, source: Path, stats: Stats) -> None:
        super().__init__(headers={hdrs.CONTENT_TYPE: "application/octet-stream"})
        self.source, self.stats = source, stats
        self.shaping = Shaping()
        self.damage: str | None = None  # reset, truncate or corrupt

    async def prepare(self, request: web.BaseRequest) -> AbstractStreamWriter | None:
        if self.prepared:
            return await super().prepare(request)
        size = self.source.stat().st_size
        span = _span(request, size, self.shaping.no_range)
        if span is None:
            self.headers[hdrs.CONTENT_RANGE] = f"bytes */{size}"
            self.set_status(416)
            return await super().prepare(request)
        start, length, partial = span
        if partial:
            self.set_status(206)
            self.headers[hdrs.CONTENT_RANGE] = f"bytes {start}-{start + length - 1}/{size}"
        if not self.shaping.no_range:
            self.headers[hdrs.ACCEPT_RANGES] = "bytes"
        self.content_length = length
        writer = await super().prepare(request)
        if length and request.method != hdrs.METH_HEAD:
            await self._send(request, start, length)
        return writer

    async def _send(self, request: web.BaseRequest, start: int, length: int) -> None:
        stats, transport = self.stats, request.transport
        rate, damage = self.shaping.rate, self.damage
        cut = damage in ("reset", "truncate")
        piece_size = _BLOCK if rate is None else max(1, min(_THROTTLED_PIECE, int(rate / 20)))
        loop = asyncio.get_running_loop()
        began = loop.time()
        handed = counted = 0  # bytes given to the transport; of those, counted as sent
        with open(self.source, "rb") as file:
            file.seek(start)
            for piece in _pieces(file, length // 2 if cut else length, piece_size):
                if rate is not None:
                    delay = began + (handed + len(piece)) / rate - loop.time()
                    if delay > 0:
                        await asyncio.sleep(delay)
                if damage == "corrupt" and handed == 0:
                    piece = flip(piece, min(len(piece) // 2, 100))
                await self.write(piece)  # raises ConnectionError once the peer is gone
                handed += len(piece)
                buffered = 0 if transport is None else transport.get_write_buffer_size()
                stats.bytes_sent += handed - buffered - counted
                counted = handed - buffered
        if damage == "reset":
            cut_short(request, damage, handed, length)  # drops what is still buffered
            return
        # What is still buffered goes out after the last write (a clean close flushes it).
        stats.bytes_sent += handed - counted
        if damage == "truncate":
            cut_short(request, damage, handed, length)


def _span(request: web.BaseRequest, size: int, no_range: bool) -> tuple[int, int, bool] | None:
    """(first byte, length, whether partial) of the answer; None for an unsatisfiable Range."""
    if no_range or hdrs.RANGE not in request.headers:
        return 0, size, False
    try:
        wanted = request.http_range
    except ValueError:
        return None
    start, stop = wanted.start, wanted.stop
    if start is None:
        return 0, size, False
    if start < 0:  # bytes=-N: the last N bytes
        start, stop = max(0, size + start), size
    stop = size if stop is None else min(stop, size)
    if start >= size:
        return None
    return start, stop - start, True


def _pieces(file: BinaryIO, length: int, piece_size: int) -> Iterator[bytes]:
    while length > 0 and (data := file.read(min(piece_size, length))):
        length -= len(data)
        yield data
