"""logs and logs.jsonl through a real mount: a finished job's whole log, `tail -f` of a
running one, a cached log deleted by eviction, and exact sizes before any read (tar, cp,
sendfile, rsync, mmap copy the whole log)."""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
from pathlib import Path

from conftest import Emulator, wait_for
from mounting import LineReader, Mount, module_emulator, module_mount, sh

emulator = module_emulator()
mnt = module_mount("logs")


def log_requests(emulator: Emulator) -> int:
    return int(emulator.stats()["requests"].get("get_logs", 0))


def test_finished_log_is_every_message_one_per_line(mnt: Mount, emulator: Emulator) -> None:
    jobname = emulator.create_finished(status="Completed", log_lines=25_000)
    logs = mnt.job(jobname) / "logs"
    counted = sh(f"wc -l < {logs}")
    assert counted.returncode == 0, counted.stderr
    assert int(counted.stdout) == 25_000
    data = logs.read_bytes()
    wait_for(lambda: logs.stat().st_size == len(data), what="st_size")  # kernel: <= 1 s old
    lines = data.decode().splitlines()
    assert "line 0000001 " in lines[0]
    assert "line 0025000 " in lines[-1]


def test_tail_f_follows_a_running_job(mnt: Mount, emulator: Emulator) -> None:
    jobname = emulator.submit(
        "i=0; while [ $i -lt 600 ]; do i=$((i+1)); echo tick-$i; sleep 0.2; done"
    )
    logs = mnt.job(jobname) / "logs"
    wait_for(lambda: (mnt.job(jobname) / "status").read_text() == "Running\n", what="Running")
    tail = subprocess.Popen(
        ["tail", "-n", "+1", "-f", str(logs)], stdout=subprocess.PIPE, text=True
    )
    try:
        reader = LineReader(tail)
        first = reader.until(lambda line: line.startswith("tick-"))
        start = int(first[-1].strip().split("-")[1])
        # Lines printed after tail started must keep arriving.
        reader.until(lambda line: line.strip() == f"tick-{start + 10}")
    finally:
        tail.kill()
        tail.wait()
        emulator.admin("GET", f"jobs/{jobname}")  # the job still exists
        sh(f"echo kill > {mnt.job(jobname)}/ctl")


def test_log_grows_then_stops_when_the_job_ends(mnt: Mount, emulator: Emulator) -> None:
    jobname = emulator.submit("echo first; sleep 1; echo second; sleep 1; echo third")
    job = mnt.job(jobname)
    wait_for(lambda: (job / "status").read_text() == "Completed\n", what="Completed")
    content = wait_for(
        lambda: (text := (job / "logs").read_text()).endswith("third\n") and text,
        what="the whole log",
    )
    assert content.splitlines()[-3:] == ["first", "second", "third"]
    # The kernel may show a size up to a second old.
    wait_for(lambda: (job / "logs").stat().st_size == len(content.encode()), what="st_size")


def test_read_past_the_known_end_is_eof_at_once(mnt: Mount, emulator: Emulator) -> None:
    jobname = emulator.submit("echo only; sleep 60")
    logs = mnt.job(jobname) / "logs"
    fd = os.open(logs, os.O_RDONLY)
    try:
        known = wait_for(lambda: (data := os.pread(fd, 65536, 0)).endswith(b"only\n") and data)
        # At and far past the known end: end-of-file at once, never waiting for more.
        assert os.pread(fd, 4096, len(known)) == b""
        assert os.pread(fd, 4096, len(known) + 1_000_000) == b""
    finally:
        os.close(fd)
        sh(f"echo kill > {mnt.job(jobname)}/ctl")


