"""The nodes, directly: what each path holds, its attributes, what it refuses.

The state layer is replaced by small stand-ins holding parsed Job objects, so
these tests need no server; the real layers are exercised through mounts in
test_mount_*.py.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
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
    JobIsOver,
    NoSuchAttribute,
    NoSuchName,
    NotADirectory,
    NotASymlink,
    ReadOnly,
)
from jhfs.state.errors import FileNotReadyError
from jhfs.state.jobwait import JobWaits

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
        self.next_copies: list[Job] = []  # what refresh() finds next, before `jobs`

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
        if self.next_copies:
            self.jobs[jobname] = self.next_copies.pop(0)
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
    registry = Registry(parse_job(RUNNING), parse_job(DONE))
    return MountContext(
        client=Client(),  # type: ignore[arg-type]
        registry=registry,  # type: ignore[arg-type]
        logs=None,  # type: ignore[arg-type]
        files=None,  # type: ignore[arg-type]
        waits=JobWaits(registry, lambda: False),  # type: ignore[arg-type]
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
    assert node(ctx, "/").readdir() == ["jobs", "latest", "by-alias", "by-status"]
    assert sorted(node(ctx, "/jobs").readdir()) == ["jr-done", "jr-running"]
    attrs = node(ctx, "/jobs").getattr()
    assert stat.S_ISDIR(attrs["st_mode"])
    assert (attrs["st_uid"], attrs["st_gid"]) == (1234, 5678)


def test_directory_link_counts_count_subdirectories(ctx: MountContext) -> None:
    links = {
        "/": 5,
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
        [
            "status",
            "info.json",
            "server.json",
            "results",
            "logs",
            "logs.jsonl",
            "files",
            "ctl",
            "hostname",
        ]
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
    for name in ("info.json", "server.json"):
        text = read_all(ctx, f"/jobs/jr-done/{name}")
        assert text.endswith(b"\n")
        assert node(ctx, f"/jobs/jr-done/{name}").getattr()["st_size"] == len(text)
    assert json.loads(read_all(ctx, "/jobs/jr-done/server.json")) == DONE


def test_info_json_has_juliahub_jl_fields_whatever_the_server_sent(ctx: MountContext) -> None:
    info = json.loads(read_all(ctx, "/jobs/jr-running/info.json"))
    assert info == {
        "id": "jr-running",
        "alias": None,
        "status": "Running",
        "env": {},
        "results": "",
        "files": [
            {"jobname": "jr-running", "type": "input", "filename": "code.jl", "size": 12,
             "hash": {"algorithm": "sha2_256", "hash": HASH_HEX},
             "_upload_timestamp": "2024-05-01T09:59:59.000Z"},
            {"jobname": "jr-running", "type": "result", "filename": "late.bin", "size": 0,
             "hash": None, "_upload_timestamp": "2024-05-01T10:01:00.000Z"},
            {"jobname": "jr-running", "type": "odd", "filename": "../escape", "size": 1,
             "hash": {"algorithm": "sha2_256", "hash": HASH_HEX},
             "_upload_timestamp": "2024-05-01T10:01:00.000Z"},
        ],
        "hostname": "jr-running.example.com",
        "_timestamp_submit": "2024-05-01T10:00:00.000Z",
        "_timestamp_start": "2024-05-01T10:00:05.000Z",
        "_timestamp_end": None,
    }  # fmt: skip


@pytest.mark.parametrize(
    "inputs",
    [
        '{"ALPHA": "0.1", "N": 3}',  # plain JSON text
        '{\\"ALPHA\\": \\"0.1\\", \\"N\\": 3}',  # its quotes backslash-escaped
        json.dumps(json.dumps({"ALPHA": "0.1", "N": 3})),  # JSON text of JSON text
    ],
)
def test_info_json_env_is_an_object_however_the_server_quotes_inputs(
    ctx: MountContext, inputs: str
) -> None:
    job = parse_job({**DONE, "inputs": inputs, "submittimestamp": 1_714_550_400_123})
    odd_ctx = replace(ctx, registry=Registry(job))  # type: ignore[arg-type]
    info = json.loads(read_all(odd_ctx, "/jobs/jr-done/info.json"))
    assert info["env"] == {"ALPHA": "0.1", "N": 3}
    assert info["_timestamp_submit"] == "2024-05-01T08:00:00.123Z"  # integer ms on the wire
    assert json.loads(read_all(odd_ctx, "/jobs/jr-done/server.json"))["inputs"] == inputs


def test_info_json_env_of_null_inputs_is_an_empty_object(ctx: MountContext) -> None:
    registry = Registry(parse_job({**DONE, "inputs": None}))
    odd_ctx = replace(ctx, registry=registry)  # type: ignore[arg-type]
    assert json.loads(read_all(odd_ctx, "/jobs/jr-done/info.json"))["env"] == {}


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


class Finishing(Registry):
    """A registry whose running job is Completed from the `after`-th get() on."""

    def __init__(self, after: int, *jobs: Job) -> None:
        super().__init__(*jobs)
        self.after = after

    def get(self, jobname: str) -> Job:
        job = super().get(jobname)
        if len(self.fetched) >= self.after:
            return replace(job, status="Completed")
        return job


def test_wait_reads_the_final_status_at_once_for_a_finished_job(ctx: MountContext) -> None:
    # Not listed: cp -r of a running job's directory would wait for the job.
    assert "wait" not in node(ctx, "/jobs/jr-done").readdir()
    wait = node(ctx, "/jobs/jr-done/wait")
    assert wait.getattr()["st_size"] == len(b"Completed\n")
    assert wait.getattr()["st_mtime"] == ns(DONE["endtimestamp"])
    handle = wait.open(os.O_RDONLY)
    assert handle.direct_io  # never cut at a size the kernel saw while the job ran
    assert handle.read(100, 0) == b"Completed\n"
    assert handle.read(100, 10) == b""


def test_wait_of_a_running_job_has_size_0_and_reads_once_the_job_is_done(
    ctx: MountContext,
) -> None:
    # The lookup of jr-running/ asks once, then the wait asks until the third get().
    registry = Finishing(3, parse_job(RUNNING))
    waiting = replace(ctx, registry=registry, waits=JobWaits(registry, lambda: False))  # type: ignore[arg-type]
    wait = node(waiting, "/jobs/jr-running/wait")
    assert wait.getattr()["st_size"] == 0
    handle = wait.open(os.O_RDONLY)
    assert handle.direct_io
    assert handle.read(100, 0) == b"Completed\n"
    assert registry.fetched == ["jr-running"] * 3
    assert handle.read(100, 10) == b""
    assert registry.fetched == ["jr-running"] * 3  # the open file keeps what it read


def test_wait_refuses_writing(ctx: MountContext) -> None:
    with pytest.raises(ReadOnly):
        node(ctx, "/jobs/jr-done/wait").open(os.O_WRONLY)


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
    assert json.loads(info)["results"] == "ok \ud800 done"
    server = node(odd_ctx, "/jobs/jr-done/server.json").render()
    assert json.loads(server)["outputs"] == "ok \ud800 done"


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


def test_ctl_reads_its_grammar_and_the_last_outcome(ctx: MountContext) -> None:
    ctl = node(ctx, "/jobs/jr-running/ctl")
    attrs = ctl.getattr()
    assert attrs["st_mode"] == stat.S_IFREG | 0o644
    text = read_all(ctx, "/jobs/jr-running/ctl")
    assert attrs["st_size"] == len(text)
    assert text.decode().splitlines() == [
        "kill            stop the job",
        "extend HOURS    extend its time limit by HOURS whole hours (1 or more)",
        "last: none",
    ]
    ctl.open(os.O_WRONLY).write(b"extend 2\n", 0)
    after = read_all(ctx, "/jobs/jr-running/ctl")
    assert after.decode().splitlines()[-1] == "last: extend 2: ok"
    assert node(ctx, "/jobs/jr-running/ctl").getattr()["st_size"] == len(after)
    ctl.truncate(0)  # the shell's O_TRUNC: accepted, nothing happens
    with pytest.raises(InvalidInput):
        ctl.truncate(5)


def test_a_file_open_for_reading_cannot_be_written(ctx: MountContext) -> None:
    with pytest.raises(BadFileHandle):
        node(ctx, "/jobs/jr-done/status").open(os.O_RDONLY).write(b"x", 0)


def test_ctl_write_sends_each_command_then_refreshes(ctx: MountContext) -> None:
    forgotten: list[str] = []
    ctx = replace(ctx, forget=forgotten.append)
    stopped = parse_job({**RUNNING, "status": "Stopped", "endtimestamp": DONE["endtimestamp"]})
    # The server still says Running once after the kill, then Stopped.
    ctx.registry.next_copies = [parse_job(RUNNING), stopped]  # type: ignore[attr-defined]
    handle = node(ctx, "/jobs/jr-running/ctl").open(os.O_WRONLY | os.O_TRUNC)
    assert handle.direct_io
    assert handle.write(b"extend 2\nkill\n", 0) == len(b"extend 2\nkill\n")
    assert ctx.client.sent == [("extend", "jr-running", "2"), ("kill", "jr-running")]  # type: ignore[attr-defined]
    assert ctx.registry.refreshed == ["jr-running", "jr-running"]  # type: ignore[attr-defined]
    assert read_all(ctx, "/jobs/jr-running/status") == b"Stopped\n"
    # ctl's own size changed; the job's files are forgotten by the registry when it
    # sees the job change (jhfs.state.registry on_change).
    assert forgotten == ["/jobs/jr-running/ctl"]
    last = read_all(ctx, "/jobs/jr-running/ctl").decode().splitlines()[-1]
    assert last == "last: extend 2: ok; kill: ok"


def test_extend_refreshes_once(ctx: MountContext) -> None:
    node(ctx, "/jobs/jr-running/ctl").open(os.O_WRONLY).write(b"extend 1\n", 0)
    assert ctx.registry.refreshed == ["jr-running"]  # type: ignore[attr-defined]


@pytest.mark.parametrize("command", [b"kill\n", b"extend 1\n"])
def test_a_command_for_a_finished_job_sends_nothing(ctx: MountContext, command: bytes) -> None:
    handle = node(ctx, "/jobs/jr-done/ctl").open(os.O_WRONLY)
    with pytest.raises(JobIsOver):
        handle.write(command, 0)
    assert ctx.client.sent == []  # type: ignore[attr-defined]
    assert ctx.registry.refreshed == []  # type: ignore[attr-defined]
    last = read_all(ctx, "/jobs/jr-done/ctl").decode().splitlines()[-1]
    assert last.startswith(f"last: {command.decode().strip()}: failed: job jr-done is over")


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


def listing_of(ctx: MountContext, *jobs: tuple[str, str | None, str]) -> MountContext:
    """`ctx` whose listing has these (jobname, alias, status), newest first."""
    made = [
        replace(parse_job(DONE), jobname=jobname, alias=alias, status=status)
        for jobname, alias, status in jobs
    ]
    return replace(ctx, registry=Registry(*made))  # type: ignore[arg-type]


def test_latest_is_a_relative_symlink_to_the_newest_listed_job(ctx: MountContext) -> None:
    latest = node(ctx, "/latest")
    assert latest.readlink() == "jobs/jr-running"
    attrs = latest.getattr()
    assert stat.S_ISLNK(attrs["st_mode"])
    assert attrs["st_size"] == len("jobs/jr-running")
    assert attrs["st_mtime"] == ns(RUNNING["submittimestamp"])
    with pytest.raises(NoSuchName):
        node(listing_of(ctx), "/latest")  # no job at all


def test_by_alias_links_the_newest_job_of_each_alias_and_lists_them_all(
    ctx: MountContext,
) -> None:
    views = listing_of(
        ctx,
        ("jr-3", "train", "Running"),
        ("jr-2", None, "Completed"),
        ("jr-1", "train", "Failed"),
        ("jr-0", "", "Completed"),  # no alias either
        ("jr-b", "sweep", "Completed"),
    )
    assert node(views, "/by-alias").readdir() == ["train", "sweep", "train.all", "sweep.all"]
    assert node(views, "/by-alias/train").readlink() == "../jobs/jr-3"
    assert node(views, "/by-alias/train.all").readdir() == ["jr-3", "jr-1"]
    assert node(views, "/by-alias/train.all/jr-1").readlink() == "../../jobs/jr-1"
    with pytest.raises(NoSuchName):
        node(views, "/by-alias/nothing")
    entries = dict(node(views, "/by-alias").readdir_plus())
    assert stat.S_ISLNK(entries["sweep"]["st_mode"])
    assert entries["sweep"]["st_size"] == len("../jobs/jr-b")
    assert stat.S_ISDIR(entries["train.all"]["st_mode"])


def test_by_status_has_a_directory_for_each_status_present(ctx: MountContext) -> None:
    views = listing_of(
        ctx, ("jr-3", None, "Running"), ("jr-2", None, "Completed"), ("jr-1", None, "Running")
    )
    assert node(views, "/by-status").readdir() == ["Running", "Completed"]
    assert node(views, "/by-status/Running").readdir() == ["jr-3", "jr-1"]
    running = dict(node(views, "/by-status/Running").readdir_plus())
    assert all(stat.S_ISLNK(attrs["st_mode"]) for attrs in running.values())
    assert node(views, "/by-status/Running/jr-1").readlink() == "../../jobs/jr-1"
    with pytest.raises(NoSuchName):
        node(views, "/by-status/Stopped")


def test_view_names_that_cannot_be_file_names_are_left_out_with_one_warning(
    ctx: MountContext, caplog: pytest.LogCaptureFixture
) -> None:
    views = listing_of(
        ctx,
        ("jr-1", "a/b", "Odd/Status"),
        ("jr-2", "x\0y", "Completed"),
        ("jr-3", "\ud800", "Completed"),
        ("jr-4", "n" * 256, "Completed"),
        ("jr-5", "n" * 253, "Completed"),  # its link fits, its .all does not
        ("jr-6", "ok", "Completed"),
    )
    with caplog.at_level(logging.WARNING):
        for _ in range(3):  # listings repeat: the warnings do not
            assert node(views, "/by-alias").readdir() == ["n" * 253, "ok", "ok.all"]
            assert node(views, "/by-status").readdir() == ["Completed"]
    left_out = [r.getMessage() for r in caplog.records if "left out" in r.getMessage()]
    assert len(left_out) == 6, left_out


def test_an_alias_ending_in_dot_all_keeps_its_link(
    ctx: MountContext, caplog: pytest.LogCaptureFixture
) -> None:
    views = listing_of(ctx, ("jr-2", "x.all", "Completed"), ("jr-1", "x", "Completed"))
    with caplog.at_level(logging.WARNING):
        assert node(views, "/by-alias").readdir() == ["x.all", "x", "x.all.all"]
    assert node(views, "/by-alias/x.all").readlink() == "../jobs/jr-2"
    assert "listed twice" in caplog.text


def test_readlink_of_what_is_no_symlink_is_refused(ctx: MountContext) -> None:
    for path in ("/jobs", "/jobs/jr-done/status", "/by-alias"):
        with pytest.raises(NotASymlink):
            node(ctx, path).readlink()
