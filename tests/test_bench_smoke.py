"""scripts/bench --quick runs every case and reports numbers (no timing is asserted)."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
CASES = (
    "cold copy",
    "warm copy",
    "parallel readers",
    "listing cold",
    "listing warm",
    "memory after listing",
    "tree walk",
    "log latency p50",
    "log latency p95",
    "big log",
)


@pytest.mark.timeout(300)
def test_quick_bench_runs_every_case(tmp_path: Path) -> None:
    report = tmp_path / "bench.json"
    run = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "bench"), "--quick", "--json", str(report)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert run.returncode == 0, run.stderr[-4000:]
    assert "| case | jhfs | reference |" in run.stdout
    results = json.loads(report.read_text())
    for case in CASES:
        matching = [r for r in results if r["case"].startswith(case)]
        assert matching, f"case {case!r} missing from {[r['case'] for r in results]}"
        value = matching[0]["jhfs"]
        assert isinstance(value, float) and math.isfinite(value) and value > 0, matching[0]
    copies = {r["case"]: r for r in results}
    assert copies["cold copy"]["requests"].get("download", 0) >= 1
    assert "jhfs-bench-" not in Path("/proc/mounts").read_text(), "bench left a mount behind"
