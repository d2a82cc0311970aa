"""The verified job-file cache: content-addressed by sha2_256, shared across mounts.

Owns <cache_dir>/blobs (one file per verified digest) and the downloads in
progress in <cache_dir>/tmp. A blob only ever appears by an atomic rename after
its bytes hashed to the expected digest, so a blob that exists is correct.
"""

from __future__ import annotations

import hashlib
import io
import logging
import os
import queue
import threading
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO, cast

from jhfs.client import JobFile, JuliaHubClient
from jhfs.state.cachedir import clean_stale_temp, private_dir, temp_file
from jhfs.state.errors import FileNotReadyError, IntegrityError
from jhfs.state.flight import SingleFlight

if TYPE_CHECKING:
    from _typeshed import ReadableBuffer

logger = logging.getLogger(__name__)

SUPPORTED_ALGORITHM = "sha2_256"
_REHASH_CHUNK = 1 << 20
_RESET = b""  # queued to start the hash over (update() never queues an empty chunk)


class _BackgroundSha256:
    """sha256 fed in order on its own thread.

    hashlib releases the GIL on large updates, so hashing here overlaps with
    receiving and writing the next chunk: a cold copy then costs about the
    download alone instead of download + hash.
    """

    def __init__(self) -> None:
        self._queue: queue.Queue[bytes | None] = queue.Queue(maxsize=16)
        self._hash = hashlib.sha256()
        self._finished = False
        self._thread = threading.Thread(target=self._run, name="jhfs-sha256", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while (chunk := self._queue.get()) is not None:
            if chunk == _RESET:
                self._hash = hashlib.sha256()
            else:
                self._hash.update(chunk)

    def update(self, chunk: bytes) -> None:
        if chunk:
            self._queue.put(chunk)

    def reset(self) -> None:
        self._queue.put(_RESET)

    def finish(self) -> bytes:
        """Wait for every queued chunk and return the digest (the thread ends)."""
        if not self._finished:
            self._finished = True
            self._queue.put(None)
            self._thread.join()
        return self._hash.digest()


class _HashingWriter(io.RawIOBase):
    """A seekable file object over an fd that hashes what is written in order.

    The client may restart a download (seek(0); truncate()) or resume it at
    tell(); any other pattern (rewriting hashed bytes, holes) is still handled
    correctly by hashing the finished file from disk.
    """

    def __init__(self, fd: int) -> None:
        super().__init__()
        self._fd = fd
        self._position = 0
        self._end = 0
        self._hashed = 0  # bytes [0, _hashed) went to the hasher, in order
        self._in_order = True
        self._hasher = _BackgroundSha256()

    def writable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def readable(self) -> bool:
        return False

    def tell(self) -> int:
        return self._position

    def seek(self, offset: int, whence: int = io.SEEK_SET, /) -> int:
        if whence == io.SEEK_SET:
            position = offset
        elif whence == io.SEEK_CUR:
            position = self._position + offset
        elif whence == io.SEEK_END:
            position = self._end + offset
        else:
            raise ValueError(f"invalid whence {whence}")
        if position < 0:
            raise ValueError("negative seek position")
        self._position = position
        return position

    def truncate(self, size: int | None = None, /) -> int:
        size = self._position if size is None else size
        os.ftruncate(self._fd, size)
        self._end = size
        if size == 0:
            self._hasher.reset()
            self._hashed = 0
            self._in_order = True
        elif size < self._hashed:
            self._in_order = False
        return size

    def write(self, data: ReadableBuffer, /) -> int:
        # Keep a reference to immutable bytes for the hasher; copy only buffers
        # the caller might reuse.
        chunk = data if isinstance(data, bytes) else bytes(data)
        view = memoryview(chunk)
        written = 0
        while written < len(view):
            written += os.pwrite(self._fd, view[written:], self._position + written)
        if self._in_order and self._position == self._hashed:
            self._hasher.update(chunk)
            self._hashed += len(chunk)
        else:
            self._in_order = False
        self._position += len(chunk)
        self._end = max(self._end, self._position)
        return len(chunk)

    def digest(self) -> bytes:
        """sha256 of bytes [0, end) as they are on disk now."""
        streamed = self._hasher.finish()
        if self._in_order and self._hashed == self._end:
            return streamed
        logger.debug("download was not written in order; hashing it from disk")
        full = hashlib.sha256()
        offset = 0
        while offset < self._end:
            chunk = os.pread(self._fd, min(_REHASH_CHUNK, self._end - offset), offset)
            if not chunk:
                break
            full.update(chunk)
            offset += len(chunk)
        return full.digest()

    def close(self) -> None:
        # The fd belongs to FileCache.fetch; stop the hasher thread if still running.
        if not self.closed:
            self._hasher.finish()
        super().close()


def _describe(file: JobFile) -> str:
    return f"{file.jobname}/files/{file.type}/{file.name}"


class FileCache:
    """Blobs at <cache_dir>/blobs/<hex>, written only after their hash matched.

    fetch(file) returns the path of the verified blob, downloading it first if
    needed: streamed to a temporary file in <cache_dir>/tmp while hashing,
    renamed into place on a match. Many concurrent callers for one uncached
    blob cause one download (the others wait for it). A mismatch or a failed
    download raises IntegrityError / the client's error, deletes the partial
    bytes, and the next fetch tries again. A file without a hash yet raises
    FileNotReadyError.
    """

    def __init__(self, client: JuliaHubClient, cache_dir: Path) -> None:
        self._client = client
        self._blobs = private_dir(private_dir(cache_dir) / "blobs")
        self._tmp = private_dir(cache_dir / "tmp")
        clean_stale_temp(self._tmp)
        self._flight: SingleFlight[str, Path] = SingleFlight()

    def _blob_path(self, file: JobFile) -> Path:
        if not file.is_uploaded or file.hash.digest is None:
            raise FileNotReadyError(f"{_describe(file)} is still being uploaded")
        if file.hash.algorithm != SUPPORTED_ALGORITHM:
            logger.warning(
                "%s: cannot verify hash algorithm %r", _describe(file), file.hash.algorithm
            )
            raise IntegrityError(f"{_describe(file)}: unsupported hash {file.hash.algorithm!r}")
        return self._blobs / file.hash.digest.hex()

    def cached(self, file: JobFile) -> Path | None:
        """The blob path if already verified and on disk (no request)."""
        try:
            path = self._blob_path(file)
        except (FileNotReadyError, IntegrityError):
            return None
        return path if path.exists() else None

    def fetch(self, file: JobFile) -> Path:
        """The verified blob's path, downloading it first when not cached."""
        path = self._blob_path(file)
        if path.exists():
            return path
        return self._flight.do(path.name, lambda: self._download(file, path))

    def _download(self, file: JobFile, path: Path) -> Path:
        if path.exists():  # finished by a flight that ended just before this one began
            return path
        expected = file.hash.digest
        logger.debug("%s: downloading %d bytes", _describe(file), file.size)
        fd, tmp_path = temp_file(self._tmp, ".part")
        try:
            writer = _HashingWriter(fd)
            try:
                size = self._client.download_file(file, cast(BinaryIO, writer))
                actual = writer.digest()
            finally:
                writer.close()
            if actual != expected:
                logger.warning(
                    "%s: hash mismatch (expected sha2_256 %s, got %s, %d bytes); discarded",
                    _describe(file),
                    expected.hex() if expected else None,
                    actual.hex(),
                    size,
                )
                raise IntegrityError(f"{_describe(file)}: downloaded bytes do not match its hash")
            os.replace(tmp_path, path)
            shared = self._flight.waiting(path.name)
        except BaseException:
            tmp_path.unlink(missing_ok=True)
            raise
        finally:
            os.close(fd)
        logger.info(
            "%s: downloaded and verified %d bytes (%d more readers waited for it)",
            _describe(file),
            size,
            shared,
        )
        return path
