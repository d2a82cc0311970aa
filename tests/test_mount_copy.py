"""Whole-job copies through a real mount: `cp -r`, `rsync -a` and `tar c` of a job
directory succeed, copy every file as it reads, and make ordinary files (0644,
directories 0755) that their owner can copy over and `rm -rf`."""

from __future__ import annotations

import base64
import os
import shutil
import stat
import subprocess
import tarfile
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import Emulator, wait_for
from mounting import Mount, module_emulator, module_mount, mount_jhfs, sh

emulator = module_emulator()
mnt = module_mount("copy")

NOBODY = 65534  # a normal user's uid and gid, for the tests run as root


@pytest.fixture
def finished(emulator: Emulator) -> str:
    return emulator.create_finished(
        status="Completed",
        log_lines=40,
        outputs='{"loss": 0.25}',
        files=[
            {"type": "input", "name": "code.jl", "content": base64.b64encode(b"1 + 1\n").decode()},
            {"type": "result", "name": "out.bin", "size": 300_000},
        ],
    )


def tree(root: Path) -> dict[str, bytes | None]:
    """Every path under root: a file's bytes, None for a directory."""
    found: dict[str, bytes | None] = {}
    for directory, dirs, files in os.walk(root):
        for name in dirs:
            found[os.path.relpath(Path(directory) / name, root)] = None
        for name in files:
            found[os.path.relpath(Path(directory) / name, root)] = (
                Path(directory) / name
            ).read_bytes()
    return found


def read_log(mnt: Mount, jobname: str) -> None:
    """Fetch a job's log, so that its size is known before rsync and tar stat it:
    both copy st_size bytes, and a log never read yet is sized 0 until the
    change that has a stat fetch it (issue 10, log sizes) is in."""
    assert sh(f"cat {mnt.job(jobname)}/logs").returncode == 0


def assert_ordinary_copy(copy: Path) -> None:
    """Directories 0755 and files 0644, as the user's own files."""
    for directory, dirs, files in os.walk(copy):
        for name in dirs:
            assert stat.S_IMODE((Path(directory) / name).stat().st_mode) == 0o755, name
        for name in files:
            assert stat.S_IMODE((Path(directory) / name).stat().st_mode) == 0o644, name


def test_cp_r_copies_a_job_directory(mnt: Mount, finished: str, tmp_path: Path) -> None:
    result = sh(f"cp -r {mnt.job(finished)} {tmp_path}/copy")
    assert result.returncode == 0, result.stderr
    original = tree(mnt.job(finished))
    assert "ctl" in original and "files/result/out.bin" in original
    assert tree(tmp_path / "copy") == original
    assert_ordinary_copy(tmp_path / "copy")


def test_cp_r_of_a_running_job_exits_0(mnt: Mount, emulator: Emulator, tmp_path: Path) -> None:
    jobname = emulator.submit("echo started; sleep 300", timelimit=1)
    wait_for(lambda: (mnt.job(jobname) / "status").read_text() == "Running\n", what="Running")
    try:
        result = sh(f"cp -r {mnt.job(jobname)} {tmp_path}/copy")
        assert result.returncode == 0, result.stderr
        assert (tmp_path / "copy" / "status").read_text() == "Running\n"
    finally:
        sh(f"echo kill > {mnt.job(jobname)}/ctl")


def test_rsync_a_copies_a_job_directory(mnt: Mount, finished: str, tmp_path: Path) -> None:
    read_log(mnt, finished)
    result = sh(f"rsync -a {mnt.job(finished)}/ {tmp_path}/copy/")
    assert result.returncode == 0, result.stderr
    assert tree(tmp_path / "copy") == tree(mnt.job(finished))
    assert_ordinary_copy(tmp_path / "copy")


def test_tar_c_archives_a_job_directory(mnt: Mount, finished: str, tmp_path: Path) -> None:
    read_log(mnt, finished)
    result = sh(f"tar cf {tmp_path}/job.tar -C {mnt.jobs} {finished}")
    assert result.returncode == 0, result.stderr
    with tarfile.open(tmp_path / "job.tar") as archive:
        archive.extractall(tmp_path / "out", filter="tar")
    assert tree(tmp_path / "out" / finished) == tree(mnt.job(finished))


@pytest.fixture(scope="module")
def user_mount(emulator: Emulator) -> Iterator[Mount]:
    """As root: a mount that a normal user (nobody) owns through -o uid=,gid= and
    may use (allow_other), on a path that user can reach. As a normal user: a
    mount of the user's own."""
    workdir = Path(tempfile.mkdtemp(prefix="jhfs-copy-"))
    workdir.chmod(0o755)  # the normal user must reach the mount point
    options = ("-o", f"allow_other,uid={NOBODY},gid={NOBODY}") if os.getuid() == 0 else ()
    try:
        with mount_jhfs(emulator, workdir, *options) as mount:
            yield mount
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def as_user(command: str) -> subprocess.CompletedProcess[str]:
    """A shell line run by a normal user: nobody when the tests run as root
    (who may do anything whatever the modes)."""
    user = ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups"]
    return subprocess.run(
        [*(user if os.getuid() == 0 else []), "bash", "-c", command],
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.fixture
def user_dir() -> Iterator[Path]:
    """A directory the normal user owns and can reach."""
    path = Path(tempfile.mkdtemp(prefix="jhfs-copy-dst-"))
    if os.getuid() == 0:
        os.chown(path, NOBODY, NOBODY)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def test_a_normal_user_copies_twice_and_removes_the_copy(
    user_mount: Mount, finished: str, user_dir: Path
) -> None:
    job = user_mount.job(finished)
    assert stat.S_IMODE((job / "status").stat().st_mode) == 0o644
    assert (job / "status").stat().st_uid == (os.getuid() or NOBODY)
    for _ in range(2):  # the second copies over the first's files
        result = as_user(f"cp -r {job}/. {user_dir}/copy")
        assert result.returncode == 0, result.stderr
    assert tree(user_dir / "copy") == tree(job)
    assert_ordinary_copy(user_dir / "copy")
    result = as_user(f"rm -rf {user_dir}/copy")
    assert result.returncode == 0, result.stderr
    assert not (user_dir / "copy").exists()


@pytest.mark.parametrize(
    "command",
    ["echo x > {job}/status", "echo x >> {job}/files/input/code.jl", "touch {job}/new"],
)
def test_the_owner_still_cannot_write_the_tree(
    user_mount: Mount, finished: str, command: str
) -> None:
    # The modes let the owner write; the kernel asks jhfs, which refuses.
    result = as_user(command.format(job=user_mount.job(finished)))
    assert result.returncode != 0
    assert "Read-only file system" in result.stderr


def test_the_owner_may_write_ctl(user_mount: Mount, finished: str) -> None:
    # The write reaches jhfs (not "Permission denied"), which says the job is over.
    result = as_user(f"echo kill > {user_mount.job(finished)}/ctl")
    assert result.returncode != 0
    assert "No such process" in result.stderr
