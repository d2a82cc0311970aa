"""The verified job-file cache: content-addressed by sha2_256, shared across mounts.

Owns <cache_dir>/blobs (one file per verified digest) and the downloads in
progress or paused (jhfs.state.download), at most one per digest, whose
bytes are in <cache_dir>/tmp. A blob only ever appears by a rename after its
bytes hashed to the expected digest and were fsynced, so a blob that exists
is correct.
"""

from __future__ import annotations

import logging
import os
import threading
from pathlib import Path

from jhfs.client import JobFile, JuliaHubClient
from jhfs.state.cachedir import clean_stale_temp, private_dir
from jhfs.state.download import Download, describe
from jhfs.state.errors import FileNotReadyError, IntegrityError

logger = logging.getLogger(__name__)

SUPPORTED_ALGORITHM = "sha2_256"
DEFAULT_STREAMS = 4  # connections per download (-o download_streams=N)
MAX_STREAMS = 16
# Downloads nobody reads any more keep their bytes to resume; beyond this
# many, the oldest are deleted.
MAX_PAUSED = 4
MAX_UNVERIFIED = 1024
DEFAULT_MAX_SIZE = 10 << 30  # --cache-max-size


class FileCache:
    """Blobs at <cache_dir>/blobs/<hex>, and the downloads that make them.

    `open_blob(file)` opens a verified blob; `download(file)` returns the one
    Download of that file, attached for the caller (who must detach it), or
    None when the blob has just been verified. A file without a hash yet
    raises FileNotReadyError. `strict` (verify=full) serves no byte of a
    download before its hash matched.
    """

    def __init__(
        self,
        client: JuliaHubClient,
        cache_dir: Path,
        *,
        streams: int = DEFAULT_STREAMS,
        strict: bool = False,
        max_size: int = DEFAULT_MAX_SIZE,
    ) -> None:
        self._client = client
        self._max_size = max_size
        self._blobs = private_dir(private_dir(cache_dir) / "blobs")
        self._tmp = private_dir(cache_dir / "tmp")
        clean_stale_temp(self._tmp)
        self._streams = streams
        self._strict = strict
        self._lock = threading.Lock()
        self._downloads: dict[str, Download] = {}  # by digest, oldest first
        # Digests of downloads that ended unverified (failed or dropped) since
        # an open last asked: the kernel may hold pages of their bytes.
        self._unverified: dict[str, None] = {}

    def _blob_path(self, file: JobFile) -> Path:
        if not file.is_uploaded or file.hash.digest is None:
            raise FileNotReadyError(f"{describe(file)} is still being uploaded")
        if file.hash.algorithm != SUPPORTED_ALGORITHM:
            logger.warning(
                "%s: cannot verify hash algorithm %r", describe(file), file.hash.algorithm
            )
            raise IntegrityError(f"{describe(file)}: unsupported hash {file.hash.algorithm!r}")
        return self._blobs / file.hash.digest.hex()

    def open_blob(self, file: JobFile) -> int | None:
        """A read-only descriptor of the verified blob, or None when it is not cached."""
        try:
            return os.open(self._blob_path(file), os.O_RDONLY)
        except FileNotFoundError:
            return None

    def download(self, file: JobFile) -> Download | None:
        """The file's download, attached for the caller; None if the blob exists now."""
        path = self._blob_path(file)
        key = path.name
        with self._lock:
            download = self._downloads.get(key)
            if download is None or download.failed:
                if path.exists():  # verified by a download that ended just now
                    return None
                self._discard_paused()
                assert file.hash.digest is not None  # checked by _blob_path
                download = Download(
                    self._client,
                    file,
                    file.hash.digest,
                    self._tmp,
                    path,
                    streams=self._streams,
                    strict=self._strict,
                    on_end=self._ended,
                )
                self._downloads[key] = download
                logger.debug("%s: downloading %d bytes", describe(file), file.size)
            download.attach()
            return download

    def close(self) -> None:
        """The mount ends: delete the bytes of downloads nobody reads."""
        with self._lock:
            for download in self._downloads.values():
                download.discard()
            self._downloads.clear()

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
        with self._lock:
            key = self._blob_path(download.file).name
            if download.failed:
                self._remember_unverified(key)
            if self._downloads.get(key) is download:
                del self._downloads[key]

    def _remember_unverified(self, key: str) -> None:
        # Lock held. Bounded: the oldest are forgotten (the kernel has long
        # dropped pages nobody read since).
        self._unverified[key] = None
        while len(self._unverified) > MAX_UNVERIFIED:
            del self._unverified[next(iter(self._unverified))]

    def _discard_paused(self) -> None:
        # Lock held. Idle downloads are paused ones (an ended one has left the table).
        paused = [key for key, download in self._downloads.items() if download.idle]
        for key in paused[: max(0, len(paused) - MAX_PAUSED + 1)]:
            logger.info("%s: dropping the paused download's bytes", key)
            self._downloads.pop(key).discard()
            self._remember_unverified(key)
