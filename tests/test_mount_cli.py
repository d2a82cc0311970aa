"""The command line through real mounts: checks before mounting, detaching, unmounting,
signals, a server that goes away, and the demo."""

from __future__ import annotations

import base64
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests
from conftest import Emulator, stop_emulator, wait_for
from mounting import (
    LineReader,
    force_unmount,
    is_mounted,
    jhfs,
    jhfs_env,
    module_emulator,
    mount_jhfs,
    sh,
)

emulator = module_emulator()


def mount_processes(mountpoint: Path) -> list[int]:
    """Ids of jhfs processes serving `mountpoint` (read from /proc)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"jhfs" in argv and b"mount" in argv and os.fsencode(mountpoint) in argv:
            pids.append(int(entry.name))
    return pids


def test_wrong_token_is_a_one_line_error_and_no_mount(emulator: Emulator, tmp_path: Path) -> None:
    mountpoint = tmp_path / "mnt"
    mountpoint.mkdir()
    env = jhfs_env(emulator, token="not-the-token")
    for foreground in ([], ["-f"]):
        result = jhfs("mount", str(mountpoint), *foreground, "--cache-dir", str(tmp_path), env=env)
        assert result.returncode != 0
        errors = [line for line in result.stderr.splitlines() if "error" in line]
        assert len(errors) == 1, result.stderr
        assert "token" in errors[0]
        assert "not-the-token" not in result.stderr
        assert not is_mounted(mountpoint)


def test_a_500_from_the_identity_check_is_the_refused_token_error(
    emulator: Emulator, tmp_path: Path
) -> None:
    """JuliaHub answers some bad tokens with a 500 from /api/v1: the same one line
    as for a 401, exit 1, and nothing mounted."""
    mountpoint = tmp_path / "mnt"
    mountpoint.mkdir()
    refused = jhfs("mount", str(mountpoint), "--cache-dir", str(tmp_path),
                   env=jhfs_env(emulator, token="not-the-token"))  # fmt: skip
    [error_401] = [line for line in refused.stderr.splitlines() if "error" in line]
    before, _, after = error_401.partition("(401: invalid or expired)")
    assert before == (
        f"jhfs: error: {emulator.url} refused the token: "
        "the identity check: the server refused the token "
    )
    try:
        for foreground in ([], ["-f"]):
            emulator.fault(endpoint="api_v1", mode="status", status=500)
            result = jhfs("mount", str(mountpoint), *foreground, "--cache-dir", str(tmp_path),
                          env=jhfs_env(emulator))  # fmt: skip
            assert result.returncode == 1
            errors = [line for line in result.stderr.splitlines() if "error" in line]
            assert len(errors) == 1, result.stderr
            assert errors[0].startswith(before + "(500: ") and errors[0].endswith(after)
            assert not is_mounted(mountpoint)
            assert mount_processes(mountpoint) == []
    finally:
        emulator.admin("DELETE", "faults")


def test_no_server_is_a_clear_error(tmp_path: Path) -> None:
    mountpoint = tmp_path / "mnt"
    mountpoint.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("JULIA")}
    env["JULIA_DEPOT_PATH"] = str(tmp_path / "depot")
    result = jhfs("mount", str(mountpoint), "-f", env=env)
    assert result.returncode != 0
    assert result.stderr.startswith("jhfs: error:")
    assert "JULIAHUB_SERVER" in result.stderr
    assert not is_mounted(mountpoint)


def test_a_server_without_api_v1_is_asked_over_graphql_and_mounts(
    emulator: Emulator, tmp_path: Path
) -> None:
    jobname = emulator.create_finished(status="Completed")
    asked = emulator.stats()["requests"].get("graphql", 0)
    emulator.fault(endpoint="api_v1", mode="status", status=404)
    try:
        with mount_jhfs(emulator, tmp_path) as mount:
            assert jobname in sh(f"ls {mount.jobs}").stdout.split()
            assert emulator.stats()["requests"]["graphql"] == asked + 1
            assert "emulator-user's jobs" in mount.log_text()
    finally:
        emulator.admin("DELETE", "faults")


def test_unreachable_server_is_a_clear_error(emulator: Emulator, tmp_path: Path) -> None:
    mountpoint = tmp_path / "mnt"
    mountpoint.mkdir()
    env = {**jhfs_env(emulator), "JULIAHUB_SERVER": "http://127.0.0.1:9"}  # discard port
    result = jhfs("mount", str(mountpoint), "-f", "--cache-dir", str(tmp_path), env=env)
    assert result.returncode != 0
    assert "cannot reach http://127.0.0.1:9" in result.stderr
    assert not is_mounted(mountpoint)


def test_mount_detaches_once_ready_and_umount_ends_it(emulator: Emulator, tmp_path: Path) -> None:
    mountpoint = tmp_path / "mnt"
    mountpoint.mkdir()
    jobname = emulator.create_finished(status="Completed")
    result = jhfs("mount", str(mountpoint), "--cache-dir", str(tmp_path / "cache"),
                  env=jhfs_env(emulator))  # fmt: skip
    try:
        assert result.returncode == 0, result.stderr
        # Ready when the command returns: no polling needed.
        assert is_mounted(mountpoint)
        assert (mountpoint / "jobs" / jobname / "status").read_text() == "Completed\n"
        [daemon] = mount_processes(mountpoint)
        # The cache directory is per server and private.
        [server_dir] = (tmp_path / "cache").iterdir()
        assert server_dir.stat().st_mode & 0o777 == 0o700
        assert (server_dir / "jhfs.log").stat().st_mode & 0o077 == 0
        unmounted = jhfs("umount", str(mountpoint), env=jhfs_env(emulator))
        assert unmounted.returncode == 0, unmounted.stderr
        assert not is_mounted(mountpoint)
        wait_for(lambda: not Path(f"/proc/{daemon}").exists(), what="the daemon to exit")
    finally:
        force_unmount(mountpoint)
        for pid in mount_processes(mountpoint):
            os.kill(pid, signal.SIGKILL)


def test_a_detached_mount_that_cannot_open_its_log_file_says_so_and_does_not_mount(
    emulator: Emulator, tmp_path: Path
) -> None:
    mountpoint = tmp_path / "mnt"
    mountpoint.mkdir()
    cache = tmp_path / "cache"
    server_dir = cache / emulator.url.removeprefix("http://").replace(":", "_")
    (server_dir / "jhfs.log").mkdir(parents=True)  # the log file cannot be opened
    try:
        result = jhfs("mount", str(mountpoint), "--cache-dir", str(cache),
                      env=jhfs_env(emulator), timeout=60)  # fmt: skip
        assert result.returncode == 1
        errors = [line for line in result.stderr.splitlines() if "error" in line]
        assert errors == [
            f"jhfs: error: cannot open the log file {server_dir / 'jhfs.log'}: Is a directory"
        ]
        wait_for(lambda: not is_mounted(mountpoint), what="the mount to go")
        wait_for(lambda: not mount_processes(mountpoint), what="its process to end")
    finally:
        force_unmount(mountpoint)


def test_umount_of_a_busy_mount_is_lazy_with_a_message(emulator: Emulator, tmp_path: Path) -> None:
    with mount_jhfs(emulator, tmp_path) as mount:
        busy = subprocess.Popen(["sleep", "600"], cwd=mount.jobs)
        try:
            result = jhfs("umount", str(mount.path), env=jhfs_env(emulator))
            assert result.returncode == 0, result.stderr
            assert "busy" in result.stderr
            assert not is_mounted(mount.path)
        finally:
            busy.kill()
            busy.wait()
        mount.process.wait(timeout=30)


def test_umount_of_something_not_mounted_fails(tmp_path: Path) -> None:
    result = jhfs("umount", str(tmp_path), env=dict(os.environ))
    assert result.returncode != 0
    assert result.stderr.startswith("jhfs: could not unmount")


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_signals_unmount_cleanly(emulator: Emulator, tmp_path: Path, signum: int) -> None:
    with mount_jhfs(emulator, tmp_path) as mount:
        mount.process.send_signal(signum)
        assert mount.process.wait(timeout=30) == 0
        assert not is_mounted(mount.path)


def test_unmount_under_load(emulator: Emulator, tmp_path: Path) -> None:
    jobname = emulator.create_finished(
        files=[{"type": "result", "name": "big.bin", "size": 50_000_000}], log_lines=100_000
    )
    running = emulator.submit("while true; do echo busy; sleep 0.1; done")
    with mount_jhfs(emulator, tmp_path) as mount:
        big = mount.job(jobname) / "files" / "result" / "big.bin"
        loops = [
            f"while cat {big}; do :; done",
            f"while cat {mount.job(jobname)}/logs; do :; done",
            f"tail -f {mount.job(running)}/logs",
            f"while ls -lR {mount.jobs}; do :; done",
        ]
        readers = [
            subprocess.Popen(
                ["sh", "-c", loop], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
            )
            for loop in loops
        ]
        try:
            wait_for(lambda: emulator.stats()["requests"].get("download", 0), what="a download")
            mount.process.terminate()
            assert mount.process.wait(timeout=60) == 0
            assert not is_mounted(mount.path)
        finally:
            for reader in readers:
                reader.kill()
                reader.wait()
            sh(f"curl -s -H 'Authorization: Bearer {emulator.token}' "
               f"'{emulator.url}/juliaruncloud/kill_job?jobname={running}'")  # fmt: skip


def test_server_down_is_eio_and_cached_finished_jobs_stay_readable(
    fresh_emulator: Emulator, tmp_path: Path
) -> None:
    content = b"cached result\n"
    jobname = fresh_emulator.create_finished(
        status="Completed",
        outputs="42",
        log_lines=10,
        files=[{"type": "result", "name": "r.txt", "content": base64.b64encode(content).decode()}],
    )
    other = fresh_emulator.create_finished(status="Failed")
    with mount_jhfs(fresh_emulator, tmp_path) as mount:
        job = mount.job(jobname)
        result = job / "files" / "result" / "r.txt"
        assert (job / "status").read_text() == "Completed\n"
        assert result.read_bytes() == content
        assert len((job / "logs").read_text().splitlines()) == 10
        stop_emulator(fresh_emulator)

        # What is cached of a finished job does not need the server.
        assert (job / "status").read_text() == "Completed\n"
        assert (job / "results").read_text() == "42"
        assert result.read_bytes() == content
        assert len((job / "logs").read_text().splitlines()) == 10

        # What needs the server fails with EIO (never ENOENT); how soon is scripts/bench's
        # "EIO with the server down" row. So does ls jobs/ here, since no mount ever
        # listed this server's jobs (one that did shows them: test_mount_offline.py).
        unknown = sh(f"cat {mount.jobs}/jr-neverseen/status", shell="bash")
        assert unknown.returncode != 0
        assert "Input/output error" in unknown.stderr
        not_loaded = sh(f"cat {mount.job(other)}/logs", shell="bash")
        assert "Input/output error" in not_loaded.stderr
        listing = sh(f"ls {mount.jobs}")
        assert listing.returncode != 0
        assert "Input/output error" in listing.stderr


def test_jhfs_emulator_delegates_to_the_emulator(tmp_path: Path) -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "jhfs", "emulator", "--port", "0", "--data-dir", str(tmp_path)],
        env={**os.environ, "JULIAHUB_TOKEN": "T0k", "PYTHONUNBUFFERED": "1"},
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert process.stdout is not None
        first = process.stdout.readline()
        url = re.fullmatch(r"jhfs emulator listening on (http://127\.0\.0\.1:\d+)\n", first)
        assert url, first
        answer = requests.get(
            f"{url[1]}/api/v1", headers={"Authorization": "Bearer T0k"}, timeout=10
        )
        assert answer.status_code == 200
    finally:
        process.terminate()
        process.wait(timeout=30)


def test_demo_mounts_sample_jobs_prints_real_commands_and_cleans_up(tmp_path: Path) -> None:
    mountpoint = tmp_path / "jh"
    env = {k: v for k, v in os.environ.items() if not k.startswith("JULIA")}
    demo = subprocess.Popen(
        [sys.executable, "-m", "jhfs", "demo", str(mountpoint)],
        env={**env, "PYTHONUNBUFFERED": "1"},
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        reader = LineReader(demo)
        printed = reader.until(lambda line: "Ctrl-C" in line, timeout=60)
        text = "".join(printed)
        assert is_mounted(mountpoint)
        running = re.search(r"cat (\S+)/status", text)
        result = re.search(r"cp (\S+) \.", text)
        assert running and result, text
        assert Path(running[1], "status").read_text() in ("Running\n", "Submitted\n")
        copied = sh(f"cp {result[1]} {tmp_path}/")
        assert copied.returncode == 0, copied.stderr
        assert sh(f"tail -n 1 {running[1]}/logs").returncode == 0
        status = re.search(r"jhfs status (\S+)", text)
        assert status and status[1] == str(mountpoint), text
        shown = subprocess.run([sys.executable, "-m", "jhfs", "status", status[1]],
                               capture_output=True, text=True, timeout=30)  # fmt: skip
        assert shown.returncode == 0 and shown.stdout.startswith(f"{mountpoint}: "), shown
        emulator_url = re.search(r"(http://127\.0\.0\.1:\d+)", text)
        assert emulator_url, text
        demo.send_signal(signal.SIGINT)
        reader.until(lambda line: "unmounted" in line)
        assert demo.wait(timeout=60) == 0
        assert not is_mounted(mountpoint)
        with pytest.raises(requests.ConnectionError):
            requests.get(emulator_url[1], timeout=10)
    finally:
        if demo.poll() is None:
            demo.kill()
            demo.wait()
        force_unmount(mountpoint)


def test_token_from_auth_toml_and_a_refused_token_is_eacces_with_a_hint(
    emulator: Emulator, tmp_path: Path
) -> None:
    """Julia's auth.toml is re-read when it changes; a token the server refuses (401)
    makes ctl fail with EACCES and the log say to refresh it."""
    netloc = emulator.url.split("://", 1)[1]
    auth_toml = tmp_path / "depot" / "servers" / netloc.replace(":", "_") / "auth.toml"
    auth_toml.parent.mkdir(parents=True)
    auth_toml.write_text(f'id_token = "{emulator.token}"\nexpires = {int(time.time()) + 3600}\n')
    jobname = emulator.submit("sleep 300")
    mountpoint = tmp_path / "mnt"
    mountpoint.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("JULIA", "XDG_CACHE"))}
    env.update(JULIA_PKG_SERVER=emulator.url, JULIA_DEPOT_PATH=str(tmp_path / "depot"))
    log = tmp_path / "jhfs.log"
    with log.open("w") as log_file:
        process = subprocess.Popen(
            [sys.executable, "-m", "jhfs", "mount", str(mountpoint), "-f",
             "--cache-dir", str(tmp_path / "cache")],
            env=env, stdout=log_file, stderr=log_file,
        )  # fmt: skip
    try:
        wait_for(lambda: is_mounted(mountpoint) or process.poll() is not None, what="mount")
        assert is_mounted(mountpoint), log.read_text()
        job = mountpoint / "jobs" / jobname
        assert (job / "status").read_text() in ("Submitted\n", "Running\n")
        auth_toml.write_text(
            f'id_token = "expired-elsewhere"\nexpires = {int(time.time()) + 3600}\n'
        )
        refused = sh(f"echo 'extend 1' > {job}/ctl", shell="bash")
        assert refused.returncode != 0
        assert "Permission denied" in refused.stderr
        assert "refresh" in log.read_text()
        assert "expired-elsewhere" not in log.read_text()
        auth_toml.write_text(
            f'id_token = "{emulator.token}"\nexpires = {int(time.time()) + 3600}\n'
        )
        assert sh(f"echo kill > {job}/ctl").returncode == 0
    finally:
        force_unmount(mountpoint)
        process.wait(timeout=30)


def test_detached_mount_that_fails_reports_the_childs_error(
    emulator: Emulator, tmp_path: Path
) -> None:
    mountpoint = tmp_path / "mnt"
    mountpoint.mkdir()
    # libfuse refuses an option it does not know, in the child, after the fork.
    result = jhfs("mount", str(mountpoint), "--cache-dir", str(tmp_path / "cache"),
                  "-o", "no_such_option", env=jhfs_env(emulator))  # fmt: skip
    assert result.returncode == 1
    assert f"jhfs: error: could not mount {mountpoint}" in result.stderr
    assert not is_mounted(mountpoint)
    assert mount_processes(mountpoint) == []
