"""`--demo`: a handful of sample jobs a new user can explore.

Completed jobs with input, project and result files of a few sizes (one a
directory result, uploaded as `outdir.tar.gz`), one with JSON outputs, a
failed one, a stopped one, one that keeps running and logs a line every
second, one with tens of thousands of log lines, and one exposing a port.
The finished ones ended hours and days ago, so that `ls -lt` sorts something.
"""

from __future__ import annotations

import base64
from typing import Any

from jhfs_emulator.store import JobStore

_MIB = 1 << 20
_HOUR = 3600
_DAY = 24 * _HOUR

PROJECT_TOML = """\
name = "DemoAnalysis"
uuid = "5b2c4e1a-9d3f-4c6b-8a7e-1f2d3c4b5a69"

[deps]
CSV = "336ed68f-0bac-5ca0-87d4-7b16caf5d00b"
DataFrames = "a93c6f00-e57d-5684-b7b6-d8193f3e46c0"
"""

MANIFEST_TOML = """\
# This file is machine-generated - editing it directly is not advised

julia_version = "1.10.4"
manifest_format = "2.0"

[[deps.CSV]]
deps = ["CodecZlib", "Dates", "FilePathsBase", "InlineStrings", "Mmap", "Parsers"]
git-tree-sha1 = "6c834533dc1fabd820c1db03c839bf97e45a3fab"
uuid = "336ed68f-0bac-5ca0-87d4-7b16caf5d00b"
version = "0.10.14"

[[deps.DataFrames]]
deps = ["Compat", "DataAPI", "Future", "InvertedIndices", "IteratorInterfaceExtensions"]
git-tree-sha1 = "04c738083f29f86e62c8afc341f0967d8717bdb8"
uuid = "a93c6f00-e57d-5684-b7b6-d8193f3e46c0"
version = "1.6.1"
"""

CODE_JL = """\
using CSV, DataFrames
alpha = parse(Float64, ENV["ALPHA"])
data = CSV.read("data.csv", DataFrame)
println("fitting with alpha = $alpha")
ENV["RESULTS"] = "{\\"rmse\\": 0.042}"
"""


def _content(filetype: str, name: str, text: str) -> dict[str, Any]:
    return {"type": filetype, "name": name, "content": base64.b64encode(text.encode()).decode()}


_PROJECT_FILES = [
    _content("project", "Project.toml", PROJECT_TOML),
    _content("project", "Manifest.toml", MANIFEST_TOML),
]

_REGRESSION = """\
echo "fitting with alpha = $ALPHA"
for i in 1 2 3 4 5 6 7 8 9 10; do echo "epoch $i: rmse=0.0$((50 - i))"; done
printf 'alpha,rmse\\n%s,0.042\\n' "$ALPHA" > results.csv
echo '{"rmse": 0.042, "epochs": 10}' > "$JHFS_RESULTS"
echo done
"""

_SWEEP = """\
mkdir -p outdir
for p in 1 2 3 4 5; do
  echo "running parameter set $p"
  seq 1 $((p * 200)) | sed "s/^/p$p,/" > outdir/sweep_$p.csv
done
echo "sweep complete: 5 parameter sets"
"""

_FAILING = """\
echo "loading data.csv"
echo "ERROR: LoadError: ArgumentError: column :price not found" >&2
echo "Stacktrace: [1] top-level scope at code.jl:3" >&2
exit 1
"""

_TICKER = """\
i=0
while true; do i=$((i + 1)); echo "heartbeat $i: all systems nominal"; sleep 1; done
"""

_SERVER = """\
echo "Listening on http://0.0.0.0:8080"
while true; do sleep 60; echo "served 0 requests in the last minute"; done
"""


async def seed_demo(store: JobStore) -> None:
    code = _content("input", "code.jl", CODE_JL)
    await store.create_finished(
        {
            "alias": "cancelled-sweep",
            "ended_seconds_ago": 3 * _DAY,
            "status": "Stopped",
            "log_lines": 420,
            "env": {"SWEEP_SIZE": "1000"},
            "files": [code, *_PROJECT_FILES],
        }
    )
    await store.create_finished(
        {
            "alias": "train-model",
            "ended_seconds_ago": _DAY + 2 * _HOUR,
            "log_lines": 2_000,
            "outputs": '{"accuracy": 0.973, "loss": 0.081}',
            "env": {"EPOCHS": "20", "RESULTS_FILE": "model.bin"},
            "escape_inputs": True,
            "files": [
                code,
                _content("source", "code.jl", CODE_JL),  # one name under two types
                *_PROJECT_FILES,
                {"type": "result", "name": "model.bin", "size": 64 * _MIB, "seed": 1},
            ],
        }
    )
    await store.create_finished(
        {
            "alias": "long-simulation",
            "ended_seconds_ago": 5 * _HOUR,
            "log_lines": 50_000,
            "outputs": '{"steps": 50000}',
            "files": [
                *_PROJECT_FILES,
                {"type": "result", "name": "trajectory.bin", "size": 8 * _MIB, "seed": 2},
            ],
        }
    )
    await store.create_running(
        {
            "alias": "linear-regression",
            "command": _REGRESSION,
            "env": {"ALPHA": "0.1", "RESULTS_FILE": "results.csv"},
            "escape_inputs": True,
            "files": [code, *_PROJECT_FILES, _content("input", "data.csv", "x,y\n1,2\n2,4\n")],
        }
    )
    await store.create_running(
        {
            "alias": "parameter-sweep",
            "command": _SWEEP,
            "env": {"RESULTS_FILE": "outdir"},
            "files": [*_PROJECT_FILES],
        }
    )
    await store.create_running(
        {"alias": "broken-script", "command": _FAILING, "env": {}, "files": [code]}
    )
    await store.create_running(
        {"alias": "web-dashboard", "command": _SERVER, "expose": 8080, "timelimit": 8}
    )
    await store.create_running(
        {"alias": "live-monitor", "command": _TICKER, "timelimit": 24, "env": {"INTERVAL": "1"}}
    )
