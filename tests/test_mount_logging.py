"""The log through real mounts: --debug shows refusals as one line each and no
traceback; --log-file with -f and detached; --log-level, -v and --debug choose
what is logged."""

from __future__ import annotations

import base64
import logging
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from conftest import Emulator, wait_for
from mounting import (
    Mount,
    force_unmount,
    is_mounted,
    jhfs,
    jhfs_env,
    module_emulator,
    mount_jhfs,
    sh,
    stop,
)

from jhfs.cli import build_parser
from jhfs.logsetup import chosen_level

emulator = module_emulator()


@pytest.fixture(scope="module")
def jobs(emulator: Emulator) -> list[str]:
    """A finished job with files and a log, and a running one."""
    content = base64.b64encode(b"1,2\n").decode()
    finished = emulator.create_finished(
        status="Completed",
        log_lines=5,
        files=[{"type": "result", "name": "r.csv", "content": content}],
    )
    return [finished, emulator.submit("sleep 300")]


@contextmanager
def mounted_with_log_file(
    emulator: Emulator, workdir: Path, log_file: Path, *options: str
) -> Iterator[tuple[Mount, Path]]:
    """`jhfs mount -f --log-file LOG OPTIONS...`; yields the mount and the file of its stderr."""
    mountpoint = workdir / "mnt"
    mountpoint.mkdir(parents=True, exist_ok=True)
    stderr = workdir / "stderr"
    with stderr.open("w") as stderr_file:
        process = subprocess.Popen(
            [sys.executable, "-m", "jhfs", "mount", str(mountpoint), "-f",
             "--cache-dir", str(workdir / "cache"), "--log-file", str(log_file), *options],
            env=jhfs_env(emulator), stdin=subprocess.DEVNULL, stdout=stderr_file,
            stderr=stderr_file, text=True,
        )  # fmt: skip
    mount = Mount(mountpoint, process, emulator, workdir / "cache", log_file)
    try:
        wait_for(lambda: is_mounted(mountpoint) or process.poll() is not None, what="mount")
        assert is_mounted(mountpoint), stderr.read_text()
        yield mount, stderr
    finally:
        stop(mount)


def test_debug_shows_each_refusal_in_one_line_and_no_traceback(
    emulator: Emulator, jobs: list[str], tmp_path: Path
) -> None:
    finished, running = jobs
    with mount_jhfs(emulator, tmp_path) as mount:  # -f --debug
        commands = [
            f"ls -l {mount.jobs}/*/ {mount.jobs}/*/files/*/",
            f"getfattr -d {mount.jobs}/*/status {mount.job(finished)}/files/result/r.csv",
            f"cat {mount.job(running)}/status {mount.job(finished)}/status",
        ]
        for command in commands:
            done = sh(command)
            assert done.returncode == 0, (command, done.stderr)
        assert sh(f"stat {mount.jobs}/jr-nosuchjob").returncode != 0  # ENOENT
        assert sh(f"touch {mount.job(finished)}/new").returncode != 0  # EROFS
        assert sh(f"getfattr -n user.nosuch {mount.job(finished)}/status").returncode != 0
        wait_for(lambda: "/new: EROFS" in mount.log_text(), what="the EROFS line")
        log = mount.log_text()
    assert "Traceback" not in log
    lines = log.splitlines()
    assert any(" DEBUG jhfs.client.api: GET /juliaruncloud/get_jobs" in line for line in lines)
    refusals = [
        "getattr /jobs/jr-nosuchjob: not found",  # asked of the server
        f"/jobs/{finished}/new: EROFS",
        f"getxattr /jobs/{finished}/status: ENODATA",
    ]
    for refusal in refusals:
        [line] = [line for line in lines if refusal in line]
        assert " DEBUG jhfs.errno_map: " in line


