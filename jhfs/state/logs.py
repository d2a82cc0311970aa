"""Job logs as files: on disk in the cache directory, growing while the job runs.

Owns <cache_dir>/logs (complete logs of finished jobs, reused across mounts)
and the growing logs of running jobs in <cache_dir>/tmp. A log's bytes are
every message + "\\n", oldest first. Bytes live only on disk and are read with
os.pread; memory holds a few counters per log, so a million-line log costs
what one page of messages costs while it is fetched.

Fetching: the server pages newest first, so a backlog is fetched page by page
towards the top into chunk files that are then joined oldest first. After
that, newer messages are appended by paging after the newest one known, on a
daemon thread per log that someone is watching (open, or read in the last
`watch_window` seconds) while the job runs.
"""

from __future__ import annotations

import logging
import os
import shutil
import threading
import time
import urllib.parse
from collections.abc import Sequence
from pathlib import Path

from jhfs.client import JuliaHubClient, JuliaHubError, LogMessage
from jhfs.client.api import LOG_PAGE_CAP
from jhfs.state.cachedir import clean_stale_temp, private_dir, temp_file
from jhfs.state.flight import SingleFlight
from jhfs.state.registry import JobRegistry

logger = logging.getLogger(__name__)

_SYNC = "sync"  # the single-flight key of a log's fetches: one writer at a time
_COPY_CHUNK = 1 << 20


def _file_name(jobname: str) -> str:
    """A file name for the job that cannot escape the logs directory."""
    quoted = urllib.parse.quote(jobname, safe="-_")
    return quoted.replace(".", "%2E") + ".log"


def _encode(messages: Sequence[LogMessage]) -> bytes:
    # A lone surrogate from a JSON escape cannot be UTF-8: show it as U+FFFD.
    return "".join(m.message + "\n" for m in messages).encode("utf-8", "replace")


def _without(messages: list[LogMessage], reference: LogMessage) -> list[LogMessage]:
    """Messages other than the reference (paging "up to and before" includes it)."""
    if reference.event_id is None:
        return messages
    return [m for m in messages if m.event_id != reference.event_id]


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _append(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_APPEND)
    try:
        _write_all(fd, data)
    finally:
        os.close(fd)


