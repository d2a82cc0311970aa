"""ctl through a real mount: `echo kill > ctl`, `echo 'extend 2' > ctl`, bad writes,
commands for a finished job, and `cat ctl`."""

from __future__ import annotations

import errno
import json
import os
from collections.abc import Iterator

import pytest
from conftest import Emulator, wait_for
from mounting import Mount, module_emulator, module_mount, sh

emulator = module_emulator()
mnt = module_mount("ctl")


@pytest.fixture
def running(mnt: Mount, emulator: Emulator) -> Iterator[str]:
    jobname = emulator.submit("sleep 300", timelimit=1)
    wait_for(lambda: (mnt.job(jobname) / "status").read_text() == "Running\n", what="Running")
    yield jobname
    sh(f"echo kill > {mnt.job(jobname)}/ctl")  # No such process if the test stopped it


@pytest.fixture
def finished(emulator: Emulator) -> str:
    return emulator.create_finished(status="Completed")


def control_requests(emulator: Emulator) -> tuple[int, int]:
    requests = emulator.stats()["requests"]
    return int(requests.get("kill_job", 0)), int(requests.get("extend_job", 0))


def test_echo_kill_stops_the_job(mnt: Mount, emulator: Emulator, running: str) -> None:
    result = sh(f"echo kill > {mnt.job(running)}/ctl")
    assert result.returncode == 0, result.stderr
    # No wait: the write returns once the server says the job stopped.
    assert emulator.admin("GET", f"jobs/{running}")["status"] == "Stopped"
    assert (mnt.job(running) / "status").read_text() == "Stopped\n"
    assert json.loads((mnt.job(running) / "info.json").read_text())["status"] == "Stopped"


def test_status_right_after_kill_says_stopped(mnt: Mount, emulator: Emulator) -> None:
    for _ in range(5):
        jobname = emulator.submit("sleep 300", timelimit=1)
        status = mnt.job(jobname) / "status"
        wait_for(lambda status=status: status.read_text() == "Running\n", what="Running")
        # One shell line, as a user types it: no waiting between the two. The
        # stat has the kernel cache info.json's attributes, whose size grows as
        # the job ends: a read cut at the size it cached would be broken JSON.
        line = "stat -c %s info.json >/dev/null && echo kill > ctl && cat status info.json"
        result = sh(f"cd {mnt.job(jobname)} && {line}")
        assert result.returncode == 0, result.stderr
        said, info = result.stdout.split("\n", 1)
        assert said == "Stopped"
        assert json.loads(info)["status"] == "Stopped"


def test_echo_extend_adds_hours(mnt: Mount, emulator: Emulator, running: str) -> None:
    before = emulator.admin("GET", f"jobs/{running}")["timelimit_hours"]
    kills, extends = control_requests(emulator)
    result = sh(f"echo 'extend 2' > {mnt.job(running)}/ctl")
    assert result.returncode == 0, result.stderr
    assert emulator.admin("GET", f"jobs/{running}")["timelimit_hours"] == before + 2
    assert control_requests(emulator) == (kills, extends + 1)


def test_several_lines_are_several_commands(mnt: Mount, emulator: Emulator, running: str) -> None:
    before = emulator.admin("GET", f"jobs/{running}")["timelimit_hours"]
    result = sh(f"printf 'extend 1\\nextend 3\\n' > {mnt.job(running)}/ctl")
    assert result.returncode == 0, result.stderr
    assert emulator.admin("GET", f"jobs/{running}")["timelimit_hours"] == before + 4


