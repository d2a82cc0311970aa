"""A hostile or broken server never breaks the mount: through a real mount, with real tools.

Each test puts a rule on a `HostileServer` in front of the emulator (jhfs
mounts the hostile server's address), so the server sends what a broken or
hostile service could: impossible names, absurd sizes and times, log pages
that never end, bodies longer than their files, 404s for what it listed. The
mount answers each with the errno of the README's table, or leaves the one bad
job or file out, and its log never holds a traceback.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from conftest import Emulator, wait_for
from hostile import Answer, HostileServer, Request
from mounting import Mount, module_emulator, mount_jhfs, sh

from jhfs.state.logs import MAX_LOG_PAGES

emulator = module_emulator()

JOBS = "/juliaruncloud/get_jobs"
Change = Callable[[dict[str, Any]], None]


@pytest.fixture(scope="module")
def hostile(emulator: Emulator) -> Iterator[HostileServer]:
    server = HostileServer(emulator)
    try:
        yield server
    finally:
        server.close()


@pytest.fixture(scope="module")
def mnt(hostile: HostileServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mount]:
    with mount_jhfs(hostile.as_emulator(), tmp_path_factory.mktemp("hostile")) as mount:
        yield mount
        assert "Traceback" not in mount.log_text(), mount.log_text()


def changed_job(jobname: str, change: Change) -> Callable[[Request], Answer | None]:
    """A rule: the job `jobname` as the emulator has it, with `change` made, in the
    listing and in the job's own answer."""

    def rule(request: Request) -> Answer | None:
        if request.path == JOBS:
            jobs = request.upstream_json()
            for job in jobs:
                if job["jobname"] == jobname:
                    change(job)
            return Answer.json(jobs)
        if request.path == f"/api/rest/jobs/{jobname}":
            answer = request.upstream_json()
            for job in answer["details"]:
                change(job)
            return Answer.json(answer)
        return None

    return rule


def extra_jobs(template: str, names: list[str]) -> Callable[[Request], Answer | None]:
    """A rule: the listing also holds copies of job `template` under `names`."""

    def rule(request: Request) -> Answer | None:
        if request.path != JOBS:
            return None
        jobs = request.upstream_json()
        model = next(job for job in jobs if job["jobname"] == template)
        copies = [dict(copy.deepcopy(model), jobname=name) for name in names]
        return Answer.json(copies + jobs)

    return rule


def tmp_files(mnt: Mount) -> list[Path]:
    return [path for path in mnt.cache_dir.rglob("tmp/*")]


def errno_text(command: str) -> str:
    """The error a shell command reported (it must have failed)."""
    result = sh(command)
    assert result.returncode != 0, (command, result.stdout)
    return result.stderr


# --- names -----------------------------------------------------------------------------


def test_job_names_that_cannot_be_entries_are_left_out(
    mnt: Mount, hostile: HostileServer, emulator: Emulator
) -> None:
    good = emulator.create_finished(status="Completed")
    bad = ["a/b", ".", "..", "x" * 300, "jr-x\0y", "\ud800", "", good]  # last: a duplicate
    with hostile.rule(extra_jobs(good, bad)):
        listing = wait_for(
            lambda: (
                (out := sh(f"ls -a {mnt.jobs}")).returncode == 0
                and good in out.stdout
                and "a" not in out.stdout.split()  # the listing with the extra jobs
                and out
            ),
            what="a listing of the hostile jobs",
        )
        names = listing.stdout.split()
        assert names.count(good) == 1, names
        assert names.count(".") == 1 and names.count("..") == 1, names
        # Not even cut short: "jr-x" is what the kernel would show of "jr-x\0y".
        assert "jr-x" not in names and not [n for n in names if n.startswith("x" * 10)], names
        assert sh(f"cat {mnt.job(good)}/status").stdout == "Completed\n"


def test_file_names_that_cannot_be_entries_are_left_out(
    mnt: Mount, hostile: HostileServer, emulator: Emulator
) -> None:
    jobname = emulator.create_finished(
        files=[{"type": "result", "name": "ok.txt", "content": "b2s="}]
    )

    def more_files(job: dict[str, Any]) -> None:
        model = job["files"][0]
        names = ["a/b", "..", "y" * 300, "n\0", "ok.txt"]  # the last: a duplicate
        job["files"] += [dict(model, name=name) for name in names]
        job["files"] += [dict(model, name="z", type=kind) for kind in ("a/b", "..")]

    with hostile.rule(changed_job(jobname, more_files)):
        files = mnt.job(jobname) / "files"
        types = sh(f"ls -a {files}")
        assert types.returncode == 0, types.stderr
        assert types.stdout.split() == [".", "..", "result"]
        names = sh(f"ls -a {files}/result")
        assert names.returncode == 0, names.stderr
        assert names.stdout.split() == [".", "..", "ok.txt"]
        assert sh(f"cat {files}/result/ok.txt").stdout == "ok"


