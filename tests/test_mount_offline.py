"""Browsing with the server down, through real mounts: what was seen stays readable.

With the emulator stopped, `ls jobs/` shows the listing saved last (one
warning in the log, however many `ls`), and a finished job seen before reads
as it did: status, info.json, logs, files in the cache. A running job's
status is not made up from an old copy. A new mount on the same cache starts
with the server down and shows the same, its final jobs' objects read from
disk.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path

from conftest import Emulator, stop_emulator, wait_for
from mounting import Mount, jhfs, jhfs_env, mount_jhfs, sh

CONTENT = b"alpha,rmse\n0.1,0.042\n"
OFFLINE_WARNING = "jobs/ shows the jobs listed at"


def make_jobs(emulator: Emulator) -> tuple[str, str, str]:
    """An older finished job (outside a listing of 2), a newer finished one, a running one."""
    older = emulator.create_finished(status="Failed", log_lines=5, env={"N": "1"})
    finished = emulator.create_finished(
        status="Completed",
        log_lines=10,
        outputs='{"rmse": 0.042}',
        env={"ALPHA": "0.1"},
        escape_inputs=True,
        files=[{"type": "result", "name": "r.csv", "content": base64.b64encode(CONTENT).decode()}],
    )
    running = emulator.create_finished(status="Running", log_lines=3)
    return older, finished, running


def read_everything(mount: Mount, jobname: str, copy: Path) -> None:
    """What a user reads of a job, read once (so it is cached)."""
    job = mount.job(jobname)
    sh(f"cat {job}/status {job}/info.json {job}/logs > /dev/null")
    if (job / "files" / "result").exists():
        assert sh(f"cp {job}/files/result/r.csv {copy}").returncode == 0


def assert_readable_offline(mount: Mount, older: str, finished: str, tmp_path: Path) -> None:
    job = mount.job(finished)
    assert sh(f"cat {job}/status").stdout == "Completed\n"
    assert len(sh(f"cat {job}/logs").stdout.splitlines()) == 10
    info = json.loads(sh(f"cat {job}/info.json").stdout)
    assert [info["status"], info["env"]] == ["Completed", {"ALPHA": "0.1"}]
    assert sh(f"cat {job}/results").stdout == '{"rmse": 0.042}'
    copy = tmp_path / f"offline-{mount.log.stem}.csv"
    cp = sh(f"cp {job}/files/result/r.csv {copy}")
    assert cp.returncode == 0, cp.stderr
    assert copy.read_bytes() == CONTENT
    # A finished job looked up by name, outside the listing, too.
    assert sh(f"cat {mount.job(older)}/status").stdout == "Failed\n"
    assert len(sh(f"cat {mount.job(older)}/logs").stdout.splitlines()) == 5


def listed(mount: Mount) -> list[str]:
    ls = sh(f"ls {mount.jobs}")
    assert ls.returncode == 0, ls.stderr
    return ls.stdout.split()


def listing_asks(mount: Mount) -> int:
    """How often the mount asked the server for the listing in vain (the client's log)."""
    return sum(
        "job list:" in line and "retry 1 of" in line for line in mount.log_text().splitlines()
    )


def offline_warnings(mount: Mount) -> int:
    return mount.log_text().count(OFFLINE_WARNING)


def test_server_down_then_a_remount_on_the_same_cache(
    fresh_emulator: Emulator, tmp_path: Path
) -> None:
    older, finished, running = make_jobs(fresh_emulator)
    work = tmp_path / "work"
    with mount_jhfs(fresh_emulator, work, "--jobs-limit", "2") as mount:
        assert listed(mount) == sorted([running, finished])
        for jobname in (older, finished, running):
            read_everything(mount, jobname, tmp_path / "online.csv")
        stop_emulator(fresh_emulator)

        # ls goes on listing what it saw; the first ls that needs the server says
        # so once in the log, the later ones say nothing more, also when one of
        # them asks the server again (every freshness.OFFLINE_RETRY seconds).
        both = sorted([running, finished])
        wait_for(lambda: listed(mount) == both and offline_warnings(mount),
                 what="ls to show the saved listing")  # fmt: skip
        asks = listing_asks(mount)
        wait_for(lambda: listed(mount) == both and listing_asks(mount) > asks,
                 what="ls to have asked the server again")  # fmt: skip
        assert offline_warnings(mount) == 1
        assert_readable_offline(mount, older, finished, tmp_path)
        # A running job's status is not made up from the copy of the listing.
        status = sh(f"cat {mount.job(running)}/status")
        assert status.returncode != 0
        assert "Input/output error" in status.stderr

    # A new mount, with the server still down, on the same cache.
    with mount_jhfs(fresh_emulator, work, "--jobs-limit", "2", log_name="remount.log") as again:
        assert "mounting anyway" in again.log_text()
        assert f"mounting the jobs on {fresh_emulator.url}" in again.log_text()
        assert listed(again) == sorted([running, finished])
        assert offline_warnings(again) == 1
        assert_readable_offline(again, older, finished, tmp_path)
        assert "Input/output error" in sh(f"cat {again.job(running)}/status").stderr
        assert "Traceback" not in again.log_text()
    # What the mounts kept is private, and the token is in none of it.
    saved = [*work.glob("cache/*/listing.jsonl"), *work.glob("cache/*/jobs/*.json")]
    assert len(saved) == 2  # the listing, and the finished job outside it
    for path in saved:
        assert path.stat().st_mode & 0o777 == 0o600, path
        assert path.parent.stat().st_mode & 0o777 == 0o700, path
        assert fresh_emulator.token not in path.read_text(), path


def test_without_a_saved_listing_a_mount_does_not_start_offline(
    fresh_emulator: Emulator, tmp_path: Path
) -> None:
    stop_emulator(fresh_emulator)
    (tmp_path / "mnt").mkdir()
    result = jhfs(
        "mount", str(tmp_path / "mnt"), "-f", "--cache-dir", str(tmp_path / "cache"),
        env=jhfs_env(fresh_emulator),
    )  # fmt: skip
    assert result.returncode == 1
    assert "cannot reach" in result.stderr


def test_a_server_that_does_not_answer_is_unreachable_too(
    fresh_emulator: Emulator, tmp_path: Path
) -> None:
    finished = fresh_emulator.create_finished(status="Completed")
    with mount_jhfs(fresh_emulator, tmp_path, "-o", "timeout=2") as mount:
        assert listed(mount) == [finished]
        fresh_emulator.fault(endpoint="*", mode="delay", delay=3600, count=100_000)
        # Past the listing's freshness, ls waits for the deadline, then shows what it saw.
        wait_for(lambda: listed(mount) == [finished] and offline_warnings(mount),
                 what="ls to show the saved listing")  # fmt: skip
        assert "longer than its deadline" in mount.log_text()
        assert sh(f"cat {mount.job(finished)}/status").stdout == "Completed\n"
