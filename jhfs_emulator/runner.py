"""Real jobs: each one a local `sh -c COMMAND` process in its own work directory.

The process runs in its own process group (so kill reaches everything it
started); each line it prints on stdout or stderr becomes a log message as it
arrives. When it ends, the `RESULTS_FILE` path (relative to the work
directory; a directory becomes `NAME.tar.gz`) is published as a `result` file
and what it wrote to the file named by `JHFS_RESULTS` becomes `outputs`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import signal
import tarfile
from pathlib import Path

from jhfs_emulator.blobs import sha256_file
from jhfs_emulator.logs import LiveLog
from jhfs_emulator.model import Job, JobFile
from jhfs_emulator.timefmt import now_ms

logger = logging.getLogger(__name__)

_PASSED_ENV = ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "TZ")
_READ_SIZE = 1 << 16


def _tar_directory(source: Path, target: Path) -> None:
    with tarfile.open(target, "w:gz") as tar:
        tar.add(source, arcname=source.name)


def _link_or_copy(source: Path, target: Path) -> None:
    try:
        os.link(source, target)
    except OSError:
        shutil.copyfile(source, target)


class JobRunner:
    """Starts, watches, kills and finishes job processes."""

    def __init__(self, jobs_dir: Path, kill_grace: float = 5.0) -> None:
        self._jobs_dir = jobs_dir
        self._kill_grace = kill_grace
        self._processes: dict[str, asyncio.subprocess.Process] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    def job_dir(self, jobname: str) -> Path:
        return self._jobs_dir / jobname

    def start(self, job: Job, command: str, start_delay: float = 0.0) -> None:
        task = asyncio.get_running_loop().create_task(self._run(job, command, start_delay))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def kill(self, job: Job, reason: str = "killed") -> None:
        """Stop a job: TERM to its process group, KILL after the grace period."""
        if job.done or job.stop_reason is not None:
            return
        job.stop_reason = reason
        job.stop_requested.set()
        process = self._processes.get(job.jobname)
        if process is None:
            return  # not started yet: _run sees stop_reason (before or after starting it)
        self._stop(job, process)

    def _stop(self, job: Job, process: asyncio.subprocess.Process) -> None:
        logger.info("stopping %s (%s)", job.jobname, job.stop_reason)
        self._signal(process, signal.SIGTERM)
        task = asyncio.get_running_loop().create_task(self._escalate(process))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def shutdown(self) -> None:
        """Kill every running process at once and wait for the jobs to finish."""
        for process in list(self._processes.values()):
            self._signal(process, signal.SIGKILL)
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=10)

    @staticmethod
    def _signal(process: asyncio.subprocess.Process, signum: int) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, signum)

    async def _escalate(self, process: asyncio.subprocess.Process) -> None:
        try:
            await asyncio.wait_for(process.wait(), self._kill_grace)
        except TimeoutError:
            self._signal(process, signal.SIGKILL)

    async def _run(self, job: Job, command: str, start_delay: float) -> None:
        assert isinstance(job.log, LiveLog)
        if start_delay > 0:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(job.stop_requested.wait(), start_delay)
        if job.stop_reason is not None:
            self._finish(job, "Stopped")
            return
        work_dir = job.work_dir
        assert work_dir is not None
        results_path = self.job_dir(job.jobname) / "jhfs_results"
        env = {name: os.environ[name] for name in _PASSED_ENV if name in os.environ}
        env.update(job.env or {})
        env["JHFS_RESULTS"] = str(results_path)
        env["JULIAHUB_JOBNAME"] = job.jobname
        try:
            process = await asyncio.create_subprocess_exec(
                "sh", "-c", command, cwd=work_dir, env=env,
                stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE, start_new_session=True,
            )  # fmt: skip
        except OSError as error:
            job.log.append(now_ms(), f"could not start the job: {error}", is_stderr=True)
            self._finish(job, "Failed")
            return
        self._processes[job.jobname] = process
        if job.stop_reason is not None:
            self._stop(job, process)  # killed while its process was being started
        job.process_id = process.pid
        job.started_ms = now_ms()
        if job.timelimit_hours is not None:
            job.deadline_ms = job.started_ms + round(job.timelimit_hours * 3_600_000)
        job.status = "Running"
        assert process.stdout is not None and process.stderr is not None
        readers = [
            asyncio.create_task(self._read_lines(process.stdout, job.log, False)),
            asyncio.create_task(self._read_lines(process.stderr, job.log, True)),
        ]
        watchdog = asyncio.create_task(self._watch_deadline(job))
        returncode = await process.wait()
        # Like the job's container going away: nothing it started outlives it.
        self._signal(process, signal.SIGKILL)
        _, pending = await asyncio.wait(readers, timeout=2)
        for reader in pending:
            reader.cancel()
        watchdog.cancel()
        del self._processes[job.jobname]
        try:
            await self._publish_results(job, work_dir, results_path)
        except (OSError, tarfile.TarError) as error:
            logger.warning("%s: publishing its results failed: %s", job.jobname, error)
            job.log.append(now_ms(), f"uploading the results failed: {error}", True)
        if job.stop_reason is not None:
            status = "Stopped"
        else:
            status = "Completed" if returncode == 0 else "Failed"
        logger.info("%s ended with exit code %s: %s", job.jobname, returncode, status)
        self._finish(job, status)

    @staticmethod
    def _finish(job: Job, status: str) -> None:
        job.status = status
        job.ended_ms = now_ms()
        job.log.finish()

    @staticmethod
    async def _read_lines(stream: asyncio.StreamReader, log: LiveLog, is_stderr: bool) -> None:
        pending = b""
        while chunk := await stream.read(_READ_SIZE):
            *lines, pending = (pending + chunk).split(b"\n")
            stamp = now_ms()
            for line in lines:
                log.append(stamp, line.decode(errors="replace").removesuffix("\r"), is_stderr)
        if pending:
            log.append(now_ms(), pending.decode(errors="replace").removesuffix("\r"), is_stderr)

    async def _watch_deadline(self, job: Job) -> None:
        while job.deadline_ms is not None:
            remaining = (job.deadline_ms - now_ms()) / 1000
            if remaining <= 0:
                await self.kill(job, "time limit reached")
                return
            job.deadline_moved.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(job.deadline_moved.wait(), remaining)

    async def _publish_results(self, job: Job, work_dir: Path, results_path: Path) -> None:
        if results_path.is_file():
            text = await asyncio.to_thread(results_path.read_text, errors="replace")
            job.outputs = text.rstrip("\n")
        relative = (job.env or {}).get("RESULTS_FILE")
        if not relative:
            return
        source = work_dir / relative
        # Published apart from the work dir, where no sibling (say NAME.gz) can change
        # what the file server sends.
        published_dir = self.job_dir(job.jobname) / "results"
        if source.is_dir():
            name = f"{source.name}.tar.gz"
        elif source.is_file():
            name = source.name
        else:
            if isinstance(job.log, LiveLog):
                job.log.append(now_ms(), f"RESULTS_FILE {relative} does not exist", True)
            return
        entry = JobFile("result", name, None, None, None, now_ms())
        job.files.append(entry)  # visible as uploading (size and hash null) until done
        published_dir.mkdir(exist_ok=True)
        published = published_dir / name
        if source.is_dir():
            await asyncio.to_thread(_tar_directory, source, published)
        else:
            await asyncio.to_thread(_link_or_copy, source, published)
        entry.sha256 = await asyncio.to_thread(sha256_file, published)
        entry.size = published.stat().st_size
        entry.uploaded_ms = now_ms()
        entry.path = published
