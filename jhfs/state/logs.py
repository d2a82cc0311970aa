"""Job logs as files: on disk in the cache directory, growing while the job runs.

Owns <cache_dir>/logs (complete logs of finished jobs, reused across mounts),
the growing logs of running jobs in <cache_dir>/tmp, and which logs stay in
memory. A log is two files, its renderings (jhfs.state.logformat): the text
(every message + "\\n", oldest first) and the JSON lines, written together
from the same fetched messages. Bytes live only on disk; memory holds a few
counters per log, for the logs someone has open and at most `max_idle` others
(least recently used first to go).

Sizes: a stat asks `LogStore.size`, which fetches what is needed to know the
size (a finished job's whole log, once; a running job's backlog, or what is
new since it was brought up to now CURRENT_FOR ago), so that a program that
copies st_size bytes (tar, sendfile) copies the whole log.

Reading: each open file holds a descriptor of the log's file and reads it
with os.pread up to the size known, so a complete log that cache eviction
deletes (this mount's, only when nothing pins it: `in_use`; or another
mount's sharing the directory) still reads to its end for whoever opened
it. The next open fetches it again.

Fetching: the server pages newest first, so a backlog is fetched page by page
towards the top into chunk files that are then joined oldest first. An open
of a running log known before catches up with one page after its newest
message (none if it was brought up to now in the last CURRENT_FOR seconds).
While a running log is open, jhfs.state.logfollow appends what the job logs,
and following stops at the last close; nothing is asked about a log nobody
has open or stats.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import threading
import time
import urllib.parse
from collections import OrderedDict
from collections.abc import Callable, Sequence
from pathlib import Path

from jhfs.client import (
    JuliaHubClient,
    JuliaHubError,
    ListedButMissingError,
    LogMessage,
    ServerError,
)
from jhfs.client.api import LOG_PAGE_CAP
from jhfs.state.cachedir import clean_stale_temp, durable_rename, private_dir, temp_file
from jhfs.state.errors import CacheChurnError, ShuttingDownError
from jhfs.state.flight import SingleFlight
from jhfs.state.freshness import CURRENT_FOR
from jhfs.state.logfollow import LogFollower
from jhfs.state.logformat import Rendering
from jhfs.state.registry import JobRegistry
from jhfs.state.waiting import Waiter

logger = logging.getLogger(__name__)

MAX_IDLE_LOGS = 1024  # logs kept in memory that nobody has open (a few hundred bytes each)
OPEN_ATTEMPTS = 3  # fetches of a complete log that eviction deletes before an open gets it
# Pages one fetch may take (10 million messages at the server's cap of 10,000 a
# page): a server whose pages never reach the log's end must not be followed
# for ever.
MAX_LOG_PAGES = 1000
_SYNC = "sync"  # the single-flight key of a log's fetches
_COPY_CHUNK = 1 << 20


def _check_pages(jobname: str, pages: int) -> None:
    if pages > MAX_LOG_PAGES:
        raise ServerError(
            f"the log of {jobname}: no end after {MAX_LOG_PAGES} pages (the server's "
            "pages go on for ever)"
        )


def _file_name(jobname: str, rendering: Rendering) -> str:
    """A file name for the job's rendering that cannot escape the logs directory
    (its one dot is the suffix's)."""
    quoted = urllib.parse.quote(jobname, safe="-_")
    return quoted.replace(".", "%2E") + rendering.value


def _of_file_name(name: str) -> tuple[str, Rendering] | None:
    """The job and rendering whose file name `name` is (None: no log's)."""
    quoted, dot, suffix = name.partition(".")
    try:
        return urllib.parse.unquote(quoted), Rendering(dot + suffix)
    except ValueError:
        return None


def _without(messages: list[LogMessage], reference: LogMessage) -> list[LogMessage]:
    """Messages other than the reference (paging "up to and before" includes it)."""
    if reference.event_id is None:
        return messages
    return [m for m in messages if m.event_id != reference.event_id]


def _newer_than(
    messages: list[LogMessage], reference: LogMessage, newest: LogMessage | None
) -> list[LogMessage]:
    """Of `messages`, those after `reference`, the ones after `newest` (what the file lacks).

    Two fetches after the same reference may overlap (a stream and an open's
    catch-up); the log only moves forward, so what is past `newest` is new.
    (Also drops the reference itself, should a server send it again.)
    """
    if newest is None:
        return messages
    for index, message in enumerate(messages):
        if message.event_id == newest.event_id:
            return messages[index + 1 :]
    # Not among them: all new if they follow `newest`, else all in the file already.
    return messages if newest.event_id == reference.event_id else []


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _append(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_APPEND)  # no O_CREAT: a discarded log stays so
    try:
        _write_all(fd, data)
    finally:
        os.close(fd)


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class LogReader:
    """One open file of a log's rendering: its own descriptor of the rendering's file."""

    def __init__(self, log: JobLog, rendering: Rendering, fd: int, complete: bool) -> None:
        self.log = log
        self.rendering = rendering
        self.complete = complete  # the log was complete at the open: it will never change
        self._fd = fd

    @property
    def size(self) -> int:
        """Bytes of the rendering known so far."""
        return self.log.size_of(self.rendering)

    def read(self, offset: int, size: int) -> bytes:
        """Bytes known at [offset, offset+size); b"" past the known end (never blocks)."""
        known = self.size
        if offset >= known or size <= 0 or offset < 0:
            return b""
        size = min(size, known - offset)
        parts: list[bytes] = []
        while size > 0:
            part = os.pread(self._fd, size, offset)
            if not part:
                break
            parts.append(part)
            offset += len(part)
            size -= len(part)
        return parts[0] if len(parts) == 1 else b"".join(parts)

    def close(self) -> None:
        os.close(self._fd)
        self.log.release()


class JobLog:
    """One job's log as bytes, in each rendering: every message as one line, oldest first.

    Thread-safe. `_lock` guards the bookkeeping (paths, sizes, newest message,
    handles, following) and is never held across HTTP. Fetches run inside a
    single flight; appending newer messages (a fetch's or the stream's) holds
    `_write_lock`, so there is one writer at a time, which writes every
    rendering. The files' inodes never change once loaded (an empty log grows
    in place; the final names are renames), which is what the open files'
    descriptors rely on; only a complete log deleted by eviction is fetched
    into new files.
    """

    def __init__(self, store: LogStore, jobname: str) -> None:
        self.jobname = jobname
        self._store = store
        self._lock = threading.Lock()
        self._write_lock = threading.Lock()
        self._final_paths = {r: store.logs_dir / _file_name(jobname, r) for r in Rendering}
        self._paths: dict[Rendering, Path] | None = None  # where the known bytes are
        self._sizes = dict.fromkeys(Rendering, 0)
        self._loaded = False  # the backlog reached the top of the log
        self._complete = False  # the bottom was seen: the files are final
        self._ended = False  # the job is done but no bottom came: nothing to follow
        self._newest: LogMessage | None = None  # paging reference for newer messages
        self._current_until = 0.0  # brought up to now lately: current until then
        self._handles = 0  # open files
        self._following = False  # a follow is asked for or running (it holds a pin)
        self.pins = 0  # open files + follow: the store keeps it in memory (store's lock)
        self._flight: SingleFlight[str, int] = SingleFlight()
        try:
            sizes = {r: path.stat().st_size for r, path in self._final_paths.items()}
        except FileNotFoundError:
            # Not cached, or one rendering evicted (or from a jhfs before
            # logs.jsonl): fetched again.
            return
        # Written by this or an earlier mount, renamed into place only once complete.
        self._paths, self._sizes = dict(self._final_paths), sizes
        self._loaded = self._complete = True

    # -- what the nodes read -------------------------------------------------

    def size_of(self, rendering: Rendering) -> int:
        """Bytes of the rendering known so far (never blocks, never makes a request)."""
        return self._sizes[rendering]

    @property
    def complete(self) -> bool:
        """The whole log is on disk and will never change (the job finished)."""
        return self._complete

    def final_path(self, rendering: Rendering) -> Path:
        """Where the rendering of the complete log is kept, in the logs directory."""
        return self._final_paths[rendering]

    def known_size(self, rendering: Rendering) -> int:
        """The rendering's size as a stat shows it (blocks while fetched; call with a
        pin held).

        Known without a request: a complete log's, that of a job that ended,
        of a log open files follow, or of one brought up to now within
        CURRENT_FOR. Otherwise the log is brought up to now first, as an open
        does: a finished job's whole log is fetched (once: it stays on disk),
        a running job's backlog or what it logged since.
        """
        with self._lock:
            known = self._loaded and (
                self._complete
                or self._ended
                or self._handles > 0
                or self._store.clock() < self._current_until
            )
        if not known:
            self._flight.do(_SYNC, self._sync, self._store.waiter)
            self.mark_current()
        return self.size_of(rendering)

    def open(self, rendering: Rendering) -> LogReader:
        """An open file of the rendering, readable from its start (blocks while fetched).

        Brings the log up to now: a finished job's all of it (once, to disk), a
        running job's backlog, or what it logged since it was last followed.
        Then, for a running job, following begins. Call with a pin held.
        """
        for _ in range(OPEN_ATTEMPTS):
            self._bring_up_to_date()
            with self._lock:
                assert self._paths is not None  # loaded
                try:
                    fd = os.open(self._paths[rendering], os.O_RDONLY)
                except FileNotFoundError:
                    if self._complete:
                        continue  # evicted since: fetch it again
                    raise
                self._handles += 1
                follow = not (self._complete or self._ended or self._following)
                follow = follow and not self._store.closed
                self._following = self._following or follow
                complete, paths = self._complete, self._paths
            if complete:
                # Eviction goes by mtime, least recently opened first: the
                # renderings count as opened together, so they go together.
                for path in paths.values():
                    with contextlib.suppress(OSError):
                        os.utime(path)
            if follow:
                self._store.pin(self)
                self._start_following()
            return LogReader(self, rendering, fd, complete)
        raise CacheChurnError(
            f"the log of {self.jobname} was evicted from the cache {OPEN_ATTEMPTS} times "
            "as soon as it was fetched: the cache is too small for what the mounts sharing it use"
        )

    def release(self) -> None:
        """An open file closed: at the last, following stops."""
        with self._lock:
            self._handles -= 1
            stop = self._handles == 0 and self._following
        if stop:
            self._store.follower.unfollow(self)
        self._store.unpin(self)

    # -- what the follower calls ------------------------------------------------

    @property
    def newest(self) -> LogMessage | None:
        with self._lock:
            return self._newest

    @property
    def done(self) -> bool:
        """Nothing more to follow: complete, or the job ended without a bottom marker."""
        with self._lock:
            return self._complete or self._ended

    def mark_current(self) -> None:
        """The log was just brought up to now: opens need not ask for a while."""
        with self._lock:
            self._current_until = self._store.clock() + CURRENT_FOR

    def poll(self) -> int:
        """Fetch what is newer (blocking); returns how many messages were added."""
        added = self._flight.do(_SYNC, self._sync)
        if (
            added == 0
            and self._job_done()
            # Asked after the job was seen done: this has its last lines.
            and self._flight.do(_SYNC, self._sync) == 0
            and not self.complete
        ):
            # Done, yet no bottom marker reached us: nothing more will come, so
            # stop following (an open still catches up).
            logger.info("%s finished; stopped following its log", self.jobname)
            with self._lock:
                self._ended = True
        self.mark_current()
        return added

    def apply_newer(
        self, reference: LogMessage | None, messages: list[LogMessage], *, bottom: bool
    ) -> int | None:
        """Append `messages`, fetched as those after `reference`, that the files lack;
        `bottom`: the log ends after them. Returns how many were added.

        `reference` None: they come from a stream that began at the end of the
        log while the files had no message. None (nothing written) once they
        have one: the two may overlap, so the caller streams again after it.
        """
        with self._write_lock:
            with self._lock:
                newest, paths = self._newest, self._paths
                if self._complete or paths is None or self._store.closed:
                    return 0
            if reference is None and newest is not None:
                return None
            fresh = messages if reference is None else _newer_than(messages, reference, newest)
            if fresh:
                data = {rendering: rendering.encode(fresh) for rendering in Rendering}
                for rendering, rendered in data.items():
                    _append(paths[rendering], rendered)
                with self._lock:
                    # Bytes first, then the sizes that make readers see them.
                    for rendering, rendered in data.items():
                        self._sizes[rendering] += len(rendered)
                    self._newest = fresh[-1]
            stored = self._finish() if bottom else 0
        if fresh:
            self._store.on_grow(self.jobname)
        if stored:
            self._store.on_stored(stored)
        return len(fresh)

    def follow_ended(self, cancelled: bool) -> None:
        """The follower's task ended (on the loop thread): follow again if it was cancelled
        by a last close that an open has followed since."""
        with self._lock:
            again = cancelled and self._handles > 0 and not (self._complete or self._ended)
            again = again and not self._store.closed
            self._following = again
        if again:
            self._start_following()
        else:
            self._store.unpin(self)

    def _start_following(self) -> None:
        if not self._store.follower.follow(self):
            with self._lock:
                self._following = False
            self._store.unpin(self)

    def _job_done(self) -> bool:
        if self.complete:
            return True
        try:
            return self._store.registry.get(self.jobname).is_done
        except JuliaHubError:
            return False

    # -- fetching ---------------------------------------------------------------

    def _on_disk(self) -> bool:
        """Every rendering of the complete log is in the logs directory."""
        return all(path.exists() for path in self._final_paths.values())

    def _bring_up_to_date(self) -> None:
        with self._lock:
            if self._complete:
                if self._on_disk():
                    return
            elif self._loaded and self._store.clock() < self._current_until:
                return  # fetched or followed a moment ago
        # For an open: the fetch runs on the Waiter's pool, so that Ctrl-C, the
        # deadline or the unmount end the open while the fetch goes on.
        self._flight.do(_SYNC, self._sync, self._store.waiter)
        self.mark_current()

    def _sync(self) -> int:
        """Bring the file up to now (inside the single flight); returns messages added.

        A 404 for the log of a listed job has the registry forget the job: what
        it holds of it may be out of date.
        """
        try:
            return self._sync_now()
        except ListedButMissingError:
            self._store.registry.forget(self.jobname)
            raise

    def _sync_now(self) -> int:
        with self._lock:
            complete, loaded, newest = self._complete, self._loaded, self._newest
        if complete:
            if self._on_disk():
                return 0
            logger.info("%s: the cached log was deleted; fetching it again", self.jobname)
            return self._fetch_backlog()
        if not loaded or newest is None:
            # Also when the log was empty so far: there is no reference to page
            # after, and more than a page may have arrived since.
            return self._fetch_backlog()
        return self._fetch_newer(newest)

    def _fetch_backlog(self) -> int:
        store = self._store
        # Each rendering's chunk files, newest first.
        chunks: dict[Rendering, list[tuple[Path, int]]] = {r: [] for r in Rendering}
        count, pages = 0, 1
        try:
            page = store.client.log_page(self.jobname, nentries=store.page_size)
            newest = page.messages[-1] if page.messages else None
            has_bottom = page.has_bottom
            messages = page.messages
            while True:
                if messages:
                    for rendering, rendered in chunks.items():
                        rendered.append(self._write_chunk(rendering, messages))
                    count += len(messages)
                if page.has_top:
                    break
                if not messages:
                    # No top marker and nothing older: a job that has not
                    # logged yet. Treat it as empty rather than loop.
                    break
                oldest = messages[0]
                seen = {m.event_id for m in messages if m.event_id is not None}
                pages += 1
                _check_pages(self.jobname, pages)
                page = store.client.log_page(self.jobname, before=oldest, nentries=store.page_size)
                messages = _without(page.messages, oldest)
                if any(m.event_id in seen for m in messages):
                    # Asked for what came before, it sent some of the same again:
                    # paging on would never reach the top.
                    raise ServerError(
                        f"the log of {self.jobname}: the server sent the same messages "
                        f"again when asked for older ones (page {pages})"
                    )
            with self._write_lock:
                resized = self._install(chunks, newest)
        finally:
            for rendered in chunks.values():
                for chunk, _ in rendered:
                    chunk.unlink(missing_ok=True)
        logger.debug("%s: fetched %d log messages in %d pages", self.jobname, count, pages)
        if has_bottom:
            with self._write_lock:
                stored = self._finish()
            if stored:
                store.on_stored(stored)
        if resized:
            # The kernel may hold a size from before (a log dropped from memory
            # and fetched again): a page-cached read must not stop there.
            store.on_grow(self.jobname)
        return count

    def _install(
        self, chunks: dict[Rendering, list[tuple[Path, int]]], newest: LogMessage | None
    ) -> bool:
        """Make the fetched backlog the log's bytes (with the write lock held); whether
        its sizes changed."""
        if self._store.closed:
            raise ShuttingDownError(f"the mount is ending: the log of {self.jobname} is dropped")
        with self._lock:
            # A running log is fetched again only while it is empty (no newest
            # message to page after), and open files hold its descriptors: it
            # grows in place.
            grow = self._paths if not self._complete else None
        paths: dict[Rendering, Path] = {}
        sizes: dict[Rendering, int] = {}
        for rendering, rendered in chunks.items():
            if grow is not None:
                paths[rendering] = grow[rendering]
                sizes[rendering] = self._copy(rendered, grow[rendering])
            else:
                paths[rendering], sizes[rendering] = self._join(rendering, rendered)
        with self._lock:
            resized = sizes != self._sizes
            self._paths, self._sizes, self._newest, self._loaded = paths, sizes, newest, True
            self._complete = False  # a deleted complete log comes back through _finish
        return resized

    def _write_chunk(
        self, rendering: Rendering, messages: Sequence[LogMessage]
    ) -> tuple[Path, int]:
        data = rendering.encode(messages)
        fd, path = temp_file(self._store.tmp_dir, ".chunk")
        try:
            _write_all(fd, data)
        finally:
            os.close(fd)
        return path, len(data)

    def _join(self, rendering: Rendering, chunks: list[tuple[Path, int]]) -> tuple[Path, int]:
        """One new file of the chunks, oldest first (the one chunk itself if only one)."""
        if len(chunks) == 1:
            path, size = chunks.pop()
            return path, size
        fd, path = temp_file(self._store.tmp_dir, rendering.value)
        os.close(fd)
        return path, self._copy(chunks, path)

    @staticmethod
    def _copy(chunks: list[tuple[Path, int]], path: Path) -> int:
        """Append the chunks to `path`, oldest first, and delete them; their size."""
        size = 0
        with open(path, "ab") as out:
            for chunk, chunk_size in reversed(chunks):
                with open(chunk, "rb") as source:
                    shutil.copyfileobj(source, out, _COPY_CHUNK)
                size += chunk_size
                chunk.unlink()
        chunks.clear()
        return size

    def _fetch_newer(self, newest: LogMessage) -> int:
        store = self._store
        count, pages = 0, 0
        seen: set[str] = set()  # the previous page's eventIds
        while True:
            pages += 1
            _check_pages(self.jobname, pages)
            page = store.client.log_page(self.jobname, after=newest, nentries=store.page_size)
            messages = _without(page.messages, newest)
            if any(m.event_id in seen for m in messages):
                raise ServerError(
                    f"the log of {self.jobname}: the server sent the same messages again "
                    "when asked for newer ones"
                )
            count += self.apply_newer(newest, messages, bottom=page.has_bottom) or 0
            if page.has_bottom or len(page.messages) < store.page_size or not messages:
                return count  # caught up; a full page means more are waiting
            newest, seen = messages[-1], {m.event_id for m in messages if m.event_id}

    def _finish(self) -> int:
        """The bottom was seen: move the files to their final names for this and later
        mounts; the bytes that came into the logs directory.

        With the write lock held. The bytes reach the disk before the names
        do: a complete log on disk is trusted by later mounts, once every
        rendering has its final name.
        """
        with self._lock:
            paths = self._paths
            if self._complete or paths is None:
                return 0
        final = self._final_paths
        moving = paths != final  # all of them: the renderings are made together
        if moving:
            for path in paths.values():
                _fsync(path)
        with self._lock:
            if moving:
                # Under the lock: an open never sees a name that is about to go.
                # The text goes last, and the one fsync of the directory makes
                # both names durable.
                os.replace(paths[Rendering.JSONL], final[Rendering.JSONL])
                durable_rename(paths[Rendering.TEXT], final[Rendering.TEXT])
                self._paths = dict(final)
            self._complete = True
            sizes = self._sizes
        logger.debug("%s: log complete, %s bytes", self.jobname, sizes)
        return sum(sizes.values()) if moving else 0

    def discard_partial(self) -> None:
        """Delete the growing files of an unfinished log (no later mount can resume it)."""
        with self._lock:
            if self._complete or self._paths is None:
                return
            paths, self._paths, self._loaded = self._paths, None, False
            self._sizes, self._newest = dict.fromkeys(Rendering, 0), None
        for path in paths.values():
            path.unlink(missing_ok=True)
        # The kernel forgets the size it may hold: the next one known may be larger
        # (fetched again, or complete on disk from another mount).
        self._store.on_grow(self.jobname)


class LogStore:
    """All jobs' logs: those open (pinned) and the `max_idle` most recently used others."""

    def __init__(
        self,
        client: JuliaHubClient,
        registry: JobRegistry,
        cache_dir: Path,
        *,
        page_size: int = LOG_PAGE_CAP,
        max_idle: int = MAX_IDLE_LOGS,
        on_grow: Callable[[str], None] = lambda jobname: None,
        on_stored: Callable[[int], None] = lambda size: None,
        waiter: Waiter | None = None,
    ) -> None:
        self.client = client
        self.waiter = waiter
        # Told the job's name whenever its log's sizes changed other than by a
        # stat (a followed log grew, a log fetched again or dropped), outside
        # every lock, so that the kernel forgets the sizes it caches.
        self.on_grow = on_grow
        # Told the bytes of each log that comes into the logs directory (outside
        # every lock), which count toward the cache's size.
        self.on_stored = on_stored
        self.registry = registry
        self.page_size = page_size
        self.clock = time.monotonic
        self.logs_dir = private_dir(private_dir(cache_dir) / "logs")
        self.tmp_dir = private_dir(cache_dir / "tmp")
        clean_stale_temp(self.tmp_dir)
        self.follower = LogFollower(client)
        self._stopping = threading.Event()
        self._max_idle = max_idle
        self._lock = threading.Lock()  # guards the two maps and every JobLog's pins
        self._pinned: dict[str, JobLog] = {}
        self._idle: OrderedDict[str, JobLog] = OrderedDict()  # least recently used first

    @property
    def closed(self) -> bool:
        return self._stopping.is_set()

    def size(self, jobname: str, rendering: Rendering) -> int:
        """The size of a rendering of the job's log, as a stat shows it (blocks while
        it is fetched; see JobLog.known_size)."""
        log = self._pinned_log(jobname)  # not dropped from memory while it is fetched
        try:
            return log.known_size(rendering)
        finally:
            self.unpin(log)

    def open(self, jobname: str, rendering: Rendering) -> LogReader:
        """An open file of a rendering of the job's log (blocks while it is fetched;
        see JobLog.open)."""
        log = self._pinned_log(jobname)
        try:
            return log.open(rendering)
        except BaseException:
            self.unpin(log)
            raise

    def in_use(self, path: Path) -> bool:
        """This mount uses the log file at `path` (in the logs directory): the log is
        pinned (open, being opened or stat'ed), so eviction must leave it."""
        path = Path(os.path.abspath(path))
        named = _of_file_name(path.name)
        if path.parent != Path(os.path.abspath(self.logs_dir)) or named is None:
            return False
        jobname, rendering = named
        with self._lock:
            log = self._pinned.get(jobname)
        return log is not None and log.final_path(rendering).name == path.name

    def pin(self, log: JobLog) -> None:
        """Keep a log that is already pinned in memory once more (its follow)."""
        with self._lock:
            self._pin(log)

    def unpin(self, log: JobLog) -> None:
        """Undo one pin; at the last, the log is idle (and may be dropped later)."""
        with self._lock:
            log.pins -= 1
            if log.pins > 0 or self._pinned.get(log.jobname) is not log:
                return
            del self._pinned[log.jobname]
            self._idle[log.jobname] = log
            evicted = self._trim()
        for dropped in evicted:
            dropped.discard_partial()

    def close(self, timeout: float = 1.0) -> None:
        """Stop following (within `timeout`) and delete the partial logs of running jobs."""
        self._stopping.set()
        self.follower.close(timeout)
        with self._lock:
            logs = [*self._pinned.values(), *self._idle.values()]
        for log in logs:
            log.discard_partial()

    def _pinned_log(self, jobname: str) -> JobLog:
        """The one JobLog of this job (created on first use; checks the disk cache),
        pinned: unpin it when done."""
        with self._lock:
            log = self._find(jobname)
            if log is not None:
                self._pin(log)
                return log
        created = JobLog(self, jobname)  # stats the disk: outside the store's lock
        with self._lock:
            log = self._find(jobname)
            if log is None:
                log = created
            self._pin(log)
        return log

    # -- with the lock held ------------------------------------------------------

    def _find(self, jobname: str) -> JobLog | None:
        found = self._pinned.get(jobname)
        if found is None:
            found = self._idle.get(jobname)
            if found is not None:
                self._idle.move_to_end(jobname)
        return found

    def _pin(self, log: JobLog) -> None:
        log.pins += 1
        if log.pins == 1:
            self._idle.pop(log.jobname, None)
            self._pinned[log.jobname] = log

    def _trim(self) -> list[JobLog]:
        evicted: list[JobLog] = []
        while len(self._idle) > self._max_idle:
            evicted.append(self._idle.popitem(last=False)[1])
        return evicted