def test_a_cached_log_deleted_under_an_open_file_reads_on_and_comes_back(
    mnt: Mount, emulator: Emulator
) -> None:
    jobname = emulator.create_finished(status="Completed", log_lines=2_000)
    logs = mnt.job(jobname) / "logs"
    with logs.open("rb") as held:
        first = held.read(100)
        # In logs/ of the server's own subdirectory of the cache directory.
        (found,) = mnt.cache_dir.rglob(f"logs/{jobname}.log")
        expected = found.read_bytes()
        found.unlink()  # as the eviction of another mount sharing the cache may
        assert first + held.read() == expected  # the open file reads on to its end
    before = log_requests(emulator)
    assert logs.read_bytes() == expected  # fetched again, once
    assert log_requests(emulator) == before + 1
    assert found.read_bytes() == expected


# --- exact sizes: what copies st_size bytes copies the whole log -------------------------


def test_stat_gives_the_exact_size_before_any_read(mnt: Mount, emulator: Emulator) -> None:
    jobname = emulator.create_finished(status="Completed", log_lines=12_000)
    job = mnt.job(jobname)
    before = log_requests(emulator)
    sizes = sh(f"stat -c %s {job}/logs {job}/logs.jsonl")
    assert sizes.returncode == 0, sizes.stderr
    text_size, json_size = map(int, sizes.stdout.split())
    fetched = log_requests(emulator) - before
    assert fetched == 2  # the whole log (two pages), once, for both files
    assert text_size == len((job / "logs").read_bytes())
    assert json_size == len((job / "logs.jsonl").read_bytes())
    assert log_requests(emulator) - before == fetched  # read from disk
    found = sh(f"find {job} -name 'logs*' -size +0 | sort")
    assert found.stdout.split() == [f"{job}/logs", f"{job}/logs.jsonl"]


def test_tar_and_shutil_copy_of_a_finished_log_are_the_whole_log(
    mnt: Mount, emulator: Emulator, tmp_path: Path
) -> None:
    # Each job's log is first touched by the copy: no read primed the size.
    tarred, copied = (emulator.create_finished(status="Failed", log_lines=3_000) for _ in "ab")
    archive = tmp_path / "logs.tar"
    made = sh(f"tar -C {mnt.job(tarred)} -cf {archive} logs logs.jsonl")
    assert made.returncode == 0, made.stderr
    out = tmp_path / "out"
    out.mkdir()
    assert sh(f"tar -C {out} -xf {archive}").returncode == 0
    assert (out / "logs").read_bytes() == (mnt.job(tarred) / "logs").read_bytes()
    assert (out / "logs.jsonl").read_bytes() == (mnt.job(tarred) / "logs.jsonl").read_bytes()
    assert (out / "logs").read_bytes().count(b"\n") == 3_000

    # shutil.copy copies with sendfile, which the kernel ends at st_size.
    target = tmp_path / "copied"
    script = f"import shutil; shutil.copy({str(mnt.job(copied) / 'logs')!r}, {str(target)!r})"
    done = sh(f"python3 -c {shlex.quote(script)}")
    assert done.returncode == 0, done.stderr
    assert target.read_bytes() == sh(f"cat {mnt.job(copied)}/logs").stdout.encode()
    assert target.read_bytes().count(b"\n") == 3_000


def test_cp_rsync_and_mmap_of_a_finished_log_are_the_whole_log(
    mnt: Mount, emulator: Emulator, tmp_path: Path
) -> None:
    jobs = [emulator.create_finished(status="Completed", log_lines=2_000) for _ in range(3)]
    for jobname, tool in zip(jobs[:2], ("cp", "rsync"), strict=True):
        copy = sh(f"{tool} {mnt.job(jobname)}/logs {tmp_path}/{tool}")
        assert copy.returncode == 0, copy.stderr
        assert (tmp_path / tool).read_bytes().count(b"\n") == 2_000
        assert (tmp_path / tool).read_bytes() == (mnt.job(jobname) / "logs").read_bytes()
    # A shared, read-only mapping (Python's default), of the whole file.
    script = (
        "import mmap, sys; f = open(sys.argv[1], 'rb'); "
        "sys.stdout.buffer.write(mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)[:])"
    )
    mapped = subprocess.run(
        ["python3", "-c", script, str(mnt.job(jobs[2]) / "logs")], capture_output=True
    )
    assert mapped.returncode == 0, mapped.stderr
    assert mapped.stdout.count(b"\n") == 2_000
    assert mapped.stdout == (mnt.job(jobs[2]) / "logs").read_bytes()


