"""`jhfs demo`: the emulator with its sample jobs, mounted, and what to try.

The emulator runs as a child process on a free loopback port with a random
token handed over in its environment (never in argv). It gets a session of
its own so that Ctrl-C reaches only jhfs, which unmounts first and then stops
the emulator.
"""

from __future__ import annotations

import logging
import os
import secrets
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

from jhfs.client import Job, JuliaHubClient
from jhfs.mount_errors import MountError
from jhfs.mounting import MountSettings, serve
from jhfs.preflight import check_mountpoint, check_server

logger = logging.getLogger(__name__)

LISTENING = "jhfs emulator listening on "


def start_emulator(data_dir: Path, token: str, log_file: Path) -> tuple[subprocess.Popen[str], str]:
    """The demo emulator and its base URL."""
    with log_file.open("w") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "jhfs_emulator", "--host", "127.0.0.1", "--port", "0",
             "--data-dir", str(data_dir), "--demo"],
            stdout=subprocess.PIPE,
            stderr=log,
            text=True,
            env={**os.environ, "JULIAHUB_TOKEN": token, "PYTHONUNBUFFERED": "1"},
            start_new_session=True,
        )  # fmt: skip
    assert process.stdout is not None
    first = process.stdout.readline().strip()
    if not first.startswith(LISTENING):
        stop_emulator(process)
        raise MountError(f"the emulator did not start (see {log_file}): {first!r}")
    # Keep reading its stdout so that it never blocks on a full pipe.
    threading.Thread(target=process.stdout.read, daemon=True).start()
    return process, first[len(LISTENING) :]


def stop_emulator(process: subprocess.Popen[str]) -> None:
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def what_to_try(mountpoint: Path, url: str, jobs: list[Job]) -> str:
    """The commands from the top of the README, with this demo's job names."""
    running = next((j.jobname for j in jobs if not j.is_done), "JOBNAME")
    finished, result = next(
        ((j.jobname, f.name) for j in jobs if j.is_done for f in j.files if f.type == "result"),
        ("JOBNAME", "FILE"),
    )
    jobs_dir = mountpoint / "jobs"
    result_file = f"{jobs_dir}/{finished}/files/result/{result}"
    commands = [
        (f"ls -lt {jobs_dir}/", "newest jobs first"),
        (f"cat {jobs_dir}/{running}/status", "Running"),
        (f"tail -f {jobs_dir}/{running}/logs", "follows the live log"),
        (f"cp {result_file} .", "downloaded once, hash-checked"),
        (f"getfattr -d {result_file}", "its hash, type and upload time"),
        (f"jq .env {jobs_dir}/{finished}/info.json", "the job as JuliaHub.jl has it"),
        (f"ls {mountpoint}/by-status/Running/", "every running job"),
        (f"echo 'extend 2' > {jobs_dir}/{running}/ctl", "two more hours"),
        (f"echo kill > {jobs_dir}/{running}/ctl", "stops the job"),
        (f"cat {jobs_dir}/{running}/wait", "Stopped: blocks until the job is done"),
        (f"jhfs status {mountpoint}", "downloads in flight, followed logs, cache"),
    ]
    width = max(len(command) for command, _ in commands)
    return "\n".join(
        [
            f"jhfs demo: the sample jobs of the emulator at {url} are mounted at {mountpoint}.",
            "Try, in another shell:",
            "",
            *(f"  {command:<{width}}   # {comment}" for command, comment in commands),
            "",
            f"Press Ctrl-C here to unmount and stop the emulator (or `jhfs umount {mountpoint}`).",
        ]
    )


def run_demo(mountpoint: Path, cache_max_size: int) -> int:
    mountpoint.mkdir(parents=True, exist_ok=True)
    check_mountpoint(mountpoint)
    with tempfile.TemporaryDirectory(prefix="jhfs-demo-") as tmp:
        workdir = Path(tmp)
        token = secrets.token_urlsafe(24)
        emulator, url = start_emulator(workdir / "emulator", token, workdir / "emulator.log")
        try:
            client = JuliaHubClient.from_environment(server=url, token=token)
            user = check_server(client)
            jobs = client.jobs()
            cache_dir = workdir / "cache"
            cache_dir.mkdir(mode=0o700)
            settings = MountSettings(
                mountpoint, cache_dir, cache_max_size=cache_max_size, user=user
            )
            serve(client, settings, lambda: print(what_to_try(mountpoint, url, jobs), flush=True))
        finally:
            stop_emulator(emulator)
    print("jhfs demo: unmounted, emulator stopped.")
    return 0
