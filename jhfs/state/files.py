"""The verified job-file cache: content-addressed by sha2_256, shared across mounts.

STUB: signatures settled, implementation in progress.
"""

from __future__ import annotations

from pathlib import Path

from jhfs.client import JobFile, JuliaHubClient


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

    def __init__(self, client: JuliaHubClient, cache_dir: Path) -> None: ...

    def cached(self, file: JobFile) -> Path | None:
        """The blob path if already verified and on disk (no request)."""
        ...

    def fetch(self, file: JobFile) -> Path: ...