# --- values ----------------------------------------------------------------------------


def test_absurd_values_leave_only_their_job_out(
    mnt: Mount, hostile: HostileServer, emulator: Emulator
) -> None:
    good = emulator.create_finished(status="Completed")
    changes: dict[str, Change] = {
        "timestamp": lambda job: job.update(submittimestamp="0001-01-01T00:00:00+01:00"),
        "size": lambda job: job["files"][0].update(size=2**64),
        "negative": lambda job: job["files"][0].update(size=-1),
        "status": lambda job: job.update(status=["Running"]),
    }
    one_file = [{"type": "result", "name": "r", "size": 1}]
    bad = {what: emulator.create_finished(files=one_file) for what in changes}
    rules = [changed_job(bad[what], change) for what, change in changes.items()]

    def all_rules(request: Request) -> Answer | None:
        if request.path == JOBS:  # every change, on one listing
            jobs = request.upstream_json()
            for job in jobs:
                for what, change in changes.items():
                    if job["jobname"] == bad[what]:
                        change(job)
            return Answer.json(jobs)
        return next((a for rule in rules if (a := rule(request)) is not None), None)

    with hostile.rule(all_rules):
        listing = wait_for(
            lambda: (out := sh(f"ls {mnt.jobs}")).returncode == 0 and good in out.stdout and out,
            what="a listing without the bad jobs",
        )
        names = listing.stdout.split()
        assert good in names and not set(bad.values()) & set(names), names
        for what, jobname in bad.items():
            assert "Input/output error" in errno_text(f"cat {mnt.job(jobname)}/status"), what


def test_unknown_text_shows_up_safely(
    mnt: Mount, hostile: HostileServer, emulator: Emulator
) -> None:
    jobname = emulator.create_finished(status="Completed")

    def strange(job: dict[str, Any]) -> None:
        job.update(status="Explo\udcffded", outputs='{"x": "\ud800"}', jobname_alias="\udcff")

    with hostile.rule(changed_job(jobname, strange)):
        job = mnt.job(jobname)
        assert sh(f"cat {job}/status").stdout == "Explo?ded\n"
        results = sh(f"cat {job}/results")
        assert results.returncode == 0, results.stderr
        info = sh(f"cat {job}/info.json")
        assert info.returncode == 0, info.stderr
        assert json.loads(info.stdout)["results"] == '{"x": "\ud800"}'
        server = sh(f"cat {job}/server.json")
        assert server.returncode == 0, server.stderr
        assert json.loads(server.stdout)["outputs"] == '{"x": "\ud800"}'


# --- sizes and bodies ------------------------------------------------------------------


def file_job(emulator: Emulator, size: int) -> tuple[str, str]:
    jobname = emulator.create_finished(files=[{"type": "result", "name": "out.bin", "size": size}])
    return jobname, f"/jobs/{jobname}/files/out.bin"


def test_a_declared_size_smaller_than_the_bytes_fails_the_copy(
    mnt: Mount, hostile: HostileServer, emulator: Emulator, tmp_path: Path
) -> None:
    jobname, _ = file_job(emulator, 20)
    with hostile.rule(changed_job(jobname, lambda job: job["files"][0].update(size=5))):
        source = mnt.job(jobname) / "files" / "result" / "out.bin"
        assert "Input/output error" in errno_text(f"cp {source} {tmp_path}/copy")
        assert not tmp_files(mnt)


def test_a_declared_size_larger_than_the_bytes_fails_the_copy(
    mnt: Mount, hostile: HostileServer, emulator: Emulator, tmp_path: Path
) -> None:
    jobname, _ = file_job(emulator, 20)
    with hostile.rule(changed_job(jobname, lambda job: job["files"][0].update(size=2**40))):
        source = mnt.job(jobname) / "files" / "result" / "out.bin"
        assert "Input/output error" in errno_text(f"cp {source} {tmp_path}/copy")
        assert not tmp_files(mnt)


def test_a_body_longer_than_its_file_is_cut_off(
    mnt: Mount, hostile: HostileServer, emulator: Emulator, tmp_path: Path
) -> None:
    jobname, path = file_job(emulator, 1000)
    sent = [0]

    def endless() -> Iterator[bytes]:
        while sent[0] < 1 << 30:
            sent[0] += 1 << 16
            yield b"\0" * (1 << 16)

    def rule(request: Request) -> Answer | None:
        return Answer(200, endless()) if request.path == path else None

    with hostile.rule(rule):
        source = mnt.job(jobname) / "files" / "result" / "out.bin"
        assert "Input/output error" in errno_text(f"cp {source} {tmp_path}/copy")
        assert not tmp_files(mnt)
        assert sent[0] < 64 << 20  # the mount hung up long before a GiB
    result = sh(f"cp {source} {tmp_path}/copy")  # the honest server again
    assert result.returncode == 0, result.stderr
    honest = requests.get(f"{emulator.url}{path}?filetype=result", headers=emulator.headers)
    assert (tmp_path / "copy").read_bytes() == honest.content and len(honest.content) == 1000


