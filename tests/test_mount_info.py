"""info.json and server.json through a real mount, read as a script would (jq).

info.json is JuliaHub.jl's `Job`, with its field names, whatever the server's
quirks: `env` is an object whether `inputs` came as JSON text, with its
quotes backslash-escaped, or null. server.json is the server's object as it
came. The emulator runs with its demo jobs, which have each kind of `inputs`.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from conftest import Emulator, start_emulator, stop_emulator
from mounting import Mount, module_mount, sh

mnt = module_mount("info")


@pytest.fixture(scope="module")
def emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Emulator]:
    em = start_emulator(tmp_path_factory.mktemp("emulator"), "--demo")
    try:
        yield em
    finally:
        stop_emulator(em)


def jq(expression: str, path: Path) -> Any:
    """`jq -c EXPRESSION PATH` decoded (scripts/test installs jq)."""
    command = f"jq -c '{expression}' {path}"
    result = sh(command)
    assert result.returncode == 0, f"{command}: {result.stderr}"
    return json.loads(result.stdout)


def server_job(emulator: Emulator, jobname: str) -> Any:
    """The job object on the wire."""
    response = requests.get(
        f"{emulator.url}/api/rest/jobs/{jobname}",
        headers={**emulator.headers, "X-Hasura-Role": "jhuser", "X-JuliaHub-Ensure-JS": "true"},
        timeout=30,
    )
    response.raise_for_status()
    return response.json()["details"][0]


def test_env_is_an_object_on_every_demo_job(mnt: Mount, emulator: Emulator) -> None:
    jobnames = sorted(p.name for p in mnt.jobs.iterdir())
    assert len(jobnames) == 8
    envs = {jq(".alias", mnt.job(name) / "info.json"): jq(".env", mnt.job(name) / "info.json")
            for name in jobnames}  # fmt: skip
    assert all(isinstance(env, dict) for env in envs.values()), envs
    wires = [server_job(emulator, name)["inputs"] for name in jobnames]
    # The demo has each kind of `inputs` the server sends: JSON text, the
    # same with its quotes backslash-escaped, and null.
    assert any(text is None for text in wires)
    assert any(text and text.startswith('{\\"') for text in wires)
    assert any(text and text.startswith('{"') for text in wires)
    assert envs["train-model"] == {"EPOCHS": "20", "RESULTS_FILE": "model.bin"}  # escaped
    assert envs["cancelled-sweep"] == {"SWEEP_SIZE": "1000"}  # plain JSON text
    assert envs["long-simulation"] == {}  # null


@pytest.mark.parametrize(
    ("env", "escape"),
    [({"ALPHA": "0.1", "NOTE": 'a "quoted" \\ word'}, False),
     ({"ALPHA": "0.1", "NOTE": 'a "quoted" \\ word'}, True),
     (None, False)],
    ids=["json", "escaped", "null"],
)  # fmt: skip
def test_info_json_env_and_server_json_inputs(
    mnt: Mount, emulator: Emulator, env: dict[str, str] | None, escape: bool
) -> None:
    jobname = emulator.create_finished(status="Completed", env=env, escape_inputs=escape)
    job = mnt.job(jobname)
    assert jq(".env", job / "info.json") == (env or {})
    server = jq(".", job / "server.json")
    assert server == server_job(emulator, jobname)  # as it came, quirks and all
    if env is None:
        assert server["inputs"] is None
    else:
        assert server["inputs"].startswith('{\\"') == escape


def test_info_json_holds_juliahub_jl_fields(mnt: Mount, emulator: Emulator) -> None:
    jobname = emulator.create_finished(
        status="Failed",
        alias="fit",
        outputs='{"rmse": 0.5}',
        files=[{"type": "result", "name": "out.bin", "size": 1000}],
    )
    job = mnt.job(jobname)
    info = jq(".", job / "info.json")
    assert sorted(info) == sorted(
        ["id", "alias", "status", "env", "results", "files", "hostname",
         "_timestamp_submit", "_timestamp_start", "_timestamp_end"]
    )  # fmt: skip
    assert [info["id"], info["alias"], info["status"]] == [jobname, "fit", "Failed"]
    assert [info["results"], info["hostname"]] == ['{"rmse": 0.5}', None]
    submitted = dt.datetime.fromisoformat(info["_timestamp_submit"])
    assert submitted.utcoffset() == dt.timedelta(0)
    assert submitted.timestamp() == pytest.approx(job.stat().st_mtime, abs=1e-3)
    ended = dt.datetime.fromisoformat(info["_timestamp_end"]).timestamp()
    assert ended == pytest.approx((job / "status").stat().st_mtime, abs=1e-3)
    [file] = info["files"]
    assert [file["jobname"], file["type"], file["filename"], file["size"]] == [
        jobname, "result", "out.bin", 1000
    ]  # fmt: skip
    # A script can check a copy against the hash info.json gives.
    out = job / "files" / "result" / "out.bin"
    check = sh(f"echo '{file['hash']['hash']}  {out}' | sha256sum -c -")
    assert check.returncode == 0, check.stdout + check.stderr
    assert file["hash"]["algorithm"] == "sha2_256"
    uploaded = dt.datetime.fromisoformat(file["_upload_timestamp"]).timestamp()
    assert uploaded == pytest.approx(out.stat().st_mtime, abs=1e-3)