def test_log_file_in_the_foreground_instead_of_stderr(
    emulator: Emulator, jobs: list[str], tmp_path: Path
) -> None:
    log_file = tmp_path / "mount.log"
    log_file.write_text("an earlier line\n")
    log_file.chmod(0o600)
    with mounted_with_log_file(emulator, tmp_path, log_file, "--log-level", "DEBUG") as (
        mount,
        stderr,
    ):
        assert sh(f"ls {mount.jobs}").returncode == 0
        wait_for(lambda: "GET /juliaruncloud/get_jobs" in log_file.read_text(), what="the log")
    text = log_file.read_text()
    assert text.startswith("an earlier line\n")  # appended
    assert f"INFO jhfs.cli: mounting emulator-user's jobs on {emulator.url}" in text
    assert "unmounted" in text
    assert stderr.read_text() == ""


def test_log_file_of_a_detached_mount_is_created_private(
    emulator: Emulator, jobs: list[str], tmp_path: Path
) -> None:
    mountpoint = tmp_path / "mnt"
    mountpoint.mkdir()
    log_file = tmp_path / "detached.log"
    cache = tmp_path / "cache"
    try:
        result = jhfs("mount", str(mountpoint), "--cache-dir", str(cache),
                      "--log-file", str(log_file), "--log-level", "debug",
                      env=jhfs_env(emulator))  # fmt: skip
        assert result.returncode == 0, result.stderr
        assert f"mounted {mountpoint}; logging to {log_file}" in result.stderr
        assert log_file.stat().st_mode & 0o777 == 0o600
        assert sh(f"cat {mountpoint}/jobs/{jobs[0]}/status").stdout == "Completed\n"
        wait_for(lambda: f"/jobs/{jobs[0]}" in log_file.read_text(), what="the mount's log")
        assert jhfs("umount", str(mountpoint), env=jhfs_env(emulator)).returncode == 0
        wait_for(lambda: "unmounted" in log_file.read_text(), what="the last line")
    finally:
        force_unmount(mountpoint)
    assert " DEBUG " in log_file.read_text()
    assert not list(cache.glob("*/jhfs.log"))  # instead of the cache directory's


@pytest.mark.parametrize(
    ("options", "info", "debug"),
    [
        ([], True, False),  # the default: info
        (["-v"], True, False),
        (["--log-level", "Warning"], False, False),
        (["--log-level", "warning", "-v"], True, False),  # the most verbose wins
        (["--log-level", "error", "--debug"], True, True),
    ],
)
def test_the_log_level_filters_what_is_logged(
    emulator: Emulator, jobs: list[str], tmp_path: Path, options: list[str], info: bool, debug: bool
) -> None:
    log_file = tmp_path / "jhfs.log"
    with mounted_with_log_file(emulator, tmp_path, log_file, *options) as (mount, _):
        assert sh(f"ls {mount.jobs}").returncode == 0
    text = log_file.read_text()
    assert ("INFO jhfs.cli: mounting emulator-user's jobs" in text) == info
    assert (" DEBUG " in text) == debug


@pytest.mark.parametrize(
    ("argv", "level"),
    [
        ([], logging.INFO),
        (["--log-level", "ERROR"], logging.ERROR),
        (["--log-level", "warning", "--verbose"], logging.INFO),
        (["--debug", "--log-level", "info"], logging.DEBUG),
    ],
)
def test_the_most_verbose_option_wins(argv: list[str], level: int) -> None:
    for command in ("mount", "demo"):
        args = build_parser().parse_args([command, "/mnt", *argv])
        assert chosen_level(args) == level


def test_an_unknown_log_level_is_refused() -> None:
    with pytest.raises(SystemExit):
        build_parser().parse_args(["mount", "/mnt", "--log-level", "verbose"])


def test_a_crash_in_native_code_leaves_every_threads_stack_in_the_log(
    emulator: Emulator, tmp_path: Path
) -> None:
    # As a segmentation fault in libfuse or ctypes would: the process dies
    # where no Python exception can be caught, and the log says where each
    # Python thread was (the main thread in the FUSE loop).
    with mount_jhfs(emulator, tmp_path) as mount:
        mount.process.send_signal(signal.SIGSEGV)
        assert mount.process.wait(timeout=30) == -signal.SIGSEGV
        text = mount.log_text()
        assert "Fatal Python error: Segmentation fault" in text
        assert "Current thread" in text
        assert "in serve" in text  # jhfs.mounting.serve, waiting in the FUSE loop
