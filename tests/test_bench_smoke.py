"""scripts/bench --quick runs every case and reports numbers (no timing is asserted)."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
CASES = (
    "cold copy",
    "warm copy",
    "cold read",
    "first 100 bytes, cold",
    "warm read",
    "throttled cold read",
    "throttled cold read, Range ignored",
    "bytes sent after Ctrl-C",
    "corrupt file: downloads per 1 cat",
    "corrupt file: downloads per 4 cats",
    "status during another job's",
    "parallel readers",
    "listing cold",
    "listing warm",
    "memory after listing",
    "tree walk",
    "tail -f latency p50 (stream",
    "tail -f latency p95 (stream",
    "log read past the end",
    "big log",
    "EIO with the server down",
    "requests in the 5 s (quick; 60 s in full runs) after cat of 300 running logs",
    "requests per 5 s of an idle mount",
    "RSS after stat of",
    "ls -l jobs/*/ (40 finished jobs, logs never read)",
    "find jobs -name logs -size +0",
    "stat of 40 jobs' logs and logs.jsonl",
    "ls -l jobs/*/ again",
    "threads with 60 readers waiting on 60 slow downloads",
    "seconds from SIGTERM to exit, idle mount",
    "seconds from SIGINT to exit, idle mount",
    "seconds from SIGTERM to exit under load",
    "seconds from SIGTERM to exit with a",
    "emulator delay fault",
    "cp against a server that stalls every request (deadline 5 s",
    "Ctrl-C of a cat waiting on a stalled server",
    "Ctrl-C of a cat whose lookup waits on a stalled server",
    "cache size after reading 3x --cache-max-size",
)
# Rows whose server stalls every request: the stall must really hold requests.
STALLED = ("cp against a server that stalls", "Ctrl-C of a cat")
# The bench's cases (its methods) in two halves of about the same length, run
# side by side: together they are every case, in half the time of one run.
HALVES = (
    ["copies", "reads", "throttled_reads", "interrupted_copy", "corrupt_downloads",
     "status_during_slow_lookup", "parallel_readers", "sigterm_during_download", "stalled_cp",
     "cache_limit"],
    ["listing", "tree_walk", "log_latency", "log_read_past_end", "big_log", "server_down",
     "quiet_mounts", "log_stat_memory", "log_sizes", "threads_waiting", "signals",
     "interrupted_stalled_cat"],
)  # fmt: skip


@pytest.mark.timeout(300)
def test_quick_bench_runs_every_case(tmp_path: Path) -> None:
    runs = []
    for number, half in enumerate(HALVES):
        report = tmp_path / f"bench-{number}.json"
        cases = [argument for case in half for argument in ("--case", case)]
        command = [sys.executable, str(REPO / "scripts" / "bench"), "--quick", *cases]
        process = subprocess.Popen(
            [*command, "--json", str(report)],
            # Its temporary directories (and so its mounts) under tmp_path: the check
            # below then sees this run's mounts, not another bench's on the machine.
            env={**os.environ, "TMPDIR": str(tmp_path)},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        runs.append((process, report))
    results, tables = [], ""
    for process, report in runs:
        stdout, stderr = process.communicate()
        assert process.returncode == 0, stderr[-4000:]
        assert "| case | jhfs | reference |" in stdout
        results += json.loads(report.read_text())
        tables += stdout
    names = [r["case"] for r in results]
    assert not [name for name in names if name.endswith(": every row")], "a case failed"
    for case in CASES:
        matching = [r for r in results if r["case"].startswith(case)]
        assert matching, f"case {case!r} missing from {names}"
        assert f"| {matching[0]['case']} |" in tables, f"no table row for {case!r}"
        value = matching[0]["jhfs"]
        if value is None:  # jhfs did not mount with the case's options (-o download_streams)
            assert matching[0]["detail"].startswith("not run:"), matching[0]
        else:
            # >= 0: counts (downloads, bytes after Ctrl-C) may rightly be 0.
            assert isinstance(value, float) and math.isfinite(value) and value >= 0, matching[0]
    for row in results:
        if row["case"].startswith(STALLED) and row["jhfs"] is not None:
            assert row["detail"].startswith("every request held"), row
    copies = {r["case"]: r for r in results}
    assert copies["cold copy"]["requests"].get("download", 0) >= 1
    assert str(tmp_path) not in Path("/proc/mounts").read_text(), "bench left a mount behind"
