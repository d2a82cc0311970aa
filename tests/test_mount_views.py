"""The views at the root through a real mount: latest, by-alias/, by-status/, made
from the one listing and followed by the kernel as relative symlinks."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
from conftest import Emulator, wait_for
from mounting import Mount, module_emulator, module_mount, sh

from jhfs.state.freshness import LISTING_TTL

emulator = module_emulator()
mnt = module_mount("views")


@pytest.fixture(scope="module")
def jobs(emulator: Emulator) -> dict[str, str]:
    """The module's jobs by role, created oldest first."""
    made = {
        "train old": emulator.create_finished(status="Completed", alias="train"),
        "sweep": emulator.create_finished(status="Completed", alias="sweep"),
        "no alias": emulator.create_finished(status="Stopped"),
        "odd alias": emulator.create_finished(status="Completed", alias="a/b"),
        "train new": emulator.create_finished(status="Failed", alias="train"),
        "running": emulator.submit("sleep 600", alias="live"),
    }
    running = made["running"]
    wait_for(lambda: emulator.admin("GET", f"jobs/{running}")["status"] == "Running")
    return made


def listed(mount: Mount, jobs: dict[str, str]) -> None:
    """Until the mount's listing has every job of the module as it is now (the
    listing may be 2 s old)."""
    wait_for(
        lambda: (
            set(jobs.values()) <= set(os.listdir(mount.jobs))
            and "Submitted" not in os.listdir(mount.path / "by-status")
        ),
        what="every job listed, the running one as Running",
    )


def test_latest_is_a_relative_symlink_to_the_newest_job(mnt: Mount, jobs: dict[str, str]) -> None:
    listed(mnt, jobs)
    newest = jobs["running"]
    result = sh(f"readlink {mnt.path}/latest")
    assert result.stdout == f"jobs/{newest}\n", result.stderr
    assert Path(os.path.realpath(mnt.path / "latest")) == mnt.job(newest)
    assert sh(f"cat {mnt.path}/latest/status").stdout == "Running\n"


def test_the_symlinks_work_from_wherever_the_mount_is_reached(
    mnt: Mount, jobs: dict[str, str], tmp_path: Path
) -> None:
    listed(mnt, jobs)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.symlink_to(mnt.path)
    result = sh(f"cd {elsewhere}/by-alias && cat sweep/status")
    assert (result.returncode, result.stdout) == (0, "Completed\n"), result.stderr


def test_by_alias_has_a_link_and_a_directory_for_each_alias(
    mnt: Mount, jobs: dict[str, str]
) -> None:
    listed(mnt, jobs)
    result = sh(f"ls {mnt.path}/by-alias/")
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == [
        "live", "live.all", "sweep", "sweep.all", "train", "train.all",
    ]  # fmt: skip
    # The newest job of the alias.
    assert sh(f"cat {mnt.path}/by-alias/train/status").stdout == "Failed\n"
    assert sh(f"readlink {mnt.path}/by-alias/train").stdout == f"../jobs/{jobs['train new']}\n"
    every = sh(f"ls {mnt.path}/by-alias/train.all/").stdout.split()
    assert sorted(every) == sorted([jobs["train new"], jobs["train old"]])
    old = mnt.path / "by-alias" / "train.all" / jobs["train old"]
    assert (old / "status").read_text() == "Completed\n"


def test_an_alias_that_cannot_be_a_file_name_is_left_out_with_one_warning(
    mnt: Mount, jobs: dict[str, str]
) -> None:
    listed(mnt, jobs)
    for _ in range(2):
        assert "a" not in os.listdir(mnt.path / "by-alias")
    warnings = [line for line in mnt.log_text().splitlines() if "left out 'a/b'" in line]
    assert len(warnings) == 1, warnings


def test_by_status_has_a_directory_for_each_status_present(
    mnt: Mount, jobs: dict[str, str]
) -> None:
    listed(mnt, jobs)
    statuses = sh(f"ls {mnt.path}/by-status/").stdout.split()
    assert statuses == ["Completed", "Failed", "Running", "Stopped"]
    running = sh(f"ls {mnt.path}/by-status/Running/")
    assert running.stdout.split() == [jobs["running"]], running.stderr
    completed = set(os.listdir(mnt.path / "by-status" / "Completed"))
    assert completed == {jobs["train old"], jobs["sweep"], jobs["odd alias"]}
    stopped = mnt.path / "by-status" / "Stopped" / jobs["no alias"]
    assert (stopped / "status").read_text() == "Stopped\n"


def test_find_lists_the_root(mnt: Mount) -> None:
    result = sh(f"find {mnt.path} -maxdepth 1")
    assert result.returncode == 0, result.stderr
    names = sorted(Path(line).name for line in result.stdout.splitlines()[1:])
    assert names == ["by-alias", "by-status", "jobs", "latest"]
    kinds = sh(f"find {mnt.path} -mindepth 1 -maxdepth 1 -type l").stdout.split()
    assert kinds == [f"{mnt.path}/latest"]


def test_ls_l_shows_symlinks_with_their_targets(mnt: Mount, jobs: dict[str, str]) -> None:
    listed(mnt, jobs)
    lines = sh(f"ls -l {mnt.path}/by-alias/").stdout.splitlines()[1:]
    sweep = next(line for line in lines if line.split()[-3] == "sweep")
    assert sweep.startswith("l")
    assert sweep.endswith(f"sweep -> ../jobs/{jobs['sweep']}")


def test_the_views_cost_no_request_beyond_the_listing(
    mnt: Mount, emulator: Emulator, jobs: dict[str, str]
) -> None:
    listed(mnt, jobs)
    before = emulator.stats()["requests"]
    started = time.monotonic()
    done_job = jobs["train new"]  # finished: its status needs no request of its own
    result = sh(
        f"cd {mnt.path} && readlink latest && ls -l by-alias/ by-status/ by-status/*/ "
        f"by-alias/*.all/ && find . -maxdepth 2 && cat by-alias/train/status "
        f"by-status/Failed/{done_job}/status"
    )
    elapsed = time.monotonic() - started
    after = emulator.stats()["requests"]
    assert result.returncode == 0, result.stderr
    assert result.stdout.endswith("Failed\nFailed\n")
    assert after.get("job", 0) == before.get("job", 0)
    # One listing, reused for LISTING_TTL.
    listings = after.get("get_jobs", 0) - before.get("get_jobs", 0)
    assert listings <= elapsed / LISTING_TTL + 1, (listings, elapsed)
