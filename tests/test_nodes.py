"""The nodes, directly: what each path holds, its attributes, what it refuses.

The state layer is replaced by small stand-ins holding parsed Job objects, so
these tests need no server; the real layers are exercised through mounts in
test_mount_*.py.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import stat
from dataclasses import replace
from typing import Any

import pytest

from jhfs.client import Job, NotFoundError
from jhfs.client.models import parse_job
from jhfs.nodes import MountContext, RootDir, resolve
from jhfs.nodes.errors import (
    BadFileHandle,
    InvalidInput,
    IsADirectory,
    NoSuchAttribute,
    NoSuchName,
    NotADirectory,
    ReadOnly,
    WriteOnly,
)
from jhfs.state.errors import FileNotReadyError

HASH_HEX = "ab" * 32
RUNNING: dict[str, Any] = {
    "jobname": "jr-running",
    "status": "Running",
    "outputs": "",
    "submittimestamp": "2024-05-01T10:00:00.000+00:00",
    "starttimestamp": "2024-05-01T10:00:05.000+00:00",
    "endtimestamp": None,
    "proxy_link": "https://jr-running.example.com/",
    "files": [
        {"type": "input", "name": "code.jl", "size": 12,
         "hash": {"algorithm": "sha2_256", "value": HASH_HEX},
         "upload_timestamp": "2024-05-01T09:59:59.000+00:00"},
        {"type": "result", "name": "late.bin", "size": None,
         "hash": {"algorithm": None, "value": None},
         "upload_timestamp": "2024-05-01T10:01:00.000+00:00"},
        {"type": "odd", "name": "../escape", "size": 1,
         "hash": {"algorithm": "sha2_256", "value": HASH_HEX},
         "upload_timestamp": "2024-05-01T10:01:00.000+00:00"},
    ],
}  # fmt: skip
DONE: dict[str, Any] = {
    "jobname": "jr-done",
    "status": "Completed",
    "outputs": '{"answer": 42}',
    "submittimestamp": "2024-04-01T08:00:00.000+00:00",
    "starttimestamp": "2024-04-01T08:00:01.000+00:00",
    "endtimestamp": "2024-04-01T09:00:00.000+00:00",
    "files": [],
}


class Registry:
    """Stands in for JobRegistry: jobs by name."""

    def __init__(self, *jobs: Job) -> None:
        self.jobs = {job.jobname: job for job in jobs}
        self.refreshed: list[str] = []
        self.fetched: list[str] = []  # get() calls: a fresh copy wanted

    def list_jobs(self) -> list[Job]:
        return list(self.jobs.values())

    def cached(self, jobname: str) -> Job | None:
        return self.jobs.get(jobname)

    def get(self, jobname: str) -> Job:
        self.fetched.append(jobname)
        if jobname not in self.jobs:
            raise NotFoundError(f"no job {jobname}")
        return self.jobs[jobname]

    def refresh(self, jobname: str) -> Job:
        self.refreshed.append(jobname)
        return self.get(jobname)


class Client:
    """Stands in for JuliaHubClient's control calls: records what would be sent."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, ...]] = []

    def kill_job(self, jobname: str) -> None:
        self.sent.append(("kill", jobname))

    def extend_job(self, jobname: str, hours: int) -> None:
        self.sent.append(("extend", jobname, str(hours)))


@pytest.fixture
def ctx() -> MountContext:
    return MountContext(
        client=Client(),  # type: ignore[arg-type]
        registry=Registry(parse_job(RUNNING), parse_job(DONE)),  # type: ignore[arg-type]
        logs=None,  # type: ignore[arg-type]
        files=None,  # type: ignore[arg-type]
        uid=1234,
        gid=5678,
        mounted_at_ns=1_700_000_000 * 10**9,
    )


def node(ctx: MountContext, path: str) -> Any:
    return resolve(RootDir(ctx), path)


def ns(iso: str) -> int:
    return int(dt.datetime.fromisoformat(iso).timestamp()) * 10**9