def test_a_running_jobs_log_has_its_size_without_being_read(mnt: Mount, emulator: Emulator) -> None:
    jobname = emulator.submit("echo started; sleep 60")
    logs = mnt.job(jobname) / "logs"
    try:
        # Only stats: each one a moment later asks for what is new.
        wait_for(lambda: logs.stat().st_size == len(b"started\n"), what="the logged size")
        assert (mnt.job(jobname) / "logs.jsonl").stat().st_size > len(b"started\n")
    finally:
        sh(f"echo kill > {mnt.job(jobname)}/ctl")


# --- logs.jsonl ----------------------------------------------------------------------------


def test_logs_jsonl_is_one_object_per_message(mnt: Mount, emulator: Emulator) -> None:
    jobname = emulator.create_finished(status="Completed", log_lines=500)
    job = mnt.job(jobname)
    script = (
        "import json, sys\n"
        "for line in open(sys.argv[1], encoding='utf-8'):\n"
        "    o = json.loads(line)\n"
        "    print(o['timestamp'], o['eventId'], o['keywords']['jrun_hostname'],\n"
        "          o['metadata']['level'], o['message'], sep='|')\n"
    )
    parsed = subprocess.run(
        ["python3", "-c", script, str(job / "logs.jsonl")], capture_output=True, text=True
    )
    assert parsed.returncode == 0, parsed.stderr
    rows = [line.split("|", 4) for line in parsed.stdout.splitlines()]
    text = (job / "logs").read_text().splitlines()
    assert len(rows) == len(text) == 500
    assert [row[4] for row in rows] == text
    assert [row[1] for row in rows] == [str(n) for n in range(1, 501)]
    assert {row[2] for row in rows} == {f"{jobname}-x5z4g"} and {row[3] for row in rows} == {"Info"}
    # ISO 8601 in UTC, with milliseconds, as the server writes it.
    assert all(re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", row[0]) for row in rows)


def test_tail_f_of_logs_jsonl_follows_a_running_job(mnt: Mount, emulator: Emulator) -> None:
    jobname = emulator.submit(
        "i=0; while [ $i -lt 600 ]; do i=$((i+1)); echo tick-$i; sleep 0.2; done"
    )
    path = mnt.job(jobname) / "logs.jsonl"
    tail = subprocess.Popen(
        ["tail", "-n", "+1", "-f", str(path)], stdout=subprocess.PIPE, text=True
    )
    try:
        reader = LineReader(tail)
        first = reader.until(lambda line: json.loads(line)["message"].startswith("tick-"))
        start = int(json.loads(first[-1])["message"].split("-")[1])
        # Lines logged after tail started keep arriving, each one whole JSON.
        reader.until(lambda line: json.loads(line)["message"] == f"tick-{start + 10}")
    finally:
        tail.kill()
        tail.wait()
        sh(f"echo kill > {mnt.job(jobname)}/ctl")


def test_find_walks_job_directories_without_fetching_their_logs(
    mnt: Mount, emulator: Emulator
) -> None:
    answer = emulator.admin("POST", "jobs", {"finished": {"log_lines": 5}, "count": 20})
    jobs = " ".join(str(mnt.job(jobname)) for jobname in answer["jobnames"])
    before = log_requests(emulator)
    # The listing tells each entry's type: find knows files/ is the directory
    # to descend into without a stat, which for logs would fetch them.
    found = sh(f"find {jobs} -type f -name status")
    assert found.returncode == 0, found.stderr
    assert len(found.stdout.split()) == 20
    assert sh(f"find {jobs} -type d -name files").stdout.count("/files\n") == 20
    assert log_requests(emulator) == before
