"""The live log stream: /ws/stream_logs, a websocket of one job's newer log messages.

Owns the websocket side of following a log: the address, the handshake and
the frames. Each frame is one message object (parsed as get_logs parses its
entries), an empty frame is a keep-alive (the server sends one every
`REFRESH_INTERVAL` while nothing is logged), and the bottom marker ends the
stream of a finished job. The caller owns the aiohttp session and the loop.

The token goes in the Authorization header (JuliaHubClient.bearer_headers) of
the handshake to the server's own host; aiohttp drops it on a redirect to
another origin, and no message made here holds a header.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

import aiohttp

from jhfs.client.api import JuliaHubClient
from jhfs.client.errors import JuliaHubError, ServerError, ServerUnreachableError
from jhfs.client.models import LogMessage, parse_log_page

logger = logging.getLogger(__name__)

STREAM_PATH = "/ws/stream_logs"
REFRESH_INTERVAL = 1  # seconds between the server's keep-alives (the official client's value)
# Keep-alives come every second: this long without any frame, the connection is dead.
STALE_AFTER = 10.0
HANDSHAKE_TIMEOUT = 10.0  # seconds from connecting to the switch to a websocket
CLOSE_TIMEOUT = 0.5  # seconds to wait for the server's close frame when we hang up
# A batch waits this long for more frames after its first message, so that a
# burst of lines is one write to disk, not one each, at the cost of this latency.
BATCH_WINDOW = 0.05
BATCH_MAX = 1000  # messages; a backlog arrives in batches of at most this many


class StreamRefused(ServerError):
    """The server did not open the stream (an HTTP status, or not a websocket)."""


class StreamLost(ServerUnreachableError):
    """The stream could not be reached, or ended before the bottom marker."""


@dataclass(frozen=True)
class StreamBatch:
    """Messages received together, oldest first; `bottom`: the log ends after them."""

    messages: list[LogMessage]
    bottom: bool


def stream_url(server: str) -> str:
    """The stream's address on `server` (an https or, for loopback, http base URL)."""
    parts = urlsplit(server)
    scheme = {"https": "wss", "http": "ws"}[parts.scheme]
    return urlunsplit((scheme, parts.netloc, parts.path + STREAM_PATH, "", ""))


def parse_frame(text: str) -> StreamBatch:
    """One frame's message object (or marker) as a batch; ServerError if malformed."""
    page = parse_log_page("[" + text + "]")  # one entry of a get_logs array
    return StreamBatch(page.messages, page.has_bottom)


class LogStream:
    """An open stream of one job's log. Not thread-safe: one task reads it."""

    def __init__(self, websocket: aiohttp.ClientWebSocketResponse, jobname: str) -> None:
        self._websocket = websocket
        self._jobname = jobname

    async def next_batch(self) -> StreamBatch:
        """The next messages, as they come: returns at a keep-alive (caught up, perhaps
        with no message), at the bottom marker, after BATCH_WINDOW or BATCH_MAX.

        StreamLost when the stream ends before the bottom or falls silent;
        ServerError for a malformed frame.
        """
        loop = asyncio.get_running_loop()
        messages: list[LogMessage] = []
        flush_at: float | None = None
        while True:
            wait = STALE_AFTER if flush_at is None else max(0.001, flush_at - loop.time())
            try:
                frame = await self._websocket.receive(timeout=wait)
            except TimeoutError:
                if messages:
                    return StreamBatch(messages, False)
                raise StreamLost(
                    f"the log stream of job {self._jobname} was silent for {STALE_AFTER:g} s"
                ) from None
            if frame.type is aiohttp.WSMsgType.TEXT:
                text = frame.data
            elif frame.type is aiohttp.WSMsgType.BINARY:
                text = frame.data.decode("utf-8", "replace")
            else:
                raise StreamLost(
                    f"the log stream of job {self._jobname} ended before the end of the log"
                )
            if not text:
                return StreamBatch(messages, False)  # a keep-alive: nothing more for now
            try:
                batch = parse_frame(text)
            except JuliaHubError as exc:
                raise ServerError(f"the log stream of job {self._jobname}: {exc}") from None
            messages.extend(batch.messages)
            if batch.bottom or len(messages) >= BATCH_MAX:
                return StreamBatch(messages, batch.bottom)
            if flush_at is None:
                flush_at = loop.time() + BATCH_WINDOW


@asynccontextmanager
async def open_log_stream(
    session: aiohttp.ClientSession,
    client: JuliaHubClient,
    jobname: str,
    after: LogMessage | None,
) -> AsyncIterator[LogStream]:
    """The stream of `jobname`'s messages after `after` (None: from the log's end
    when the stream begins); closed when the block ends.

    StreamRefused when the server answers the handshake with an HTTP status
    (or not as a websocket), StreamLost when it cannot be reached.
    """
    params = {
        "jobname": jobname,
        "refresh_interval": str(REFRESH_INTERVAL),
        "log_out_type": "json",
    }
    if after is not None:
        if after.event_id is None:
            raise ServerError(f"cannot follow the log of job {jobname}: a message has no eventId")
        params["offset"] = after.event_id
    try:
        async with asyncio.timeout(HANDSHAKE_TIMEOUT):
            websocket = await session.ws_connect(
                stream_url(client.server),
                params=params,
                headers=client.bearer_headers(),
                autoping=True,
            )
    except aiohttp.WSServerHandshakeError as exc:
        raise StreamRefused(
            f"the server refused the log stream of job {jobname} ({exc.status})"
        ) from None
    except (aiohttp.ClientError, OSError, TimeoutError) as exc:
        raise StreamLost(
            f"cannot open the log stream of job {jobname}: {type(exc).__name__}"
        ) from None
    logger.debug("streaming the log of %s after eventId %s", jobname, params.get("offset", "(end)"))
    try:
        yield LogStream(websocket, jobname)
    finally:
        # A server busy sending may never answer our close frame: then the
        # connection is simply dropped.
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(CLOSE_TIMEOUT):
                await websocket.close()
