"""The tree through a real mount: ls, cat, stat, getfattr, df, and what is refused."""

from __future__ import annotations

import base64
import datetime as dt
import errno
import json
import os
from pathlib import Path

import pytest
import requests
from conftest import Emulator, wait_for
from mounting import Mount, module_emulator, module_mount, mount_jhfs, sh

CODE = b'println("hello")\n'
LOSS = '{"loss": 0.25}'


emulator = module_emulator()
mnt = module_mount("tree")


@pytest.fixture(scope="module")
def finished(emulator: Emulator) -> str:
    return emulator.create_finished(
        status="Completed",
        log_lines=50,
        outputs=LOSS,
        files=[
            {"type": "input", "name": "code.jl", "content": base64.b64encode(CODE).decode()},
            {"type": "source", "name": "code.jl", "content": base64.b64encode(CODE).decode()},
            {"type": "result", "name": "out.bin", "size": 123_457},
        ],
    )


def server_job(emulator: Emulator, jobname: str) -> dict[str, object]:
    response = requests.get(
        f"{emulator.url}/api/rest/jobs/{jobname}",
        headers={**emulator.headers, "X-Hasura-Role": "jhuser", "X-JuliaHub-Ensure-JS": "true"},
        timeout=30,
    )
    response.raise_for_status()
    details = response.json()["details"]
    assert len(details) == 1
    return dict(details[0])


def epoch(timestamp: object) -> float:
    assert isinstance(timestamp, str)
    return dt.datetime.fromisoformat(timestamp).timestamp()


def test_job_directory_holds_the_documented_entries(mnt: Mount, finished: str) -> None:
    listing = sh(f"ls {mnt.jobs}")
    assert listing.returncode == 0, listing.stderr
    assert finished in listing.stdout.split()
    entries = sorted(os.listdir(mnt.job(finished)))
    assert entries == [
        "ctl", "files", "info.json", "logs", "logs.jsonl", "results", "server.json", "status"
    ]  # fmt: skip
    assert sorted(os.listdir(mnt.job(finished) / "files")) == ["input", "result", "source"]
    assert os.listdir(mnt.job(finished) / "files" / "result") == ["out.bin"]


def test_status_info_results_read_what_the_server_says(
    mnt: Mount, emulator: Emulator, finished: str
) -> None:
    job = mnt.job(finished)
    assert (job / "status").read_bytes() == b"Completed\n"
    server = (job / "server.json").read_text()
    assert server.endswith("}\n")
    assert json.loads(server) == server_job(emulator, finished)
    info = json.loads((job / "info.json").read_text())
    assert [info["id"], info["status"], info["results"]] == [finished, "Completed", LOSS]
    assert (job / "results").read_bytes() == b'{"loss": 0.25}'


def test_sizes_are_exactly_what_a_read_returns(mnt: Mount, finished: str) -> None:
    job = mnt.job(finished)
    for name in ("status", "info.json", "server.json", "results"):
        data = (job / name).read_bytes()
        assert (job / name).stat().st_size == len(data), name
    logs = (job / "logs").read_bytes()
    # st_size of logs is what is known so far, as the kernel saw it <= 1 s ago.
    wait_for(lambda: (job / "logs").stat().st_size == len(logs), what="logs st_size")
    assert (job / "files" / "result" / "out.bin").stat().st_size == 123_457
    assert (job / "files" / "input" / "code.jl").stat().st_size == len(CODE)


def test_times_follow_the_job(mnt: Mount, emulator: Emulator, finished: str) -> None:
    wire = server_job(emulator, finished)
    job = mnt.job(finished)
    assert job.stat().st_mtime == pytest.approx(epoch(wire["submittimestamp"]), abs=1e-3)
    assert (job / "status").stat().st_mtime == pytest.approx(epoch(wire["endtimestamp"]), abs=1e-3)
    files = wire["files"]
    assert isinstance(files, list)
    uploaded = next(f["upload_timestamp"] for f in files if f["name"] == "out.bin")
    out = job / "files" / "result" / "out.bin"
    assert out.stat().st_mtime == pytest.approx(epoch(uploaded), abs=1e-3)