class JobLog:
    """One job's log as bytes: every message + "\\n", oldest first.

    Thread-safe. `_lock` guards the bookkeeping (path, size, newest message,
    watchers) and is never held across HTTP; fetches and appends run inside a
    single flight, so there is one writer at a time.
    """

    def __init__(self, store: LogStore, jobname: str) -> None:
        self.jobname = jobname
        self._store = store
        self._lock = threading.Lock()
        self._final_path = store.logs_dir / _file_name(jobname)
        self._path: Path | None = None  # where the known bytes are; None before load
        self._size = 0
        self._loaded = False  # the backlog reached the top of the log
        self._complete = False  # the bottom was seen: the file is final
        self._ended = False  # the job is done but no bottom came: nothing to follow
        self._newest: LogMessage | None = None  # paging reference for newer messages
        self._last_sync: float | None = None  # when the latest fetch of newer messages began
        self._open_count = 0
        self._watch_until = 0.0
        self._follower: threading.Thread | None = None
        self._flight: SingleFlight[str, int] = SingleFlight()
        try:
            size = self._final_path.stat().st_size
        except FileNotFoundError:
            return
        # Written by this or an earlier mount, renamed into place only once complete.
        self._path, self._size, self._loaded, self._complete = self._final_path, size, True, True

    # -- what the nodes read -------------------------------------------------

    @property
    def size(self) -> int:
        """Bytes known so far (never blocks, never makes a request)."""
        return self._size

    @property
    def complete(self) -> bool:
        """The whole log is on disk and will never change (the job finished)."""
        return self._complete

    def load(self) -> None:
        """Make the log readable from its start: for a finished job fetch all of it
        (once, to disk); for a running job fetch the backlog up to now. Blocks."""
        with self._lock:
            if self._complete:
                return
            # A follower that fetched a moment ago already brought it up to now.
            if (
                self._loaded
                and self._last_sync is not None
                and self._store.clock() - self._last_sync < self._store.follow_interval_active
            ):
                return
        self._flight.do(_SYNC, self._sync)

    def read(self, offset: int, size: int) -> bytes:
        """Bytes known at [offset, offset+size); b"" past the known end (never blocks).

        Reading a running job's log counts as watching it.
        """
        with self._lock:
            if not self._complete:
                self._watch_locked()
            known, path = self._size, self._path
            if path is None or offset >= known or size <= 0 or offset < 0:
                return b""
            size = min(size, known - offset)
            # Opened under the lock so that finishing (a rename) cannot slip in
            # between; the fd then reads the same inode whatever its name.
            fd = os.open(path, os.O_RDONLY)
        try:
            parts: list[bytes] = []
            while size > 0:
                part = os.pread(fd, size, offset)
                if not part:
                    break
                parts.append(part)
                offset += len(part)
                size -= len(part)
            return parts[0] if len(parts) == 1 else b"".join(parts)
        finally:
            os.close(fd)

    def watch(self) -> None:
        """Someone opened or read the file: follow a running job for the next minute."""
        with self._lock:
            self._watch_locked()

    def open(self) -> None:
        """A file handle opened: follow while it stays open (and a minute after)."""
        with self._lock:
            self._open_count += 1
            self._watch_locked()

    def release(self) -> None:
        """A file handle closed: keep following for `watch_window` seconds more."""
        with self._lock:
            self._open_count = max(0, self._open_count - 1)
            self._watch_locked()

    @property
    def following(self) -> bool:
        """A background thread is fetching newer messages."""
        with self._lock:
            return self._follower is not None

    # -- following -----------------------------------------------------------

    def _watched_locked(self) -> bool:
        return self._open_count > 0 or self._store.clock() < self._watch_until

    def _watch_locked(self) -> None:
        self._watch_until = self._store.clock() + self._store.watch_window
        if self._complete or self._ended or self._follower is not None or self._store.closed:
            return
        self._follower = threading.Thread(
            target=self._follow, name=f"jhfs-log-{self.jobname}", daemon=True
        )
        self._follower.start()

    def _follow(self) -> None:
        store = self._store
        me = threading.current_thread()
        failures = 0
        delay = store.follow_interval_active
        try:
            while not store.closed:
                with self._lock:
                    if self._complete or not self._watched_locked():
                        self._follower = None
                        return
                try:
                    added = self._flight.do(_SYNC, self._sync)
                    # Quick while lines keep coming, backing off to about once a
                    # second while the job is quiet.
                    delay = (
                        store.follow_interval_active
                        if added
                        else min(delay * 2, store.follow_interval)
                    )
                    if (
                        added == 0
                        and self._job_done()
                        # Asked after the job was seen done: this has its last lines.
                        and self._flight.do(_SYNC, self._sync) == 0
                        and not self._complete
                    ):
                        # Done, yet no bottom marker reached us: nothing more will
                        # come, so stop asking (load() still catches up).
                        logger.info("%s finished; stopped following its log", self.jobname)
                        with self._lock:
                            self._ended = True
                        return
                    failures = 0
                except JuliaHubError as error:
                    failures += 1
                    if failures == 1:  # one line per outage, not one a second
                        logger.warning("following the log of %s: %s", self.jobname, error)
                except OSError:
                    logger.exception("following the log of %s failed", self.jobname)
                    return
                store.stopping.wait(delay)
        finally:
            with self._lock:
                if self._follower is me:
                    self._follower = None

    def _job_done(self) -> bool:
        if self._complete:
            return True
        try:
            return self._store.registry.get(self.jobname).is_done
        except JuliaHubError:
            return False

    # -- fetching (inside the single flight: one writer) --------------------

    def _sync(self) -> int:
        """Bring the file up to now; returns how many messages were added."""
        if self._complete:
            return 0
        if not self._loaded or self._newest is None:
            # Also when the log was empty so far: there is no reference to page
            # after, and more than a page may have arrived since.
            return self._fetch_backlog()
        return self._fetch_newer(self._newest)

    def _fetch_backlog(self) -> int:
        store = self._store
        started = store.clock()
        chunks: list[tuple[Path, int]] = []  # newest first
        count, pages = 0, 1
        try:
            page = store.client.log_page(self.jobname, nentries=store.page_size)
            newest = page.messages[-1] if page.messages else None
            has_bottom = page.has_bottom
            messages = page.messages
            while True:
                if messages:
                    chunks.append(self._write_chunk(messages))
                    count += len(messages)
                if page.has_top:
                    break
                if not messages:
                    # No top marker and nothing older: a job that has not
                    # logged yet. Treat it as empty rather than loop.
                    break
                oldest = messages[0]
                page = store.client.log_page(self.jobname, before=oldest, nentries=store.page_size)
                pages += 1
                messages = _without(page.messages, oldest)
            path, size = self._join(chunks)
        finally:
            for chunk, _ in chunks:
                chunk.unlink(missing_ok=True)
        with self._lock:
            old_path = self._path
            self._path, self._size, self._newest = path, size, newest
            self._loaded, self._last_sync = True, started
        if old_path is not None and old_path != path:
            old_path.unlink(missing_ok=True)  # an earlier empty backlog
        logger.debug("%s: fetched %d log messages in %d pages", self.jobname, count, pages)
        if has_bottom:
            self._finish()
        return count

    def _write_chunk(self, messages: Sequence[LogMessage]) -> tuple[Path, int]:
        data = _encode(messages)
        fd, path = temp_file(self._store.tmp_dir, ".chunk")
        try:
            _write_all(fd, data)
        finally:
            os.close(fd)
        return path, len(data)

    def _join(self, chunks: list[tuple[Path, int]]) -> tuple[Path, int]:
        """One file of the chunks, oldest first (the one chunk itself if only one)."""
        if len(chunks) == 1:
            path, size = chunks.pop()
            return path, size
        fd, path = temp_file(self._store.tmp_dir, ".log")
        size = 0
        with open(fd, "wb", closefd=True) as out:
            for chunk, chunk_size in reversed(chunks):
                with open(chunk, "rb") as source:
                    shutil.copyfileobj(source, out, _COPY_CHUNK)
                size += chunk_size
                chunk.unlink()
        chunks.clear()
        return path, size

    def _fetch_newer(self, newest: LogMessage) -> int:
        store = self._store
        count = 0
        while True:
            started = store.clock()
            page = store.client.log_page(self.jobname, after=newest, nentries=store.page_size)
            messages = _without(page.messages, newest)
            added = 0
            if messages:
                data = _encode(messages)
                assert self._path is not None  # loaded before newer messages are fetched
                _append(self._path, data)
                added = len(data)
                newest = messages[-1]
                count += len(messages)
            with self._lock:
                # Bytes first, then the size that makes readers see them.
                self._size += added
                self._newest, self._last_sync = newest, started
            if page.has_bottom:
                self._finish()
                return count
            if len(page.messages) < store.page_size:
                return count  # caught up; a full page means more are waiting

    def _discard_partial(self) -> None:
        """Delete the growing file of an unfinished log (no later mount can resume it)."""
        with self._lock:
            if self._complete or self._follower is not None or self._path is None:
                return
            path, self._path, self._size, self._loaded = self._path, None, 0, False
        path.unlink(missing_ok=True)

    def _finish(self) -> None:
        """The bottom was seen: move the file to its final name for this and later mounts."""
        with self._lock:
            assert self._path is not None
            if self._path != self._final_path:
                os.replace(self._path, self._final_path)
                self._path = self._final_path
            self._complete = True
        logger.debug("%s: log complete, %d bytes", self.jobname, self._size)