def read_all(ctx: MountContext, path: str) -> bytes:
    return bytes(node(ctx, path).open(os.O_RDONLY).read(1 << 20, 0))


def test_root_and_jobs(ctx: MountContext) -> None:
    assert node(ctx, "/").readdir() == ["jobs"]
    assert sorted(node(ctx, "/jobs").readdir()) == ["jr-done", "jr-running"]
    attrs = node(ctx, "/jobs").getattr()
    assert stat.S_ISDIR(attrs["st_mode"])
    assert (attrs["st_uid"], attrs["st_gid"]) == (1234, 5678)


def test_directory_link_counts_count_subdirectories(ctx: MountContext) -> None:
    links = {
        "/": 3,
        "/jobs": 1,  # not counted (that would need the listing)
        "/jobs/jr-running": 3,
        "/jobs/jr-running/files": 5,
        "/jobs/jr-running/files/input": 2,
    }
    assert {path: node(ctx, path).getattr()["st_nlink"] for path in links} == links


def test_job_directory_attributes_come_from_any_copy_and_entries_from_a_fresh_one(
    ctx: MountContext,
) -> None:
    registry = ctx.registry
    assert isinstance(registry, Registry)
    attrs = node(ctx, "/jobs/jr-running").getattr()
    assert attrs["st_mtime"] == ns("2024-05-01T10:00:00+00:00")
    assert registry.fetched == []  # `ls -l jobs/` costs no fresh copy of a running job
    node(ctx, "/jobs/jr-running/status")
    node(ctx, "/jobs/jr-running").readdir()
    assert registry.fetched == ["jr-running", "jr-running"]
    node(ctx, "/jobs/jr-done/status")
    assert registry.fetched == ["jr-running", "jr-running"]  # finished: never changes
    with pytest.raises(NotFoundError):
        node(ctx, "/jobs/jr-unknown")  # not held: asked for


def test_handles_read_into_a_buffer(ctx: MountContext) -> None:
    handle = node(ctx, "/jobs/jr-done/status").open(os.O_RDONLY)
    buf = bytearray(b"x" * 16)
    assert handle.readinto(memoryview(buf), 2) == len(b"mpleted\n")
    assert bytes(buf) == b"mpleted\n" + b"x" * 8
    assert handle.readinto(memoryview(buf), 100) == 0


def test_job_directory_entries(ctx: MountContext) -> None:
    running = node(ctx, "/jobs/jr-running").readdir()
    assert sorted(running) == sorted(
        ["status", "info.json", "results", "logs", "logs.jsonl", "files", "ctl", "hostname"]
    )
    assert "hostname" not in node(ctx, "/jobs/jr-done").readdir()
    with pytest.raises(NoSuchName):
        node(ctx, "/jobs/jr-done/hostname")


def test_unknown_job_is_the_registry_not_found(ctx: MountContext) -> None:
    with pytest.raises(NotFoundError):
        node(ctx, "/jobs/jr-nope/status")


def test_generated_files_sizes_match_their_content(ctx: MountContext) -> None:
    expected = {
        "/jobs/jr-done/status": b"Completed\n",
        "/jobs/jr-done/results": b'{"answer": 42}',
        "/jobs/jr-running/status": b"Running\n",
        "/jobs/jr-running/hostname": b"jr-running.example.com\n",
    }
    for path, content in expected.items():
        assert read_all(ctx, path) == content
        assert node(ctx, path).getattr()["st_size"] == len(content)
    info = read_all(ctx, "/jobs/jr-done/info.json")
    assert info.endswith(b"\n")
    assert json.loads(info) == DONE
    assert node(ctx, "/jobs/jr-done/info.json").getattr()["st_size"] == len(info)


def test_times(ctx: MountContext) -> None:
    assert node(ctx, "/jobs/jr-done").getattr()["st_mtime"] == ns(DONE["submittimestamp"])
    assert node(ctx, "/jobs/jr-done/status").getattr()["st_mtime"] == ns(DONE["endtimestamp"])
    running_status = node(ctx, "/jobs/jr-running/status").getattr()["st_mtime"]
    assert running_status == ns(RUNNING["submittimestamp"])
    code = node(ctx, "/jobs/jr-running/files/input/code.jl").getattr()
    assert code["st_mtime"] == ns(RUNNING["files"][0]["upload_timestamp"])
    assert code["st_size"] == 12