def test_ls_lt_puts_the_newest_job_first(mnt: Mount, emulator: Emulator, finished: str) -> None:
    newer = emulator.create_finished(status="Failed")
    # The listing may be up to 2 s old: poll until the new job shows.
    listing = wait_for(
        lambda: (out := sh(f"ls -t {mnt.jobs}").stdout.split()) and newer in out and out,
        what="the new job in ls",
    )
    assert listing.index(newer) < listing.index(finished)


def test_modes(mnt: Mount, finished: str) -> None:
    job = mnt.job(finished)
    assert job.stat().st_mode & 0o777 == 0o755
    for name in ("status", "info.json", "results", "logs", "ctl", "files/result/out.bin"):
        assert (job / name).stat().st_mode & 0o777 == 0o644, name
    assert (job / "files" / "result").stat().st_mode & 0o777 == 0o755
    long_listing = sh(f"ls -l {job}").stdout
    assert any(line.startswith("-rw-r--r--") and line.endswith(" ctl") for line in
               long_listing.splitlines())  # fmt: skip


def test_getfattr_shows_hash_type_and_upload_time(
    mnt: Mount, emulator: Emulator, finished: str
) -> None:
    out = mnt.job(finished) / "files" / "result" / "out.bin"
    dump = sh(f"getfattr -d {out}")
    assert dump.returncode == 0, dump.stderr
    files = server_job(emulator, finished)["files"]
    assert isinstance(files, list)
    wire = next(f for f in files if f["name"] == "out.bin")
    digest = base64.b64decode(wire["hash"]["value"]).hex()
    assert f'user.jhfs.hash="sha2_256:{digest}"' in dump.stdout
    assert 'user.jhfs.type="result"' in dump.stdout
    uploaded = dump.stdout.split('user.jhfs.upload_timestamp="')[1].split('"')[0]
    assert epoch(uploaded) == pytest.approx(epoch(wire["upload_timestamp"]), abs=1e-3)
    missing = sh(f"getfattr -n user.jhfs.nothing {out}")
    assert missing.returncode != 0
    assert "No such attribute" in missing.stderr
    with pytest.raises(OSError) as raised:
        os.getxattr(mnt.job(finished) / "status", "user.jhfs.hash")
    assert raised.value.errno == errno.ENODATA


def test_only_the_user_xattr_namespace_is_supported(mnt: Mount, finished: str) -> None:
    # ENOTSUP (not ENODATA) for security.* and system.*: `ls -l` then stops
    # asking for them, instead of three round trips per entry.
    for path in (mnt.jobs, mnt.job(finished), mnt.job(finished) / "files" / "result" / "out.bin"):
        for name in ("security.selinux", "system.posix_acl_access", "trusted.x"):
            with pytest.raises(OSError) as raised:
                os.getxattr(path, name)
            assert raised.value.errno == errno.ENOTSUP, (path, name)
        with pytest.raises(OSError) as raised:
            os.getxattr(path, "user.other")
        assert raised.value.errno == errno.ENODATA


def test_df_answers(mnt: Mount) -> None:
    result = sh(f"df {mnt.path}")
    assert result.returncode == 0, result.stderr
    assert str(mnt.path) in result.stdout
    assert os.statvfs(mnt.path).f_namemax == 255


def test_unknown_job_is_enoent(mnt: Mount) -> None:
    result = sh(f"cat {mnt.jobs}/jr-doesnotexist/status")
    assert result.returncode != 0
    assert "No such file or directory" in result.stderr
    with pytest.raises(FileNotFoundError):
        (mnt.job("jr-doesnotexist")).stat()


def test_unknown_entry_of_a_job_is_enoent(mnt: Mount, finished: str) -> None:
    for path in ("nothing", "hostname", "files/output", "files/result/other.bin"):
        with pytest.raises(FileNotFoundError):
            (mnt.job(finished) / path).stat()


