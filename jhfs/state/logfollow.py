"""Following running jobs' logs while they are open: one scheduler for all of them.

Owns the scheduler thread, its asyncio loop, the websocket streams and the
fallback polls. Every followed log is one task on that loop: it streams the
log (jhfs.client.logstream), and polls get_logs instead while the stream is
refused or dropped, trying the stream again later with backoff. The polls'
blocking HTTP calls run on a small pool. Every request made here is a
background request: it waits its turn on the mount-wide rate limit.

What is followed and when it stops is JobLog's business (jhfs.state.logs):
it asks `follow` at the first open of a running log and `unfollow` at the
last close.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import random
import threading
import time
from typing import TYPE_CHECKING

import aiohttp

from jhfs.client import JuliaHubClient, JuliaHubError, LogMessage
from jhfs.client.logstream import open_log_stream
from jhfs.state.freshness import (
    FOLLOW_START_DELAY,
    POLL_INTERVAL_ACTIVE,
    POLL_INTERVAL_QUIET,
    STREAM_HEALTHY,
    STREAM_RETRY_FIRST,
    STREAM_RETRY_MAX,
)
from jhfs.state.pools import WorkerPool, run_on

if TYPE_CHECKING:
    from jhfs.state.logs import JobLog

logger = logging.getLogger(__name__)

# How a followed log is followed, as `jhfs status` shows it.
STARTING, STREAM, POLLING = "starting", "stream", "polling"
MAX_STREAMS = 64  # websockets open at once; more followed logs poll instead
POLL_THREADS = 2  # the fallback polls' blocking HTTP calls
SHUTDOWN_GRACE = 0.8  # seconds close() lets tasks hang up their websockets


class LogFollower:
    """The scheduler. Thread-safe; its thread and loop start at the first follow."""

    def __init__(self, client: JuliaHubClient) -> None:
        self._client = client
        self._lock = threading.Lock()  # guards the next four
        self._closed = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._modes: dict[str, str] = {}  # jobname -> how it is followed now
        # Its threads start at the first poll.
        self._polls = WorkerPool("jhfs-logpoll", POLL_THREADS)
        # The loop thread's alone:
        self._tasks: dict[JobLog, asyncio.Task[None]] = {}
        self._session: aiohttp.ClientSession | None = None
        self._streams = 0

    def follow(self, log: JobLog) -> bool:
        """Start following `log` (once; again only after `log.follow_ended`).

        False when the follower is closed. `log.follow_ended(cancelled)` is
        called on the loop thread when the follow ends.
        """
        with self._lock:  # held while scheduling: close() then comes after it
            if self._closed:
                return False
            self._start_loop().call_soon_threadsafe(self._start, log)
        return True

    def unfollow(self, log: JobLog) -> None:
        """Stop following `log`, now (its current request's answer is dropped)."""
        with self._lock:
            if not self._closed and self._loop is not None:
                self._loop.call_soon_threadsafe(self._stop, log)

    def following(self) -> dict[str, str]:
        """The jobs whose logs are followed now, each with how: STARTING, STREAM or POLLING."""
        with self._lock:
            return dict(self._modes)

    def close(self, timeout: float = 1.0) -> None:
        """Stop every follow, hang up the websockets, end the thread: within `timeout`."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            loop, thread = self._loop, self._thread
        if loop is not None and thread is not None:
            deadline = time.monotonic() + timeout
            done = asyncio.run_coroutine_threadsafe(self._shutdown(), loop)
            try:
                done.result(timeout)
            except TimeoutError:
                logger.warning("log followers did not stop within %.1f s", timeout)
            loop.call_soon_threadsafe(loop.stop)
            thread.join(max(0.0, deadline - time.monotonic()))
        # A poll's HTTP call under way ends on its own; its answer is dropped.
        self._polls.shutdown()

    # -- the loop thread ---------------------------------------------------------

    def _start_loop(self) -> asyncio.AbstractEventLoop:
        """The loop, started with its thread if need be (call with the lock held)."""
        if self._loop is None:
            self._loop = asyncio.new_event_loop()
            self._thread = threading.Thread(
                target=self._run, args=(self._loop,), name="jhfs-logs", daemon=True
            )
            self._thread.start()
        return self._loop

    @staticmethod
    def _run(loop: asyncio.AbstractEventLoop) -> None:
        asyncio.set_event_loop(loop)
        try:
            loop.run_forever()
        finally:
            loop.close()

    def _start(self, log: JobLog) -> None:
        task = self._tasks.get(log)
        if task is not None and not task.done():
            return  # being cancelled: its end starts it again if still wanted
        task = asyncio.get_running_loop().create_task(self._follow(log))
        self._tasks[log] = task
        task.add_done_callback(functools.partial(self._ended, log))

    def _stop(self, log: JobLog) -> None:
        task = self._tasks.get(log)
        if task is not None:
            task.cancel()

    def _ended(self, log: JobLog, task: asyncio.Task[None]) -> None:
        if self._tasks.get(log) is task:
            del self._tasks[log]
            self._set_mode(log, None)
        cancelled = task.cancelled()
        if not cancelled and (error := task.exception()) is not None:
            logger.error("following the log of %s failed", log.jobname, exc_info=error)
        log.follow_ended(cancelled)

    async def _shutdown(self) -> None:
        tasks = list(self._tasks.values())
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=SHUTDOWN_GRACE)
        if self._session is not None:
            await self._session.close()

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None:
            # No total timeout: a stream lasts as long as the job logs.
            timeout = aiohttp.ClientTimeout(total=None, sock_connect=10.0)
            connector = aiohttp.TCPConnector(limit=MAX_STREAMS)
            self._session = aiohttp.ClientSession(timeout=timeout, connector=connector)
        return self._session

    def _set_mode(self, log: JobLog, mode: str | None) -> None:
        with self._lock:
            if mode is None:
                self._modes.pop(log.jobname, None)
            else:
                self._modes[log.jobname] = mode

    async def _follow(self, log: JobLog) -> None:
        loop = asyncio.get_running_loop()
        self._set_mode(log, STARTING)
        await asyncio.sleep(FOLLOW_START_DELAY)
        stream_at, backoff = 0.0, STREAM_RETRY_FIRST
        interval, failures = POLL_INTERVAL_ACTIVE, 0
        while not log.done:
            newest = log.newest  # None while the log is empty: stream from its end
            if loop.time() >= stream_at and self._streams < MAX_STREAMS:
                began = loop.time()
                try:
                    await self._stream(log, newest)
                    continue
                except JuliaHubError as error:
                    if loop.time() - began >= STREAM_HEALTHY:
                        backoff = STREAM_RETRY_FIRST
                    wait = backoff * random.uniform(0.8, 1.2)
                    stream_at, backoff = loop.time() + wait, min(backoff * 2, STREAM_RETRY_MAX)
                    logger.info("%s; polling, streaming again in %.0f s", error, wait)
                # Then poll at once: it fetches what the stream may have missed.
            self._set_mode(log, POLLING)
            try:
                added = await run_on(self._polls, functools.partial(self._poll, log))
                failures = 0
            except JuliaHubError as error:
                added, failures = 0, failures + 1
                if failures == 1:  # one line per outage, not one a second
                    logger.warning("following the log of %s: %s", log.jobname, error)
            if log.done:
                return
            interval = POLL_INTERVAL_ACTIVE if added else min(interval * 2, POLL_INTERVAL_QUIET)
            await asyncio.sleep(interval)

    def _poll(self, log: JobLog) -> int:
        """One fallback poll, on the pool: messages added."""
        with self._client.background():
            return log.poll()

    async def _stream(self, log: JobLog, after: LogMessage | None) -> None:
        """Stream the log's messages after `after` until its end (JuliaHubError if not).

        Returns early, to stream again after the newest message, when `after`
        is None (the log was empty) and the log has a message from elsewhere.
        """
        self._streams += 1  # counted while it waits its turn too: the cap holds
        try:
            wait = self._client.take_turn(background=True)
            if wait > 0:
                await asyncio.sleep(wait)
            async with open_log_stream(self._http(), self._client, log.jobname, after) as stream:
                self._set_mode(log, STREAM)
                if after is None:
                    # Streamed from the log's end: one poll now fetches what came
                    # before the stream began (then this streams again after it).
                    await run_on(self._polls, functools.partial(self._poll, log))
                reference = after
                while True:
                    batch = await stream.next_batch()
                    # A small append to the page cache, written here on the loop
                    # (the last also fsyncs the log and renames it: once per log).
                    if log.apply_newer(reference, batch.messages, bottom=batch.bottom) is None:
                        return  # the log is no longer empty: stream after its newest
                    log.mark_current()
                    if batch.messages:
                        reference = batch.messages[-1]
                    if log.done:
                        return
        finally:
            self._streams -= 1
