"""The verified job-file cache: content-addressed by sha2_256, shared across mounts.

Owns <cache_dir>/blobs (one file per verified digest), <cache_dir>/partial
(downloads kept to resume, jhfs.state.partial), the downloads in progress or
paused (jhfs.state.download), at most one per digest, whose bytes are in
<cache_dir>/tmp, the mount's worker pools they run on, and the size bounds
of the whole cache directory (jhfs.state.cachesize, with the finished logs
of jhfs.state.logs).

A blob only ever appears by a rename after its bytes hashed to the expected
digest and were fsynced, but the disk under it may fail since (a crash, a bad
sector): so a mount trusts a blob only once it checked it itself, on its first
open (`download` returns a Download that reads the blob instead of the
server). Its size is checked at once (a wrong one: deleted, downloaded
again), its hash as it is read, under the download's read rule. A mismatch
deletes it. Checked digests are remembered (bounded), with the inode they
were checked in: a blob replaced since is checked again.

Blobs and partial downloads in use by this mount are never evicted; another
mount sharing the directory may delete them, which costs an open descriptor
nothing (it reads the unlinked inode) and an open a new download. A file
larger than the whole limit is still downloaded and served; it is the first
to go once its last reader closes it.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path

from jhfs.client import JobFile, JuliaHubClient, ListedButMissingError, TransferCancelled
from jhfs.state import partial
from jhfs.state.cachedir import clean_stale_temp, private_dir, temp_file
from jhfs.state.cachesize import COUNTED, CacheSpace
from jhfs.state.download import Download, Progress, Workers, describe
from jhfs.state.errors import FileNotReadyError, IntegrityError, ShuttingDownError
from jhfs.state.pools import CONNECTION_WORKERS, HASH_WORKERS, WorkerPool

logger = logging.getLogger(__name__)

SUPPORTED_ALGORITHM = "sha2_256"
DEFAULT_STREAMS = 4  # connections per download (-o download_streams=N)
MAX_STREAMS = 16
# Downloads nobody reads any more wait paused, to resume; beyond this many,
# the oldest are stopped and kept as partial downloads on disk.
MAX_PAUSED = 4
MAX_UNVERIFIED = 1024
MAX_CHECKED = 65536  # digests remembered as checked by this mount
DEFAULT_MAX_SIZE = 10 << 30  # --cache-max-size
STOP_TIMEOUT = 1.0  # seconds the unmount waits for download workers to stop


def _key(file: JobFile) -> str:
    """The blob name of a file whose hash is known (a Download's)."""
    assert file.hash.digest is not None
    return file.hash.digest.hex()


def _touch(fd: int) -> None:
    """Record a use of the file for eviction: its mtime (atime is often not kept)."""
    try:
        os.utime(fd)
    except OSError as exc:  # a read-only cache: recency is only a hint
        logger.debug("cannot record the use of a cached file: %s", exc)


class Blob:
    """A verified blob open for a reader; `close` when done."""

    def __init__(self, cache: FileCache, key: str, fd: int) -> None:
        self._cache = cache
        self._key = key
        self.fd = fd

    def close(self) -> None:
        os.close(self.fd)
        self._cache._closed_one(self._key)


class FileCache:
    """Blobs at <cache_dir>/blobs/<hex>, and the downloads that make and check them.

    `open_blob(file)` opens a blob this mount has checked; `download(file)`
    returns the one Download of that file (a fetch, or the check of its blob),
    attached for the caller (who must `release` it), or None when the blob has
    just been verified. A file without a hash yet raises FileNotReadyError.
    `strict` (verify=full) serves no byte before the hash matched.
    `log_in_use(path)` tells whether a finished log may not be evicted (its
    owner, jhfs.state.logs, uses it); `log_stored` counts one that came in.
    `on_missing(jobname)` hears of a download the server answered with a 404
    although it listed the file.
    """

    def __init__(
        self,
        client: JuliaHubClient,
        cache_dir: Path,
        *,
        streams: int = DEFAULT_STREAMS,
        strict: bool = False,
        max_size: int = DEFAULT_MAX_SIZE,
        log_in_use: Callable[[Path], bool],
        on_missing: Callable[[str], None],
    ) -> None:
        self._client = client
        self._blobs = private_dir(private_dir(cache_dir) / "blobs")
        self._partial = private_dir(cache_dir / "partial")
        self._tmp = private_dir(cache_dir / "tmp")
        clean_stale_temp(self._tmp)
        self._streams = streams
        self._strict = strict
        self._log_in_use = log_in_use
        self._on_missing = on_missing
        self._workers = Workers(
            connections=WorkerPool("jhfs-download", CONNECTION_WORKERS),
            hashing=WorkerPool("jhfs-sha256", HASH_WORKERS),
        )
        self._lock = threading.Lock()
        self._closed = False
        self._downloads: dict[str, Download] = {}  # by digest, oldest first
        # Open files of this mount by digest (Blobs and attached Downloads): what
        # eviction must leave alone.
        self._open: dict[str, int] = {}
        self._checked: dict[str, int] = {}  # digest -> inode, oldest first
        # Digests of downloads that ended unverified (failed or dropped) since
        # an open last asked: the kernel may hold pages of their bytes.
        self._unverified: dict[str, None] = {}
        self._space = CacheSpace([cache_dir / name for name in COUNTED], max_size, self._evict)

    def _blob_path(self, file: JobFile) -> Path:
        if not file.is_uploaded or file.hash.digest is None:
            raise FileNotReadyError(f"{describe(file)} is still being uploaded")
        if file.hash.algorithm != SUPPORTED_ALGORITHM:
            logger.warning(
                "%s: cannot verify hash algorithm %r", describe(file), file.hash.algorithm
            )
            raise IntegrityError(f"{describe(file)}: unsupported hash {file.hash.algorithm!r}")
        return self._blobs / file.hash.digest.hex()

    # -- opening --------------------------------------------------------------------

    def open_blob(self, file: JobFile) -> Blob | None:
        """The blob, open, if this mount has checked it; None otherwise (then `download`)."""
        path = self._blob_path(file)
        key = path.name
        with self._lock:
            inode = self._checked.get(key)
            if inode is None:
                return None
            try:
                fd = os.open(path, os.O_RDONLY)
            except FileNotFoundError:  # evicted, here or by another mount
                del self._checked[key]
                return None
            if os.fstat(fd).st_ino != inode:  # replaced since: check it again
                os.close(fd)
                del self._checked[key]
                return None
            _touch(fd)
            self._opened(key)
        return Blob(self, key, fd)

    def download(self, file: JobFile) -> Download | None:
        """The file's download (or the check of its blob), attached for the caller;
        None if the blob was checked just now (open_blob opens it)."""
        path = self._blob_path(file)
        key = path.name
        with self._lock:
            download = self._live(key)
            if download is not None:
                return download
        if not path.exists():
            self._space.make_room(file.size)  # outside the lock: eviction takes it
        with self._lock:
            download = self._live(key)
            if download is not None:
                return download
            if key in self._checked:
                return None  # checked by a download that ended just now
            to_stop = self._pick_paused()
            download = self._start(file, path)
            self._downloads[key] = download
            download.attach()
            self._opened(key)
        for paused in to_stop:
            self._keep_partial(paused)
        return download

    def release(self, download: Download) -> None:
        """A reader of `download` closed the file."""
        download.detach()
        self._closed_one(_key(download.file))

    def _live(self, key: str) -> Download | None:
        # Lock held.
        if self._closed:
            raise ShuttingDownError(f"{key}: the mount is ending")
        download = self._downloads.get(key)
        if download is None or download.failed:
            return None
        download.attach()
        self._opened(key)
        return download

    def _start(self, file: JobFile, path: Path) -> Download:
        """A new Download of `file`: the check of its blob, a resumed partial
        download, or a fresh one (lock held; local file operations only)."""
        key = path.name
        fd, present, checking = self._open_to_check(file, path), [(0, file.size)], True
        if fd is None:
            checking = False
            claimed = partial.claim(self._partial, self._tmp, key, file.size)
            if claimed is not None:
                fd, path_in_tmp, present = claimed.fd, claimed.path, claimed.ranges
                on_disk = sum(end - start for start, end in present)
                logger.info("%s: resuming a partial download (%d bytes)", describe(file), on_disk)
                self._space.added(-file.size)
            else:
                fd, path_in_tmp = temp_file(self._tmp, ".part")
                os.ftruncate(fd, file.size)  # sparse: chunks land at their own offsets
                present = []
                logger.debug("%s: downloading %d bytes", describe(file), file.size)
            self._space.reserve(file.size)
        assert file.hash.digest is not None  # checked by _blob_path
        return Download(
            self._client,
            file,
            file.hash.digest,
            path,
            fd=fd,
            path=path if checking else path_in_tmp,
            present=present,
            checking=checking,
            workers=self._workers,
            streams=self._streams,
            strict=self._strict,
            on_end=self._ended,
        )

    def _open_to_check(self, file: JobFile, path: Path) -> int | None:
        """The blob open for its check, or None when there is none of the right size."""
        try:
            fd = os.open(path, os.O_RDONLY)
        except FileNotFoundError:
            return None
        size = os.fstat(fd).st_size
        if size == file.size:
            _touch(fd)
            return fd
        logger.warning(
            "%s: the cached blob has %d bytes instead of %d; deleted, downloading it again",
            describe(file),
            size,
            file.size,
        )
        try:
            if os.stat(path).st_ino == os.fstat(fd).st_ino:
                path.unlink()
                self._space.added(-size)
        except FileNotFoundError:
            pass
        os.close(fd)
        self._remember_unverified(path.name)
        return None

    # -- ending -----------------------------------------------------------------------

    def close(self) -> None:
        """The mount ends: reads waiting for a download fail at once (ShuttingDownError),
        the workers stop (within STOP_TIMEOUT), and unfinished downloads are kept
        as partial downloads for a later mount. A download verified just now gets
        until then to be fsynced and renamed into the cache (the process ends
        after this, and its workers with it)."""
        with self._lock:
            self._closed = True
            downloads = list(self._downloads.values())
            self._downloads.clear()
        stopped = [download.shut_down() for download in downloads]
        self._workers.connections.shutdown()
        self._workers.hashing.shutdown()
        deadline = time.monotonic() + STOP_TIMEOUT
        for download, was_stopped in zip(downloads, stopped, strict=True):
            if not download.wait_stopped(deadline):
                # A worker still writes to it: its pid-named bytes go at the next start.
                logger.warning("%s: did not stop in time; not kept", describe(download.file))
            elif was_stopped:
                self._keep_partial(download)

    def forget_failure(self, file: JobFile) -> bool:
        """Whether a download of `file` ended unverified (failed, or dropped while
        paused) since this was last asked: the kernel may then hold pages of its
        bytes, and the caller makes it drop them."""
        if file.hash.digest is None:
            return False
        key = file.hash.digest.hex()
        with self._lock:
            if key not in self._unverified:
                return False
            del self._unverified[key]
            return True

    def _ended(self, download: Download) -> None:
        # On a worker thread, once: verified, or failed.
        key = _key(download.file)
        with self._lock:
            if download.failed:
                self._remember_unverified(key)
            else:
                self._checked[key] = download.inode
                while len(self._checked) > MAX_CHECKED:
                    del self._checked[next(iter(self._checked))]
            if self._downloads.get(key) is download:
                del self._downloads[key]
        if not download.checking:
            self._space.unreserve(download.size)
            if download.kept:
                self._space.added(download.size)
        elif download.dropped:
            self._space.added(-download.size)
        self._trim()  # its last reader may have closed it before it ended
        if isinstance(download.error, ListedButMissingError):
            self._on_missing(download.file.jobname)

    def _remember_unverified(self, key: str) -> None:
        # Lock held. Bounded: the oldest are forgotten (the kernel has long
        # dropped pages nobody read since).
        self._unverified[key] = None
        while len(self._unverified) > MAX_UNVERIFIED:
            del self._unverified[next(iter(self._unverified))]

    def _pick_paused(self) -> list[Download]:
        """Lock held: take the oldest paused downloads beyond MAX_PAUSED - 1 out of the
        table, stopped (their bytes are kept by _keep_partial, outside the lock)."""
        # Idle downloads are paused ones (an ended one has left the table).
        paused = [key for key, download in self._downloads.items() if download.idle]
        stopped = []
        for key in paused[: max(0, len(paused) - MAX_PAUSED + 1)]:
            download = self._downloads.pop(key)
            if download.stop(TransferCancelled(f"{key}: stopped while paused")):
                self._remember_unverified(key)
                stopped.append(download)
        return stopped

    def _keep_partial(self, download: Download) -> None:
        """Keep a stopped download's bytes under partial/ for a later resume."""
        taken = download.take_file()
        if taken is None:
            return
        fd, path = taken
        key = _key(download.file)
        self._space.unreserve(download.size)
        try:
            present = download.present()
            if present:
                kept = partial.park(fd, path, self._partial, key, download.size, present)
                self._space.added(kept)
                logger.info(
                    "%s: kept %d bytes of the download to resume",
                    describe(download.file),
                    sum(end - start for start, end in present),
                )
            else:
                path.unlink(missing_ok=True)
        except OSError as exc:
            logger.warning("%s: partial download not kept: %s", describe(download.file), exc)
            path.unlink(missing_ok=True)
        finally:
            if download.readers == 0:
                os.close(fd)

    # -- what `jhfs status` shows ----------------------------------------------------

    def progress(self) -> list[Progress]:
        """The downloads and checks under way or paused, oldest first."""
        with self._lock:
            downloads = list(self._downloads.values())
        return [download.progress() for download in downloads]

    def use(self) -> tuple[int, int]:
        """The cache's bytes (kept files, and room held for the downloads under way) and
        its limit (--cache-max-size), as this mount counts them."""
        return self._space.used, self._space.max_size

    # -- size -------------------------------------------------------------------------

    def _opened(self, key: str) -> None:
        # Lock held.
        self._open[key] = self._open.get(key, 0) + 1

    def _closed_one(self, key: str) -> None:
        with self._lock:
            count = self._open.pop(key) - 1
            if count:
                self._open[key] = count
        self._trim()

    def log_stored(self, size: int) -> None:
        """A finished log of `size` bytes came into the logs directory: what is least
        recently used goes if the cache is now over its size."""
        self._space.added(size)
        self._trim()

    def _trim(self) -> None:
        # A file larger than the limit goes as soon as nobody reads it.
        if self._space.over():
            self._space.make_room(0)

    def _evict(self, path: Path) -> bool:
        """Delete one file of the cache for room, unless this mount uses it."""
        directory = path.parent
        try:
            if directory == self._blobs:
                key = path.name
                with self._lock:  # no open of it in between
                    if key in self._open or key in self._downloads:
                        return False
                    path.unlink()
                    self._checked.pop(key, None)
            elif directory == self._partial:
                path.unlink()  # one unlink: a mount claiming it renamed it first
            else:
                if self._log_in_use(path):
                    return False
                path.unlink()
        except FileNotFoundError:
            return False
        logger.debug("cache: evicted %s", path)
        return True