class LogStore:
    """All jobs' logs; background following, about once a second (4/s while a log grows),
    only for watched running jobs."""

    def __init__(
        self,
        client: JuliaHubClient,
        registry: JobRegistry,
        cache_dir: Path,
        *,
        follow_interval: float = 1.0,
        follow_interval_active: float = 0.25,
        watch_window: float = 60.0,
        page_size: int = LOG_PAGE_CAP,
    ) -> None:
        self.client = client
        self.registry = registry
        # A quiet log is asked about once a second; one that is growing every
        # quarter second, because tail -f on FUSE adds its own 1 s polling (and
        # the kernel's attribute cache) on top: a 1 s poll here would put a new
        # line's p95 latency past 2 s.
        self.follow_interval = follow_interval
        self.follow_interval_active = follow_interval_active
        self.watch_window = watch_window
        self.page_size = page_size
        self.clock = time.monotonic
        self.logs_dir = private_dir(private_dir(cache_dir) / "logs")
        self.tmp_dir = private_dir(cache_dir / "tmp")
        clean_stale_temp(self.tmp_dir)
        self.stopping = threading.Event()
        self._lock = threading.Lock()
        self._logs: dict[str, JobLog] = {}

    @property
    def closed(self) -> bool:
        return self.stopping.is_set()

    def log(self, jobname: str) -> JobLog:
        """The one JobLog of this job (created on first use; checks the disk cache)."""
        with self._lock:
            found = self._logs.get(jobname)
        if found is not None:
            return found
        created = JobLog(self, jobname)  # stats the disk: outside the store's lock
        with self._lock:
            return self._logs.setdefault(jobname, created)

    def close(self, timeout: float = 2.0) -> None:
        """Stop background followers (waits up to `timeout` for a fetch in progress)
        and delete the partial logs of running jobs."""
        self.stopping.set()
        with self._lock:
            logs = list(self._logs.values())
        deadline = time.monotonic() + timeout
        for log in logs:
            follower = log._follower
            if follower is not None:
                follower.join(max(0.0, deadline - time.monotonic()))
        for log in logs:
            log._discard_partial()