def test_page_caching_follows_whether_the_job_can_change(ctx: MountContext) -> None:
    done = node(ctx, "/jobs/jr-done/status").open(os.O_RDONLY)
    assert (done.keep_cache, done.direct_io) == (True, False)
    running = node(ctx, "/jobs/jr-running/status").open(os.O_RDONLY)
    assert (running.keep_cache, running.direct_io) == (False, True)


def test_files_directories_skip_names_that_cannot_be_paths(ctx: MountContext) -> None:
    assert node(ctx, "/jobs/jr-running/files").readdir() == ["input", "odd", "result"]
    assert node(ctx, "/jobs/jr-running/files/odd").readdir() == []
    assert node(ctx, "/jobs/jr-running/files/result").readdir() == ["late.bin"]


def test_jobs_whose_names_cannot_be_paths_are_left_out_of_the_listing(
    ctx: MountContext,
) -> None:
    odd = [
        replace(parse_job(DONE), jobname=name)
        for name in ("jr-a/b", "jr-x\0y", "jr-\ud800", "jr-\udcff")
    ]
    listing = Registry(parse_job(RUNNING), *odd, parse_job(DONE))
    odd_ctx = replace(ctx, registry=listing)  # type: ignore[arg-type]
    assert node(odd_ctx, "/jobs").readdir() == ["jr-running", "jr-done"]
    assert [name for name, _ in node(odd_ctx, "/jobs").readdir_plus()] == [
        "jr-running", "jr-done",
    ]  # fmt: skip


def test_a_lone_surrogate_from_the_server_is_readable_in_results_status_and_info_json(
    ctx: MountContext,
) -> None:
    raw = {**DONE, "outputs": "ok \ud800 done"}  # what json.loads makes of "\\ud800"
    raw["status"] = "Exploded\ud800"  # an unknown status is passed through
    odd_ctx = replace(ctx, registry=Registry(parse_job(raw)))  # type: ignore[arg-type]
    assert node(odd_ctx, "/jobs/jr-done/results").render() == b"ok ? done"
    assert node(odd_ctx, "/jobs/jr-done/status").render() == b"Exploded?\n"
    info = node(odd_ctx, "/jobs/jr-done/info.json").render()
    assert json.loads(info)["outputs"] == "ok \ud800 done"


def test_unfinished_upload_is_eagain_at_open(ctx: MountContext) -> None:
    late = node(ctx, "/jobs/jr-running/files/result/late.bin")
    assert late.getattr()["st_size"] == 0
    with pytest.raises(FileNotReadyError):
        late.open(os.O_RDONLY)
    assert "user.jhfs.hash" not in late.listxattr()


def test_xattrs(ctx: MountContext) -> None:
    code = node(ctx, "/jobs/jr-running/files/input/code.jl")
    assert sorted(code.listxattr()) == [
        "user.jhfs.hash", "user.jhfs.type", "user.jhfs.upload_timestamp",
    ]  # fmt: skip
    assert code.getxattr("user.jhfs.hash") == f"sha2_256:{HASH_HEX}".encode()
    assert code.getxattr("user.jhfs.type") == b"input"
    uploaded = code.getxattr("user.jhfs.upload_timestamp").decode()
    assert dt.datetime.fromisoformat(uploaded) == dt.datetime.fromisoformat(
        RUNNING["files"][0]["upload_timestamp"]
    )
    for path, name in [(code, "user.other"), (node(ctx, "/jobs/jr-done/status"), "user.jhfs.hash")]:
        with pytest.raises(NoSuchAttribute):
            path.getxattr(name)


