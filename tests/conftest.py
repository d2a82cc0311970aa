"""Shared fixtures: the emulator as a real process on a free loopback port."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests

TOKEN = "test-token-5f2c9a"


@dataclass
class Emulator:
    url: str
    token: str
    data_dir: Path
    process: subprocess.Popen[str]

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    def admin(self, method: str, path: str, json: Any = None) -> Any:
        """Call the emulator's /_emulator/ admin API and return the decoded JSON."""
        response = requests.request(
            method, f"{self.url}/_emulator/{path}", json=json, headers=self.headers, timeout=30
        )
        response.raise_for_status()
        return response.json() if response.content else None

    def submit(self, command: str, **fields: Any) -> str:
        """Start a job running `sh -c command`; returns its jobname."""
        return str(self.admin("POST", "jobs", {"command": command, **fields})["jobname"])

    def create_finished(self, **finished: Any) -> str:
        """Create a job that is already finished (no process); returns its jobname."""
        return str(self.admin("POST", "jobs", {"finished": finished})["jobname"])

    def fault(self, **spec: Any) -> None:
        self.admin("POST", "faults", spec)

    def stats(self) -> dict[str, Any]:
        return dict(self.admin("GET", "stats"))

    def bytes_sent(self) -> int:
        return int(self.stats()["bytes_sent"])

    def settled_bytes_sent(self) -> int:
        """bytes_sent once it stopped growing (no transfer runs any more)."""
        last = [-1]

        def stable() -> bool:
            now = self.bytes_sent()
            same = now == last[0]
            last[0] = now
            return same

        wait_for(stable, interval=0.5, what="the server to stop sending")
        return last[0]


def wait_for(
    condition: Callable[[], Any], timeout: float = 30.0, interval: float = 0.05, what: str = ""
) -> Any:
    """Poll `condition` until it returns something truthy; fail the test at the deadline."""
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if result:
            return result
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout}s waiting for {what or condition}")
        time.sleep(interval)


def settle(probe: Callable[[], Any], what: str) -> Any:
    """Wait until `probe()` stops changing (the same twice, half a second apart)."""
    last: list[Any] = [object()]

    def stable() -> bool:
        now = probe()
        same = bool(now == last[0])
        last[0] = now
        return same

    wait_for(stable, interval=0.5, what=what)
    return last[0]


def expect_no_change(probe: Callable[[], Any], what: str, window: float) -> None:
    """Poll for `window` seconds and fail as soon as `probe()` differs from its first value."""
    first = probe()
    deadline = time.monotonic() + window
    while time.monotonic() < deadline:
        now = probe()
        assert now == first, f"{what} changed from {first} to {now}"
        time.sleep(0.1)


def start_emulator(data_dir: Path, *extra: str, token: str = TOKEN) -> Emulator:
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "jhfs_emulator",
            "--port",
            "0",
            "--token",
            token,
            "--data-dir",
            str(data_dir),
            *extra,
        ],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    assert process.stdout is not None
    first = process.stdout.readline().strip()
    prefix = "jhfs emulator listening on "
    if not first.startswith(prefix):
        process.kill()
        raise RuntimeError(f"emulator did not start: {first!r}")
    return Emulator(first[len(prefix) :], token, data_dir, process)


def stop_emulator(emulator: Emulator) -> None:
    emulator.process.terminate()
    try:
        emulator.process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        emulator.process.kill()
        emulator.process.wait()


@pytest.fixture(scope="session")
def emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Emulator]:
    """One emulator for the whole session; tests create the jobs they need."""
    em = start_emulator(tmp_path_factory.mktemp("emulator"))
    yield em
    stop_emulator(em)


@pytest.fixture
def fresh_emulator(tmp_path: Path) -> Iterator[Emulator]:
    """An emulator of the test's own, for tests that need an empty job list or faults."""
    em = start_emulator(tmp_path / "emulator")
    yield em
    stop_emulator(em)