# --- 404 for what was listed -----------------------------------------------------------


def test_a_404_for_the_job_list_is_eio_never_an_empty_account(
    mnt: Mount, hostile: HostileServer, emulator: Emulator
) -> None:
    emulator.create_finished()

    def gone(request: Request) -> Answer | None:
        return Answer(404, b"not here") if request.path == JOBS else None

    with hostile.rule(gone):

        def failed() -> bool:
            listing = sh(f"ls {mnt.jobs}")
            assert listing.returncode != 0 or listing.stdout.split(), "an empty account"
            return "Input/output error" in listing.stderr

        wait_for(failed, what="ls jobs/ to fail with EIO")


def test_a_404_for_a_listed_file_or_log_is_eio(
    mnt: Mount, hostile: HostileServer, emulator: Emulator, tmp_path: Path
) -> None:
    jobname, path = file_job(emulator, 100)

    def gone(request: Request) -> Answer | None:
        if request.path == path or request.query.get("jobname") == jobname:
            return Answer(404, b"not here")
        return None

    job = f"/api/rest/jobs/{jobname}"
    with hostile.rule(gone):
        source = mnt.job(jobname) / "files" / "result" / "out.bin"
        assert sh(f"ls {source}").returncode == 0
        asked = hostile.count(job)
        assert "Input/output error" in errno_text(f"cp {source} {tmp_path}/copy")

        def asked_again() -> bool:
            # A finished job is never asked for again, unless what it listed was
            # not there (the kernel may answer a look from its cache for 1 s).
            return sh(f"ls {source}").returncode == 0 and hostile.count(job) > asked

        wait_for(asked_again, what="the job to be asked for again after the file's 404")
        asked = hostile.count(job)
        assert "Input/output error" in errno_text(f"cat {mnt.job(jobname)}/logs")
        wait_for(asked_again, what="the job to be asked for again after the log's 404")


# --- logs that never end ---------------------------------------------------------------


def test_a_log_page_sent_again_and_again_is_eio(
    mnt: Mount, hostile: HostileServer, emulator: Emulator
) -> None:
    jobname = emulator.create_finished(status="Completed", log_lines=5)
    page = json.dumps([
        {"message": f"again {n}", "timestamp": "2026-01-01T00:00:00Z", "eventId": str(n)}
        for n in (7, 8, 9)
    ] + [
        {"_meta": True, "end": "bottom"},
    ])  # fmt: skip

    def same(request: Request) -> Answer | None:
        if request.query.get("jobname") == jobname:
            return Answer.json(page)  # no top marker, whatever was asked
        return None

    with hostile.rule(same):
        before = hostile.count("/juliaruncloud/get_logs")
        assert "Input/output error" in errno_text(f"cat {mnt.job(jobname)}/logs")
        assert hostile.count("/juliaruncloud/get_logs") - before < 20
        assert not tmp_files(mnt)


def test_a_log_that_never_reaches_its_start_is_eio(
    mnt: Mount, hostile: HostileServer, emulator: Emulator
) -> None:
    jobname = emulator.create_finished(status="Completed", log_lines=5)
    served = [0]

    def older_forever(request: Request) -> Answer | None:
        if request.query.get("jobname") != jobname:
            return None
        served[0] += 1
        first = 10**9 - served[0] * 10
        page: list[dict[str, Any]] = [
            {"message": f"m{n}", "timestamp": 1_700_000_000_000 + n, "eventId": str(n)}
            for n in range(first, first + 10)
        ]
        if "end_time" not in request.query:
            page.append({"_meta": True, "end": "bottom"})
        return Answer.json(json.dumps(page))

    with hostile.rule(older_forever):
        assert "Input/output error" in errno_text(f"cat {mnt.job(jobname)}/logs")
        assert served[0] <= MAX_LOG_PAGES + 1
        assert not tmp_files(mnt)


def test_retry_after_nan_is_retried(mnt: Mount, hostile: HostileServer, emulator: Emulator) -> None:
    jobname = emulator.create_finished(status="Failed")
    refused = [0]

    def busy_once(request: Request) -> Answer | None:
        if request.path == f"/api/rest/jobs/{jobname}" and not refused[0]:
            refused[0] += 1
            return Answer(503, b"busy", {"Retry-After": "nan"})
        return None

    with hostile.rule(busy_once):
        assert sh(f"cat {mnt.job(jobname)}/status").stdout == "Failed\n"
        assert refused[0] == 1
