"""The job table: every job by name, newest first, and how jobs are created.

A job is created either running (a real process, see runner) or already
finished (no process: a synthetic log of any length and files given by size
or content). Creation specs come from the admin API and the demo.
"""

from __future__ import annotations

import base64
import binascii
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jhfs_emulator.blobs import BlobStore
from jhfs_emulator.logs import JobLog, LiveLog, SyntheticLines, SyntheticLog
from jhfs_emulator.model import Job, JobFile, new_jobname
from jhfs_emulator.runner import JobRunner
from jhfs_emulator.timefmt import now_ms

logger = logging.getLogger(__name__)

PROXY_DOMAIN = "apps.localhost"


class SpecError(ValueError):
    """An admin request that does not describe a valid job."""


@dataclass(frozen=True)
class CommonFields:
    """What running and finished jobs are both created with.

    The flags make the quirks of some real servers: `escape_inputs` sends
    `inputs` with backslash-escaped quotes, `hex_hashes` sends file hashes as 64
    hex digits, `ms_timestamps` sends log timestamps as integer milliseconds.
    """

    alias: str | None
    env: dict[str, str] | None
    escape_inputs: bool
    hex_hashes: bool
    ms_timestamps: bool
    proxy_link: str | None
    expose: int | None


def _common(spec: dict[str, Any]) -> CommonFields:
    alias = spec.get("alias")
    if alias is not None and not isinstance(alias, str):
        raise SpecError("alias must be a string or null")
    env = spec.get("env")
    if env is not None and (
        not isinstance(env, dict) or not all(isinstance(v, str) for v in env.values())
    ):
        raise SpecError("env must be an object of strings")
    proxy_link = spec.get("proxy_link")
    expose = spec.get("expose")
    if proxy_link is not None and not isinstance(proxy_link, str):
        raise SpecError("proxy_link must be a string")
    if expose is not None and (not isinstance(expose, int) or not 0 < expose < 65536):
        raise SpecError("expose must be a port number")
    return CommonFields(
        alias,
        env,
        bool(spec.get("escape_inputs", False)),
        bool(spec.get("hex_hashes", False)),
        bool(spec.get("ms_timestamps", False)),
        proxy_link,
        expose,
    )


def _int_field(spec: dict[str, Any], name: str, default: int) -> int:
    value = spec.get(name, default)
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise SpecError(f"{name} must be a whole number >= 0")
    return value