@pytest.mark.parametrize(
    "command",
    [
        "touch {job}/new",
        "mkdir {job}/dir",
        "rm {job}/status",
        "mv {job}/status {job}/status2",
        "touch {job}/status",
        "echo hi > {job}/status",
        "chmod 600 {job}/status",
        "ln -s status {job}/link",
        "rm -r {job}/files/input",
        "cp /etc/hostname {job}/files/input/",
        "truncate -s 0 {job}/info.json",
        "setfattr -n user.x -v y {job}/files/input/code.jl",
    ],
)
def test_writes_are_erofs(mnt: Mount, finished: str, command: str) -> None:
    result = sh(command.format(job=mnt.job(finished)))
    assert result.returncode != 0
    assert "Read-only file system" in result.stderr, result.stderr
    assert sorted(os.listdir(mnt.job(finished))) == [
        "ctl", "files", "info.json", "logs", "logs.jsonl", "results", "server.json", "status",
    ]  # fmt: skip


def test_hostname_only_for_jobs_with_a_proxy_link(mnt: Mount, emulator: Emulator) -> None:
    exposed = emulator.create_finished(proxy_link="https://jr-app.example.com/")
    job = mnt.job(exposed)
    assert (job / "hostname").read_text() == "jr-app.example.com\n"
    assert "hostname" in os.listdir(job)


def test_job_outside_the_listing_is_reachable_by_name(emulator: Emulator, tmp_path: Path) -> None:
    older = emulator.create_finished(status="Completed", outputs="old")
    emulator.create_finished(status="Completed")
    with mount_jhfs(emulator, tmp_path, "--jobs-limit", "1") as mount:
        listed = os.listdir(mount.jobs)
        assert len(listed) == 1
        assert older not in listed
        assert (mount.job(older) / "results").read_text() == "old"


def test_ls_l_of_jobs_is_one_listing_call(emulator: Emulator, tmp_path: Path) -> None:
    emulator.admin("POST", "jobs", {"finished": {"status": "Completed"}, "count": 20})
    with mount_jhfs(emulator, tmp_path) as mount:
        before = emulator.stats()["requests"]
        result = sh(f"ls -l {mount.jobs}")
        assert result.returncode == 0, result.stderr
        after = emulator.stats()["requests"]
    assert len(result.stdout.splitlines()) > 20
    assert after.get("get_jobs", 0) - before.get("get_jobs", 0) == 1
    assert after.get("job", 0) == before.get("job", 0)


def test_a_listing_longer_than_one_kernel_buffer_has_every_job_once(
    fresh_emulator: Emulator, tmp_path: Path
) -> None:
    # The kernel asks for it in parts, from the position where each part ended.
    created = fresh_emulator.admin(
        "POST", "jobs", {"finished": {"status": "Failed"}, "count": 3000}
    )
    with mount_jhfs(fresh_emulator, tmp_path, "--jobs-limit", "5000") as mount:
        listed = sh(f"ls -f {mount.jobs}").stdout.split()
        long_listing = sh(f"ls -l {mount.jobs}").stdout.splitlines()[1:]  # after "total"
    assert sorted(name for name in listed if name not in (".", "..")) == sorted(created["jobnames"])
    assert len(long_listing) == 3000
    assert all(line.startswith("drwxr-xr-x") for line in long_listing)


def test_a_job_that_ends_on_its_own_reads_whole(mnt: Mount, emulator: Emulator) -> None:
    # The kernel keeps a file's size for a moment: when the job changes, jhfs
    # has it forget the old size, or "Completed\n" would read cut at 8 bytes.
    jobname = emulator.submit("while [ ! -e go ]; do sleep 0.05; done")
    work_dir = Path(emulator.admin("GET", f"jobs/{jobname}")["work_dir"])
    job = mnt.job(jobname)
    wait_for(lambda: (job / "status").read_text() == "Running\n", what="the job to run")
    seen: set[str] = set()

    def ended() -> bool:
        # stat first, as ls would: the kernel then holds the size it was told.
        result = sh(f"stat {job}/status {job}/info.json >/dev/null; cat {job}/status")
        seen.add(result.stdout)
        return result.stdout != "Running\n"

    (work_dir / "go").touch()
    wait_for(ended, what="the job to end")
    assert seen <= {"Running\n", "Completed\n"}, seen
    assert json.loads((job / "info.json").read_text())["status"] == "Completed"