@pytest.mark.parametrize(
    "write",
    [
        "echo stop",
        "echo kill now",
        "echo 'extend 0'",
        "echo 'extend -1'",
        "echo 'extend 1.5'",
        "echo extend",
        "echo 'extend two'",
        "echo",  # an empty line
        "printf '\\377\\376\\n'",  # not UTF-8
        "head -c 2000 /dev/zero | tr '\\0' k",  # over 1 KiB
    ],
)
def test_bad_writes_are_einval_and_send_nothing(
    mnt: Mount, emulator: Emulator, running: str, write: str
) -> None:
    before = control_requests(emulator)
    # bash, because dash's echo reports every failed write as "I/O error".
    result = sh(f"{write} > {mnt.job(running)}/ctl", shell="bash")
    assert result.returncode != 0
    assert "Invalid argument" in result.stderr
    assert control_requests(emulator) == before
    assert (mnt.job(running) / "status").read_text() == "Running\n"


def test_one_bad_line_in_a_write_sends_nothing(
    mnt: Mount, emulator: Emulator, running: str
) -> None:
    before = control_requests(emulator)
    fd = os.open(mnt.job(running) / "ctl", os.O_WRONLY | os.O_TRUNC)
    try:
        with pytest.raises(OSError) as raised:
            os.write(fd, b"kill\nbogus\n")  # one write, as dash's printf makes it
    finally:
        os.close(fd)
    assert raised.value.errno == errno.EINVAL
    assert control_requests(emulator) == before


def test_cat_ctl_shows_the_grammar_and_the_last_outcome(
    mnt: Mount, emulator: Emulator, running: str
) -> None:
    ctl = mnt.job(running) / "ctl"
    before = sh(f"cat {ctl}")
    assert before.returncode == 0, before.stderr
    assert before.stdout.splitlines() == [
        "kill            stop the job",
        "extend HOURS    extend its time limit by HOURS whole hours (1 or more)",
        "last: none",
    ]
    assert sh(f"echo 'extend 1' > {ctl}").returncode == 0
    assert sh(f"cat {ctl}").stdout.splitlines()[-1] == "last: extend 1: ok"
    assert sh(f"echo kill > {ctl}").returncode == 0
    after = sh(f"cat {ctl}").stdout
    assert after.splitlines()[-1] == "last: kill: ok"
    assert ctl.stat().st_size == len(after.encode())
    assert sh(f"echo stop > {ctl}").returncode != 0
    assert sh(f"cat {ctl}").stdout.splitlines()[-1].startswith("last: failed: 'stop': unknown")


@pytest.mark.parametrize("command", ["kill", "extend 1"])
def test_a_command_for_a_finished_job_is_no_such_process_and_sends_nothing(
    mnt: Mount, emulator: Emulator, finished: str, command: str
) -> None:
    ctl = mnt.job(finished) / "ctl"
    before = control_requests(emulator)
    # bash, because dash's echo reports every failed write as "I/O error".
    result = sh(f"echo '{command}' > {ctl}", shell="bash")
    assert result.returncode != 0
    assert "No such process" in result.stderr
    assert control_requests(emulator) == before
    assert (mnt.job(finished) / "status").read_text() == "Completed\n"
    last = sh(f"cat {ctl}").stdout.splitlines()[-1]
    assert last == (
        f"last: {command}: failed: job {finished} is over (Completed): "
        "no process to stop or extend; nothing was sent"
    )
    said = [line for line in mnt.log_text().splitlines() if f"job {finished} is over" in line]
    assert len(said) == 1


def test_kill_of_a_job_that_ended_by_itself_is_no_such_process(
    mnt: Mount, emulator: Emulator
) -> None:
    jobname = emulator.submit("true")
    status = mnt.job(jobname) / "status"
    wait_for(lambda: status.read_text() == "Completed\n", what="Completed")
    before = control_requests(emulator)
    result = sh(f"echo kill > {mnt.job(jobname)}/ctl", shell="bash")
    assert "No such process" in result.stderr
    assert control_requests(emulator) == before


def test_ctl_of_an_unknown_job_is_enoent(mnt: Mount, emulator: Emulator) -> None:
    before = control_requests(emulator)
    result = sh(f"echo kill > {mnt.jobs}/jr-doesnotexist/ctl", shell="bash")
    assert result.returncode != 0
    assert "No such file or directory" in result.stderr
    assert control_requests(emulator) == before