def test_an_unknown_hash_algorithm_with_a_lone_surrogate_is_a_readable_xattr(
    ctx: MountContext,
) -> None:
    raw = json.loads(json.dumps(RUNNING))
    raw["files"][0]["hash"]["algorithm"] = "md\ud8005"
    odd_ctx = replace(ctx, registry=Registry(parse_job(raw)))  # type: ignore[arg-type]
    code = node(odd_ctx, "/jobs/jr-running/files/input/code.jl")
    assert code.getxattr("user.jhfs.hash").startswith(b"md?5:")


@pytest.mark.parametrize("path", ["/jobs/jr-done/status", "/jobs/jr-running/files/input/code.jl"])
@pytest.mark.parametrize("flags", [os.O_WRONLY, os.O_RDWR])
def test_read_only_files_refuse_writing_opens(ctx: MountContext, path: str, flags: int) -> None:
    with pytest.raises(ReadOnly):
        node(ctx, path).open(flags)
    with pytest.raises(ReadOnly):
        node(ctx, path).truncate(0)


def test_ctl_is_write_only(ctx: MountContext) -> None:
    ctl = node(ctx, "/jobs/jr-running/ctl")
    assert ctl.getattr()["st_mode"] == stat.S_IFREG | 0o200
    for flags in (os.O_RDONLY, os.O_RDWR):
        with pytest.raises(WriteOnly):
            ctl.open(flags)
    ctl.truncate(0)  # the shell's O_TRUNC: accepted, nothing happens
    with pytest.raises(InvalidInput):
        ctl.truncate(5)
    with pytest.raises(BadFileHandle):
        ctl.open(os.O_WRONLY).read(10, 0)


def test_a_file_open_for_reading_cannot_be_written(ctx: MountContext) -> None:
    with pytest.raises(BadFileHandle):
        node(ctx, "/jobs/jr-done/status").open(os.O_RDONLY).write(b"x", 0)


def test_ctl_write_sends_each_command_then_refreshes(ctx: MountContext) -> None:
    handle = node(ctx, "/jobs/jr-running/ctl").open(os.O_WRONLY | os.O_TRUNC)
    assert handle.direct_io
    assert handle.write(b"extend 2\nkill\n", 0) == len(b"extend 2\nkill\n")
    assert ctx.client.sent == [("extend", "jr-running", "2"), ("kill", "jr-running")]  # type: ignore[attr-defined]
    assert ctx.registry.refreshed == ["jr-running"]  # type: ignore[attr-defined]


def test_bad_ctl_write_sends_nothing(ctx: MountContext) -> None:
    handle = node(ctx, "/jobs/jr-running/ctl").open(os.O_WRONLY)
    with pytest.raises(InvalidInput):
        handle.write(b"kill\nextend 0\n", 0)
    assert ctx.client.sent == []  # type: ignore[attr-defined]
    assert ctx.registry.refreshed == []  # type: ignore[attr-defined]


def test_directories_are_not_files_and_files_not_directories(ctx: MountContext) -> None:
    with pytest.raises(IsADirectory):
        node(ctx, "/jobs/jr-done").open(os.O_RDONLY)
    with pytest.raises(NotADirectory):
        node(ctx, "/jobs/jr-done/status/x")
    with pytest.raises(NotADirectory):
        node(ctx, "/jobs/jr-done/status").readdir()


@pytest.mark.parametrize(
    "path",
    [
        "/\udcff",
        "/jobs/jr-\udcff",
        "/jobs/jr-done/status\udcff",
        "/jobs/jr-done/files/\udcff",
        "/jobs/jr-running/files/input/code.jl\udcff",
        "/jobs/jr-\udcff/status",
    ],
)
def test_a_name_whose_bytes_are_not_utf8_is_no_such_name_and_asks_nothing(
    ctx: MountContext, path: str
) -> None:
    # mfusepy decodes a path's bytes with surrogateescape: b"\xff" is "\udcff".
    with pytest.raises(NoSuchName):
        node(ctx, path)
    fetched = ctx.registry.fetched  # type: ignore[attr-defined]
    assert not any("\udcff" in jobname for jobname in fetched)  # the server is not asked
