"""One job file on its way into the cache: ranged chunks over parallel connections,
hashed as its prefix grows, readable while it arrives. Also the check of a
cached blob on its first use by a mount: the same machinery with every byte
already there.

The bytes go to a file in <cache_dir>/tmp at their own offsets (sparse). A
file above PARALLEL_THRESHOLD is cut into CHUNK_SIZE chunks, and up to
`streams` connections each take the lowest chunk nobody has taken, so the
file fills from the front and a reader streaming it keeps moving. The first
request asks for the first chunk only. A 200 answer (a server that ignores
Range) turns the download into one stream of the whole file; after a 206 the
other connections open if the first brings less than FAST_CONNECTION:
parallel ranges pay where a storage service limits each connection, and only
cost CPU where one connection already runs at memory speed. Each chunk
resumes on its own after connection trouble (the client's retry policy).
A "connection" is a task on the mount's connection pool (jhfs.state.pools)
that fetches one chunk and then queues again, so downloads take turns.

Hashing follows the contiguous prefix (the bytes from 0 that are all on
disk): a task on the hash pool runs whenever the prefix has grown past what
was hashed, and compares the digest at the end. The rule for readers: a read
is answered as soon as its bytes are on disk, except that **no read reaches
the end of the file before the hash matched** (in `strict` mode no read is
answered before). On a mismatch every read of this download fails (EIO)
and its bytes are deleted; the file cache starts a new download on the next
open. On a match the file is fsynced and renamed into the blob directory
(durable_rename): only then is it a cached blob. A check (`checking`) reads
the blob itself: a mismatch deletes the blob, a match only marks it checked.

Readers attach while they have the file open. When the last one detaches
before the end, the connections stop within one socket read, hashing stops,
and the bytes stay; attaching again resumes from them with Range requests (a
server that ignores Range sends the whole file again). `shut_down` (the
mount ends) lets every waiting read go at once; `stop` ends a paused one for
good; either way the file cache may then keep the bytes as a partial
download (`present` tells what is on disk) for a later resume.
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from jhfs.client import JobFile, JuliaHubClient, TransferCancelled
from jhfs.client.pacing import RecentCounts
from jhfs.state.cachedir import durable_rename
from jhfs.state.errors import IntegrityError, ShuttingDownError
from jhfs.state.pools import WorkerPool
from jhfs.state.waiting import POLL  # the one interval of waits that may end early

logger = logging.getLogger(__name__)

CHUNK_SIZE = 8 << 20  # per ranged request: few requests per GiB, small enough to spread
PARALLEL_THRESHOLD = 2 * CHUNK_SIZE  # smaller files come in one request
HASH = hashlib.sha256  # a job file's hash: sha2_256, the one files.FileCache supports
HASH_BLOCK = 4 << 20  # hashlib releases the GIL on blocks this large
HASH_TURN = 8  # blocks hashed per turn on the hash pool before other downloads' turn
# The first connection's first PROBE_BYTES tell whether more would help: a
# link that gives one connection FAST_CONNECTION bytes/s or more is not
# limited per connection (loopback, a LAN), and there extra connections only
# cost CPU (measured on the emulator: 1 GiB in 0.6 s on one, 1.4 s on four).
PROBE_BYTES = 4 << 20
FAST_CONNECTION = 250_000_000
RATE_WINDOW = 5  # seconds over which a download's rate is measured (`jhfs status`)


@dataclass
class _Chunk:
    start: int
    end: int
    written: int = 0  # bytes [start, start + written) are on disk
    taken: bool = False  # a connection is fetching it

    @property
    def done(self) -> bool:
        return self.start + self.written >= self.end


class _ChunkSink:
    """The client's DownloadSink for one connection's current chunk."""

    def __init__(self, download: Download, chunk: _Chunk) -> None:
        self.download = download
        self.chunk = chunk

    def begin(self, start: int, end: int) -> None:
        self.download._begin(self, start, end)

    def write(self, offset: int, data: bytes) -> None:
        self.download._write(self, offset, data)

    def cancelled(self) -> bool:
        return self.download._cancelled(self)


@dataclass(frozen=True)
class Progress:
    """How far a download (or the check of a cached blob) has come."""

    file: JobFile
    done: int  # bytes on disk (of a check: bytes hashed)
    rate: float  # bytes a second over the last RATE_WINDOW seconds
    readers: int  # open files reading it; 0: paused, to resume at the next open
    connections: int
    checking: bool


def digest_of(fd: int) -> bytes:
    """The hash of the whole file open as `fd`, read as a download hashes its bytes
    (`jhfs cache verify`: a blob checked against its name)."""
    digest = HASH()
    offset = 0
    while block := os.pread(fd, HASH_BLOCK, offset):
        digest.update(block)
        offset += len(block)
    return digest.digest()


def describe(file: JobFile) -> str:
    return f"{file.jobname}/files/{file.type}/{file.name}"


@dataclass
class Workers:
    """The mount's pools a download runs on."""

    connections: WorkerPool
    hashing: WorkerPool


