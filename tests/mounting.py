"""Real mounts for tests: `python -m jhfs mount MNT -f` as a subprocess against the emulator.

Every mount is unmounted and its process ended in teardown, whatever the test
did (fusermount -u, then a lazy -uz, then kill), so no test leaves a mount
behind. Whether something is mounted is read from /proc/self/mountinfo, which
never blocks on a hung filesystem the way stat() of the mount point would.
"""

from __future__ import annotations

import hashlib
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from conftest import Emulator, start_emulator, stop_emulator, wait_for

from jhfs.unmounting import answers
from jhfs.unmounting import mounted as is_mounted


def module_emulator() -> Any:
    """A module-scoped `emulator` fixture, for `emulator = module_emulator()` in a test module.

    The module's emulator replaces the session one: its jobs, faults and stats
    are that module's alone (other suites leave jobs in the session emulator
    that would change what ls shows).
    """

    @pytest.fixture(scope="module")
    def emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Emulator]:
        em = start_emulator(tmp_path_factory.mktemp("emulator"))
        try:
            yield em
        finally:
            stop_emulator(em)

    return emulator


def module_mount(name: str) -> Any:
    """A module-scoped `mnt` fixture: jhfs mounted on the module's `emulator`."""

    @pytest.fixture(scope="module")
    def mnt(emulator: Emulator, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mount]:
        with mount_jhfs(emulator, tmp_path_factory.mktemp(name)) as mount:
            yield mount

    return mnt


def jhfs_env(emulator: Emulator, token: str | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("JULIA", "XDG_CACHE"))}
    env.update(
        JULIAHUB_SERVER=emulator.url,
        JULIAHUB_TOKEN=emulator.token if token is None else token,
        PYTHONUNBUFFERED="1",
    )
    return env


def jhfs(*args: str, env: dict[str, str], timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """Run the jhfs command line to completion."""
    return subprocess.run(
        [sys.executable, "-m", "jhfs", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def force_unmount(path: Path) -> None:
    if is_mounted(path):
        subprocess.run(["fusermount", "-u", str(path)], capture_output=True)
    if is_mounted(path):
        subprocess.run(["fusermount", "-uz", str(path)], capture_output=True)


@dataclass
class Mount:
    path: Path
    process: subprocess.Popen[str]
    emulator: Emulator
    cache_dir: Path
    log: Path

    @property
    def jobs(self) -> Path:
        return self.path / "jobs"

    def job(self, jobname: str) -> Path:
        return self.path / "jobs" / jobname

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")


@contextmanager
def mount_jhfs(
    emulator: Emulator, workdir: Path, *extra: str, log_name: str = "jhfs.log"
) -> Iterator[Mount]:
    """jhfs mounted in the foreground at workdir/mnt, its cache at workdir/cache, until
    the block ends. Another mount of the same workdir (with a `log_name` of its
    own) reuses both, also a mount point that a killed jhfs left mounted."""
    mountpoint = workdir / "mnt"
    replacing = is_mounted(mountpoint)  # a dead mount, which answers nothing
    if not replacing:
        mountpoint.mkdir(parents=True, exist_ok=True)
    cache_dir = workdir / "cache"
    log = workdir / log_name

    def mounted_anew() -> bool:
        return is_mounted(mountpoint) and (not replacing or bool(answers(mountpoint)))

    with log.open("w") as log_file:
        process = subprocess.Popen(
            [sys.executable, "-m", "jhfs", "mount", str(mountpoint), "-f",
             "--cache-dir", str(cache_dir), "--debug", *extra],
            env=jhfs_env(emulator),
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=log_file,
            text=True,
        )  # fmt: skip
    mount = Mount(mountpoint, process, emulator, cache_dir, log)
    try:
        # Asked once per poll: a second ask could differ (a statfs of a mount still
        # starting may take longer than `answers` waits, on a loaded machine).
        mounted = False

        def settled() -> bool:
            nonlocal mounted
            mounted = mounted_anew()
            return mounted or process.poll() is not None

        wait_for(settled, what="jhfs to mount")
        if not mounted:
            pytest.fail(f"jhfs exited with {process.returncode}:\n{mount.log_text()}")
        yield mount
    finally:
        stop(mount)


# The ways a user ends a mount: libfuse's signal, and `jhfs umount` (lazy when busy).
ENDINGS = ["SIGTERM", "jhfs umount"]


def end(mount: Mount, how: str) -> None:
    """End the mount as `how` (one of ENDINGS) says; its process then exits on its own."""
    if how == "SIGTERM":
        mount.process.send_signal(signal.SIGTERM)
    else:
        result = jhfs("umount", str(mount.path), env=jhfs_env(mount.emulator))
        assert result.returncode == 0, result.stderr


def stop(mount: Mount) -> None:
    force_unmount(mount.path)
    try:
        mount.process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        mount.process.kill()
        mount.process.wait()
    force_unmount(mount.path)


def sh(command: str, timeout: float = 60, shell: str = "sh") -> subprocess.CompletedProcess[str]:
    """A shell command line, as a user would type it."""
    return subprocess.run([shell, "-c", command], capture_output=True, text=True, timeout=timeout)


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as file:
        while chunk := file.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


class LineReader:
    """The lines a long-running process prints, read in the background, taken with deadlines."""

    def __init__(self, process: subprocess.Popen[str]) -> None:
        assert process.stdout is not None
        self.process = process
        self.lines: queue.Queue[str] = queue.Queue()
        stdout = process.stdout
        threading.Thread(target=lambda: [self.lines.put(x) for x in stdout], daemon=True).start()

    def until(self, predicate: Callable[[str], bool], timeout: float = 30) -> list[str]:
        """Lines up to and including the first for which predicate(line) holds."""
        seen: list[str] = []
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                pytest.fail(f"no matching line within {timeout}s; saw {seen[-20:]!r}")
            try:
                line = self.lines.get(timeout=remaining)
            except queue.Empty:
                continue
            seen.append(line)
            if predicate(line):
                return seen


def interruptible(argv: list[str], **options: Any) -> subprocess.Popen[bytes]:
    """A process that SIGINT ends, as Ctrl-C in a terminal does (a test run started
    in the background ignores SIGINT, and its children would inherit that)."""
    return subprocess.Popen(
        argv, preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL), **options
    )
