"""Job objects kept on disk, for when the server cannot be reached.

Owns <cache_dir>/listing.jsonl, the latest listing a mount of this server
saw (the server's job objects, newest first, one JSON text a line), and
<cache_dir>/jobs/<sha256 of the job name>.json, the objects of final jobs
seen outside it: looked up by name, or pushed out of the listing. Only
final jobs are ever served from here as they are (they never change); the
listing is shown as what it was. Each file is written whole into tmp/,
fsynced and renamed into place (cachedir.durable_rename), so a crash leaves
the old file or the new one; a line or file that does not parse is left out.

Bounded: the listing keeps its newest MAX_LISTING_BYTES, a job object over
MAX_JOB_BYTES is not kept, and jobs/ keeps MAX_JOBS_BYTES, the least
recently used going first (mtime, touched at every load). The objects are
the server's own: no token is ever written here. Failing to write (a full
or read-only disk) costs the offline copy only, with one warning.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from jhfs.client import Job, ServerError
from jhfs.client.models import parse_job
from jhfs.client.once import warn_once
from jhfs.state.cachedir import durable_rename, private_dir, temp_file

logger = logging.getLogger(__name__)

MAX_LISTING_BYTES = 64 << 20  # some 20,000 jobs of a few files each
MAX_JOB_BYTES = 1 << 20
MAX_JOBS_BYTES = 32 << 20
LISTING_NAME = "listing.jsonl"


def saved_listing(cache_dir: Path) -> Path | None:
    """The saved listing of the server whose cache directory this is, if a mount saved one."""
    path = cache_dir / LISTING_NAME
    return path if path.is_file() else None


class SavedJobs:
    """The listing and final jobs of one server, on disk and (the listing) in memory.

    Thread-safe: `_lock` guards what is held in memory, `_write_lock` the
    files (one writer at a time); neither is held by callers across HTTP.
    """

    def __init__(
        self,
        cache_dir: Path,
        *,
        max_listing_bytes: int = MAX_LISTING_BYTES,
        max_job_bytes: int = MAX_JOB_BYTES,
        max_jobs_bytes: int = MAX_JOBS_BYTES,
    ) -> None:
        self._listing_path = cache_dir / LISTING_NAME
        self._jobs_dir = cache_dir / "jobs"
        self._tmp_dir = cache_dir / "tmp"
        self._max_listing_bytes = max_listing_bytes
        self._max_job_bytes = max_job_bytes
        self._max_jobs_bytes = max_jobs_bytes
        self._lock = threading.Lock()
        self._write_lock = threading.Lock()
        # The listing on disk, once this mount saved or read it: its jobs newest
        # first, by name, and its objects as written (to tell a change).
        self._listing: tuple[Job, ...] | None = None
        self._listed: dict[str, Job] = {}
        self._written: list[dict[str, Any]] | None = None
        self._jobs_bytes: int | None = None  # of jobs/, counted at the first save

    # -- the listing -------------------------------------------------------------

    def save_listing(self, jobs: Sequence[Job]) -> None:
        """After a successful listing: write it unless it is the one on disk, and
        keep the final jobs that left it one by one."""
        with self._write_lock:
            if self._written is None:  # what an earlier mount saw, read once
                self._written = self._read_listing() or []
            previous, objects = self._written, [job.raw for job in jobs]
            names = {job.jobname for job in jobs}
            with self._lock:
                self._listing, self._listed = tuple(jobs), {job.jobname: job for job in jobs}
            for obj in previous:
                if obj.get("jobname") not in names:  # few: parsed one by one
                    job = _parsed(obj)
                    if job is not None and job.is_final:
                        self._save_job(job)
            try:
                self._confirm_or_write(objects, previous)
            except OSError as exc:
                warn_once(logger, f"cannot keep the job listing for offline use: {exc}")

    def _confirm_or_write(self, objects: list[dict[str, Any]], previous: list[Any]) -> None:
        if objects == previous:
            with contextlib.suppress(FileNotFoundError):  # else never written, or deleted
                os.utime(self._listing_path)  # confirmed now: its mtime says when
                return
        self._write_listing(objects)
        self._written = objects

    def listing(self) -> tuple[list[Job], float] | None:
        """The saved listing and when it was last confirmed (unix time), or None."""
        with self._write_lock:
            jobs = self._loaded_listing()
            if jobs is None:
                return None
            try:
                saved_at = self._listing_path.stat().st_mtime
            except OSError:
                saved_at = time.time()  # deleted since it was read: it is this mount's
        return list(jobs), saved_at

    def listed(self, jobname: str) -> Job | None:
        """The job as the listing held in memory has it (no disk access)."""
        with self._lock:
            return self._listed.get(jobname)

    def _loaded_listing(self) -> tuple[Job, ...] | None:
        """The listing, read from disk the first time (write lock held)."""
        with self._lock:
            if self._listing is not None:
                return self._listing
        objects = self._read_listing()
        if objects is None:
            return None
        jobs = tuple(job for job in map(_parsed, objects) if job is not None)
        with self._lock:
            if self._listing is None:
                self._listing, self._listed = jobs, {job.jobname: job for job in jobs}
                self._written = objects
            return self._listing

    def _read_listing(self) -> list[dict[str, Any]] | None:
        try:
            with self._listing_path.open("rb") as file:
                data = file.read(self._max_listing_bytes + 1)
        except FileNotFoundError:
            return None
        except OSError as exc:
            warn_once(logger, f"cannot read the saved job listing: {exc}")
            return None
        objects = []
        for line in data.splitlines()[: None if len(data) <= self._max_listing_bytes else -1]:
            try:
                value = json.loads(line)
            except (ValueError, RecursionError):
                continue  # a file of ours never has one: the disk's damage
            if isinstance(value, dict):
                objects.append(value)
        return objects

    def _write_listing(self, objects: list[dict[str, Any]]) -> None:
        lines, size = [], 0
        for obj in objects:
            line = json.dumps(obj).encode() + b"\n"  # ASCII: a lone surrogate as \\ud800
            if size + len(line) > self._max_listing_bytes:
                warn_once(
                    logger, "the listing is too large to keep whole: its newest jobs are kept"
                )
                break
            lines.append(line)
            size += len(line)
        self._write(self._listing_path, b"".join(lines))

    # -- final jobs ----------------------------------------------------------------

    def save_job(self, job: Job) -> None:
        """Keep a final job (another kind is never served from disk)."""
        if job.is_final:
            with self._write_lock:
                self._save_job(job)

    def job(self, jobname: str) -> Job | None:
        """A final job seen before, from the listing or its own file; None if none."""
        with self._write_lock:
            self._loaded_listing()
            listed = self.listed(jobname)
            if listed is not None and listed.is_final:
                return listed
            path = self._job_path(jobname)
            try:
                with path.open("rb") as file:
                    data = file.read(self._max_job_bytes + 1)
                    with contextlib.suppress(OSError):
                        os.utime(file.fileno())  # eviction goes by mtime: least recently used
            except FileNotFoundError:
                return None
            except OSError as exc:
                warn_once(logger, f"cannot read the saved jobs: {exc}")
                return None
        try:
            found = _parsed(json.loads(data))
        except (ValueError, RecursionError):  # the disk's damage
            found = None
        if found is None or found.jobname != jobname or not found.is_final:
            logger.warning("ignoring %s: not the saved final job %s", path, jobname)
            return None
        return found

    def forget(self, jobname: str) -> None:
        """What is held of the job may be out of date: nothing of it is served from here."""
        with self._write_lock:
            with self._lock:
                self._listed.pop(jobname, None)
                if self._listing is not None:
                    self._listing = tuple(j for j in self._listing if j.jobname != jobname)
            with contextlib.suppress(FileNotFoundError):
                self._job_path(jobname).unlink()

    def _save_job(self, job: Job) -> None:
        """Write the job's file unless it is there (write lock held)."""
        path = self._job_path(job.jobname)
        if path.exists():
            return  # final: the same object
        data = json.dumps(job.raw).encode()
        if len(data) > self._max_job_bytes:
            logger.info("not kept for offline use: job %s (%d bytes)", job.jobname, len(data))
            return
        try:
            private_dir(self._jobs_dir)
            self._make_room(len(data))
            self._write(path, data)
        except OSError as exc:
            warn_once(logger, f"cannot keep finished jobs for offline use: {exc}")
            return
        self._jobs_bytes = (self._jobs_bytes or 0) + len(data)

    def _make_room(self, incoming: int) -> None:
        """Delete the least recently used job files until `incoming` bytes fit."""
        if self._jobs_bytes is not None and self._jobs_bytes + incoming <= self._max_jobs_bytes:
            return
        # Counted from the directory: at the first save, and when other mounts
        # sharing it may have added or deleted files.
        files = []
        for entry in os.scandir(self._jobs_dir):
            with contextlib.suppress(FileNotFoundError):
                info = entry.stat(follow_symlinks=False)
                files.append((info.st_mtime_ns, info.st_size, entry.path))
        files.sort()
        total = sum(size for _, size, _ in files)
        for _, size, name in files:
            if total + incoming <= self._max_jobs_bytes:
                break
            with contextlib.suppress(FileNotFoundError):
                os.unlink(name)
            total -= size
        self._jobs_bytes = total

    def _job_path(self, jobname: str) -> Path:
        # Hashed: a server's job name may hold anything a file name cannot.
        return self._jobs_dir / (
            hashlib.sha256(jobname.encode(errors="surrogatepass")).hexdigest() + ".json"
        )

    def _write(self, path: Path, data: bytes) -> None:
        fd, tmp = temp_file(private_dir(self._tmp_dir), ".json")
        try:
            with os.fdopen(fd, "wb") as file:
                file.write(data)
                file.flush()
                os.fsync(file.fileno())
            durable_rename(tmp, path)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
            raise


def _parsed(obj: Any) -> Job | None:
    """A saved object as a Job, None if it is not one (a damaged file)."""
    try:
        return parse_job(obj)
    except ServerError as exc:
        logger.warning("ignoring a saved job: %s", exc)
        return None