class Download:
    """A job file being fetched into `path` (open as `fd`), or a cached blob at
    `path` being checked (`checking`); see the module docstring.

    `present` lists the byte ranges already on disk (resumed or checked).
    `on_end` runs once (on a worker thread) when the download has ended:
    verified (and, unless checking, renamed to `blob_path`), or failed.
    """

    def __init__(
        self,
        client: JuliaHubClient,
        file: JobFile,
        expected: bytes,
        blob_path: Path,
        *,
        fd: int,
        path: Path,
        present: list[tuple[int, int]],
        checking: bool,
        workers: Workers,
        streams: int,
        strict: bool,
        on_end: Callable[[Download], None],
    ) -> None:
        self.file = file
        self.size = file.size
        self.checking = checking
        self._client = client
        self._expected = expected
        self._blob_path = blob_path
        self._fd, self.path = fd, path
        self._workers = workers
        self._streams = streams
        self._strict = strict
        self._on_end = on_end
        self._cond = threading.Condition()
        if self.size > PARALLEL_THRESHOLD and streams > 1 and not checking:
            starts = range(0, self.size, CHUNK_SIZE)
            self._chunks = [_Chunk(s, min(s + CHUNK_SIZE, self.size)) for s in starts]
        else:
            self._chunks = [_Chunk(0, self.size)]
        for chunk in self._chunks:
            # Only a chunk's own prefix counts: its connection goes on from there.
            for start, end in present:
                if start <= chunk.start < end:
                    chunk.written = min(end, chunk.end) - chunk.start
        self._complete = 0  # chunks [0, _complete) of _complete_in are all on disk
        self._complete_in = self._chunks
        self._ranged: bool | None = None  # whether the server answers Range; unknown at first
        self._connections_wanted = 1  # becomes `streams` once one connection proved slow
        self._probe_started: float | None = None  # when the first ranged answer began
        self._probe_from = 0  # and at which byte
        self._readers = 0
        self._connections = 0  # connection tasks queued or running
        self._hashing = False  # a hash task is queued or running
        self._hash = HASH()
        self._hashed = 0
        self._verified = False
        self.kept = False  # renamed into the blob directory
        self.inode = 0  # of the verified bytes
        self.dropped = False  # its bytes were deleted (a failure)
        self._error: BaseException | None = None
        self._failing = False  # its bytes are being deleted; then _error is set
        self._stopped = False  # ended by stop or shut_down: the bytes stay
        self._closed = False
        self._started = time.monotonic()
        self._arriving = RecentCounts(RATE_WINDOW)  # bytes written (of a check: hashed)

    # -- readers ----------------------------------------------------------------

    def attach(self) -> None:
        """A reader opened the file: (re)start the transfer and the hashing if they
        are not running."""
        with self._cond:
            self._readers += 1
            if self._ended():
                return
            if self._connections == 0 and self._untaken():
                self._started = time.monotonic()
                self._arriving.restart()
                if any(chunk.written for chunk in self._chunks):
                    logger.info("%s: resuming at %d bytes", describe(self.file), self._contiguous())
                if self._probe_started is not None:  # stopped before it could tell
                    self._probe_started = None
                    self._connections_wanted = self._streams
                wanted = self._connections_wanted if self._ranged else 1
                for _ in range(min(wanted, self._untaken())):
                    self._open_connection()
            self._schedule_hash()

    def detach(self) -> None:
        """A reader closed the file; after the last one an unfinished transfer stops."""
        with self._cond:
            self._readers -= 1
            if self._readers == 0 and not self._ended():
                logger.info(
                    "%s: nobody reads it; stopping at %d of %d bytes (kept to resume)",
                    describe(self.file),
                    self._contiguous(),
                    self.size,
                )
            self._cond.notify_all()
            self._close_if_unused()

    @property
    def readers(self) -> int:
        with self._cond:
            return self._readers

    def progress(self) -> Progress:
        with self._cond:
            written = sum(chunk.written for chunk in self._chunks)
            done = self._hashed if self.checking else written
            readers, connections = self._readers, self._connections
        rate = self._arriving.rate()
        return Progress(self.file, done, rate, readers, connections, self.checking)

    @property
    def idle(self) -> bool:
        """Nobody reads it and nothing runs: it may be stopped for good."""
        with self._cond:
            return self._readers == 0 and self._connections == 0 and not self._hashing

    @property
    def failed(self) -> bool:
        """It ended without a verified file (failed, or stopped)."""
        with self._cond:
            return self._error is not None

    @property
    def error(self) -> BaseException | None:
        """Why it failed (None while it runs, or once verified)."""
        with self._cond:
            return self._error

    def stop(self, error: BaseException) -> bool:
        """End an unfinished download for good, its bytes left on disk: waiting reads
        and later ones raise `error`, its workers stop at their next look. False if
        it had ended already."""
        with self._cond:
            if self._ended():
                return False
            self._error = error
            self._stopped = True
            self._cond.notify_all()
            self._close_if_unused()
            return True

    def shut_down(self) -> bool:
        """The mount ends: `stop` with ShuttingDownError."""
        return self.stop(ShuttingDownError(f"{describe(self.file)}: the mount is ending"))

    def wait_stopped(self, deadline: float) -> bool:
        """Wait until no worker runs for it any more, at most until `deadline` (monotonic)."""
        with self._cond:
            return self._cond.wait_for(
                lambda: self._connections == 0 and not self._hashing,
                max(0.0, deadline - time.monotonic()),
            )

    def present(self) -> list[tuple[int, int]]:
        """The byte ranges on disk, adjacent ones joined (of a stopped download: they
        no longer change). A resume may cut the file into other chunks."""
        ranges: list[tuple[int, int]] = []
        with self._cond:
            for chunk in self._chunks:
                if not chunk.written:
                    continue
                end = chunk.start + chunk.written
                if ranges and ranges[-1][1] == chunk.start:
                    ranges[-1] = (ranges[-1][0], end)
                else:
                    ranges.append((chunk.start, end))
        return ranges

    def take_file(self) -> tuple[int, Path] | None:
        """The descriptor and path of a stopped download's bytes, now the caller's
        (to keep them as a partial download), or None (checking, or not stopped).
        The caller closes the descriptor, unless readers are still attached (they
        may be inside a pread: then it stays open until the process ends)."""
        with self._cond:
            if not self._stopped or self.checking or self._closed:
                return None
            self._closed = True  # closed by the caller from now on
            return self._fd, self.path

    def readinto(
        self, buf: memoryview, offset: int, abandoned: Callable[[], bool] = lambda: False
    ) -> int:
        """Fill `buf` from `offset` once those bytes may be served (module docstring).

        While it waits it asks `abandoned` a few times a second: a read whose
        reader got a signal (Ctrl-C) or ended stops waiting with
        TransferCancelled.
        """
        end = min(offset + len(buf), self.size)
        next_look = time.monotonic() + POLL
        with self._cond:
            while True:
                if self._error is not None:
                    raise self._error
                if self._verified:
                    break
                if not self._strict and end < self.size and self._on_disk(offset, end):
                    break
                if self._readers == 0:
                    # Every open file was released while this read waited (its
                    # process was killed): the transfer has stopped.
                    raise TransferCancelled(describe(self.file))
                if time.monotonic() >= next_look:
                    # Not at every wake-up (each arriving piece is one): asking
                    # costs a look into /proc.
                    if abandoned():
                        raise TransferCancelled(describe(self.file))
                    next_look = time.monotonic() + POLL
                self._cond.wait(POLL)
        if end <= offset:
            return 0
        return os.preadv(self._fd, [buf[: end - offset]], offset)

    # -- the connections --------------------------------------------------------

    def _open_connection(self) -> None:
        # Lock held: the count is raised before the task runs, so that nobody
        # starts a second set in between.
        self._connections += 1
        if not self._workers.connections.submit(self._connect):
            self._connections -= 1  # the mount is ending

    def _connect(self) -> None:
        """One turn of a connection: fetch the next chunk in file order, then queue
        again behind the other downloads' turns (or end: none left, or stopped).

        Every connection's requests are for readers waiting on them (a download
        nobody reads pauses), so none waits on the mount's rate limit for
        background work. None carries the opening operation's deadline (a
        worker does not run in its context): the download outlives that
        operation.
        """
        chunk = self._take()
        if chunk is None:
            return
        sink = _ChunkSink(self, chunk)
        start = chunk.start + chunk.written
        try:
            self._client.download_range(self.file, start, chunk.end, sink)
        except TransferCancelled:
            pass
        except Exception as exc:
            self._fail(exc)
        with self._cond:
            sink.chunk.taken = False
            self._cond.notify_all()
            if not self._workers.connections.submit(self._connect):
                self._connections -= 1  # the mount is ending
                self._cond.notify_all()
                self._close_if_unused()

    def _take(self) -> _Chunk | None:
        """The next chunk for a connection, or None, and then the connection is over.

        The count drops in the same critical section as the decision, so
        attach never counts on a connection that is about to leave.
        """
        with self._cond:
            if self._readers > 0 and not self._ended():
                for chunk in self._chunks:
                    if not chunk.taken and not chunk.done:
                        chunk.taken = True
                        return chunk
            self._connections -= 1
            self._cond.notify_all()
            self._close_if_unused()
            return None

    def _untaken(self) -> int:
        return sum(1 for chunk in self._chunks if not chunk.taken and not chunk.done)

    def _begin(self, sink: _ChunkSink, start: int, end: int) -> None:
        with self._cond:
            chunk = sink.chunk
            if end > chunk.end:
                # The server ignored Range and sends the whole file: one stream
                # from here on; the other connections stop at their next read.
                if self._ranged is not False or len(self._chunks) > 1:
                    logger.info("%s: the server ignores Range; one stream", describe(self.file))
                self._ranged = False
                chunk = _Chunk(0, self.size, written=self._contiguous(), taken=True)
                self._chunks = [chunk]
                sink.chunk = chunk
            elif self._ranged is None:
                self._ranged = True
                if self._streams > 1 and self._untaken():
                    self._probe_started, self._probe_from = time.monotonic(), start
            self._cond.notify_all()

    def _write(self, sink: _ChunkSink, offset: int, data: bytes) -> None:
        # Bytes on disk are never written again: they may be hashed already,
        # and a whole-file answer after a restart sends them once more.
        present = sink.chunk.start + sink.chunk.written  # only this connection moves it
        end = offset + len(data)
        if end <= present:
            return
        view = memoryview(data)[max(0, present - offset) :]
        offset = max(offset, present)
        done = 0
        while done < len(view):
            done += os.pwrite(self._fd, view[done:], offset + done)
        with self._cond:
            if self._stopped:
                # Its ranges were taken for a partial download: what came after
                # is not counted as present (it will be fetched again).
                raise TransferCancelled(describe(self.file))
            sink.chunk.written = end - sink.chunk.start
            self._arriving.add(len(view))
            received = end - self._probe_from
            if self._probe_started is not None and received >= PROBE_BYTES:
                self._decide_connections(received)
            self._schedule_hash()
            self._cond.notify_all()

    def _decide_connections(self, received: int) -> None:
        """After the probe: open the other connections if one is slow (lock held)."""
        assert self._probe_started is not None
        rate = received / max(time.monotonic() - self._probe_started, 1e-6)
        self._probe_started = None
        if rate >= FAST_CONNECTION:
            logger.debug(
                "%s: one connection gives %.0f MB/s; it stays alone",
                describe(self.file),
                rate / 1e6,
            )
            return
        self._connections_wanted = self._streams
        extra = min(self._streams - 1, self._untaken())
        logger.debug(
            "%s: one connection gives %.0f MB/s; opening %d more",
            describe(self.file),
            rate / 1e6,
            extra,
        )
        for _ in range(extra):
            self._open_connection()

    def _cancelled(self, sink: _ChunkSink) -> bool:
        with self._cond:
            stale = sink.chunk not in self._chunks  # replaced by one whole-file stream
            return stale or self._readers == 0 or self._ended()

    def _fail(self, error: BaseException) -> None:
        with self._cond:
            if self._ended():
                return
            self._failing = True
        # The bytes go before any reader hears of it: a reader that opens the
        # file again at once must find them gone, and download it again.
        self._drop_bytes()
        with self._cond:
            self._error = error
            self._cond.notify_all()
        self._on_end(self)

    def _drop_bytes(self) -> None:
        """Delete the bytes of a failed download (the blob, when checking it)."""
        try:
            # When checking, only the blob this check read: another mount may
            # have put a good one in its place since.
            if self.checking and os.stat(self.path).st_ino != os.fstat(self._fd).st_ino:
                return
            self.path.unlink()
            self.dropped = True
        except FileNotFoundError:
            pass  # evicted, or deleted by another mount's check

    # -- the hash ---------------------------------------------------------------

    def _schedule_hash(self) -> None:
        # Lock held. One hash task at a time per download.
        if not self._hashing and not self._ended() and self._hash_wanted():
            self._hashing = True
            if not self._workers.hashing.submit(self._hash_turn):
                self._hashing = False  # the mount is ending

    def _hash_turn(self) -> None:
        """Hash up to HASH_TURN blocks of the prefix; at the end, verify and publish
        the blob. Queues again while more is there, else ends (the next arriving
        bytes, or an attach, schedule it again)."""
        try:
            for _ in range(HASH_TURN):
                with self._cond:
                    available = self._contiguous()
                    if self._ended() or not self._hash_wanted():
                        self._hashing = False
                        self._cond.notify_all()
                        self._close_if_unused()
                        return
                    if self._hashed == self.size:
                        break
                size = min(HASH_BLOCK, available - self._hashed)
                block = os.pread(self._fd, size, self._hashed)
                if not block:
                    raise OSError(f"{self.path} ends before byte {self._hashed}")
                self._hash.update(block)
                with self._cond:
                    self._hashed += len(block)
                if self.checking:
                    self._arriving.add(len(block))
            else:
                if self._workers.hashing.submit(self._hash_turn):
                    return
                with self._cond:
                    self._hashing = False  # the mount is ending
                    self._cond.notify_all()
                    self._close_if_unused()
                return
            self._verify()
        except Exception as exc:
            self._fail(exc)
        with self._cond:
            self._hashing = False
            self._cond.notify_all()
            self._close_if_unused()

    def _verify(self) -> None:
        digest = self._hash.digest()
        if digest != self._expected:
            logger.warning(
                "%s: hash mismatch (expected sha2_256 %s, got %s, %d bytes%s); discarded",
                describe(self.file),
                self._expected.hex(),
                digest.hex(),
                self.size,
                ", cached" if self.checking else "",
            )
            what = "cached" if self.checking else "downloaded"
            self._fail(IntegrityError(f"{describe(self.file)}: {what} bytes do not match"))
            return
        self.inode = os.fstat(self._fd).st_ino
        with self._cond:
            self._verified = True
            self._cond.notify_all()
        seconds = time.monotonic() - self._started
        if self.checking:
            logger.info("%s: cached bytes checked in %.2f s", describe(self.file), seconds)
            self._on_end(self)
            return
        # Readers go on from the open descriptor; the blob is valid once its
        # bytes are on disk and it has its name.
        try:
            os.fsync(self._fd)
            durable_rename(self.path, self._blob_path)
            self.kept = True
        except OSError as exc:
            logger.warning("%s: verified but not kept in the cache: %s", describe(self.file), exc)
            self.path.unlink(missing_ok=True)
        logger.info(
            "%s: downloaded and verified %d bytes in %.2f s (%s)",
            describe(self.file),
            self.size,
            seconds,
            "ranged" if self._ranged else "one stream",
        )
        self._on_end(self)

    # -- bookkeeping (lock held) --------------------------------------------------

    def _hash_wanted(self) -> bool:
        # A download hashes what arrived even after its readers left (a file
        # that came whole is then published); a check of a blob stops with
        # its readers (`head` of a big cached file hashes no more than it must).
        if self.checking and self._readers == 0:
            return False
        return self._contiguous() > self._hashed or self._hashed == self.size

    def _ended(self) -> bool:
        return self._verified or self._failing or self._error is not None

    def _contiguous(self) -> int:
        # Asked at every arriving piece: chunks before _complete are done for
        # good, unless the list was replaced (by one whole-file chunk).
        chunks = self._chunks
        if chunks is not self._complete_in:
            self._complete_in, self._complete = chunks, 0
        while self._complete < len(chunks) and chunks[self._complete].done:
            self._complete += 1
        if self._complete == len(chunks):
            return self.size
        chunk = chunks[self._complete]
        return chunk.start + chunk.written

    def _on_disk(self, offset: int, end: int) -> bool:
        # Chunks are CHUNK_SIZE apart (or one whole chunk): start at offset's.
        first = offset // CHUNK_SIZE if len(self._chunks) > 1 else 0
        for chunk in self._chunks[first:]:
            if chunk.start >= end:
                return True
            if chunk.start + chunk.written < min(end, chunk.end):
                return False
        return True

    def _close_if_unused(self) -> None:
        # The descriptor serves readers until the last one leaves; an unfinished
        # download keeps it to resume (stopped for good: take_file hands it over).
        unused = self._readers == 0 and self._connections == 0 and not self._hashing
        handed_over = self._stopped and not self.checking
        if unused and self._ended() and not handed_over and not self._closed:
            self._closed = True
            os.close(self._fd)