class JobStore:
    """All jobs, in creation order (the listing is newest first)."""

    def __init__(self, data_dir: Path, kill_grace: float = 5.0) -> None:
        self.blobs = BlobStore(data_dir / "blobs")
        self.runner = JobRunner(data_dir / "jobs", kill_grace)
        self._jobs: dict[str, Job] = {}
        self._order: list[Job] = []
        self._next_id = 8148

    def get(self, jobname: str) -> Job | None:
        return self._jobs.get(jobname)

    def latest(self, limit: int) -> list[Job]:
        return self._order[: -limit - 1 : -1] if limit > 0 else []

    def _add(self, common: CommonFields, log_for: Callable[[str], JobLog]) -> Job:
        jobname = new_jobname()
        while jobname in self._jobs:
            jobname = new_jobname()
        proxy_link = common.proxy_link
        if proxy_link is None and common.expose is not None:
            proxy_link = f"https://{jobname}.{PROXY_DOMAIN}/"
        job = Job(
            id=self._next_id,
            jobname=jobname,
            alias=common.alias,
            env=None if common.env is None else dict(common.env),
            log=log_for(jobname),
            escape_inputs=common.escape_inputs,
            hex_hashes=common.hex_hashes,
            proxy_link=proxy_link,
            submitted_ms=now_ms(),
        )
        job.log.ms_timestamps = common.ms_timestamps
        self._next_id += 1
        self._jobs[jobname] = job
        self._order.append(job)
        return job

    async def _files(self, specs: Any, uploaded_ms: int) -> list[JobFile]:
        if specs is None:
            return []
        if not isinstance(specs, list):
            raise SpecError("files must be a list")
        return [await self.file_from_spec(spec, uploaded_ms) for spec in specs]

    async def file_from_spec(self, spec: Any, uploaded_ms: int) -> JobFile:
        """A job file from `{type, name, content (base64) | size [, seed] [, uploading]}`."""
        if not isinstance(spec, dict):
            raise SpecError("a file is an object")
        filetype, name = spec.get("type", "input"), spec.get("name")
        if not isinstance(filetype, str) or not isinstance(name, str) or not name:
            raise SpecError("a file needs a string type and a non-empty name")
        if spec.get("uploading"):
            return JobFile(filetype, name, None, None, None, uploaded_ms)
        if "content" in spec:
            try:
                content = base64.b64decode(spec["content"], validate=True)
            except (binascii.Error, TypeError) as error:
                raise SpecError(f"content of {name} is not base64") from error
            blob = await self.blobs.content(content)
        elif "size" in spec:
            blob = await self.blobs.pseudo_random(
                _int_field(spec, "size", 0), _int_field(spec, "seed", 0)
            )
        else:
            raise SpecError(f"file {name} needs content, size or uploading")
        return JobFile(filetype, name, blob.path, blob.size, blob.sha256, uploaded_ms)

    async def create_running(self, spec: dict[str, Any]) -> Job:
        """A job that runs `sh -c command` as a local process."""
        command = spec.get("command")
        if not isinstance(command, str):
            raise SpecError("command must be a string")
        common = _common(spec)
        timelimit = spec.get("timelimit")
        if timelimit is not None and (
            not isinstance(timelimit, int | float) or isinstance(timelimit, bool) or timelimit <= 0
        ):
            raise SpecError("timelimit must be a positive number of hours")
        start_delay = spec.get("start_delay", 0)
        if not isinstance(start_delay, int | float) or start_delay < 0:
            raise SpecError("start_delay must be a number of seconds >= 0")
        files = await self._files(spec.get("files"), now_ms())
        for entry in files:
            if Path(entry.name).is_absolute() or ".." in Path(entry.name).parts:
                raise SpecError(f"input file {entry.name!r} would land outside the work dir")
        job = self._add(common, LiveLog)
        job.timelimit_hours = None if timelimit is None else float(timelimit)
        job.files = files
        work_dir = self.runner.job_dir(job.jobname) / "work"
        work_dir.mkdir(parents=True)
        job.work_dir = work_dir
        for entry in files:
            if entry.path is not None:
                target = work_dir / entry.name
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(entry.path.read_bytes())
        self.runner.start(job, command, float(start_delay))
        return job

    async def create_finished(self, spec: dict[str, Any], count: int = 1) -> list[Job]:
        """`count` jobs that are already over: no process, a synthetic log."""
        status = spec.get("status", "Completed")
        outputs = spec.get("outputs", "")
        if not isinstance(status, str) or not isinstance(outputs, str):
            raise SpecError("status and outputs must be strings")
        log_lines = _int_field(spec, "log_lines", 0)
        common = _common(spec)
        # Jobs that ended a while ago make `ls -lt` of the demo mean something.
        end = now_ms() - 1000 * _int_field(spec, "ended_seconds_ago", 0)
        start = end - log_lines - 1000
        files = await self._files(spec.get("files"), end)
        jobs = []
        for _ in range(count):

            def synthetic(jobname: str) -> SyntheticLog:
                return SyntheticLog(jobname, SyntheticLines(log_lines, start + 500))

            job = self._add(common, synthetic)
            job.status = status
            job.outputs = outputs
            job.files = [
                JobFile(f.type, f.name, f.path, f.size, f.sha256, f.uploaded_ms) for f in files
            ]
            job.submitted_ms = start - 1000
            job.started_ms = start
            job.ended_ms = end if job.done else None
            if not job.done:
                job.log.finished = False
            jobs.append(job)
        return jobs

    async def kill(self, job: Job) -> None:
        """Stop a job; one without a process (created finished) stops at once.

        A job already over keeps the status it ended with: a done status is final.
        """
        if job.done:
            return
        if job.work_dir is None:
            job.status = "Stopped"
            job.ended_ms = now_ms()
            job.log.finish()
            return
        await self.runner.kill(job)

    def extend(self, job: Job, hours: int) -> None:
        """Move a job's time limit `hours` later (a job without one keeps none)."""
        if job.timelimit_hours is None:
            return
        job.timelimit_hours += hours
        if job.deadline_ms is not None:
            job.deadline_ms += hours * 3_600_000
            job.deadline_moved.set()
