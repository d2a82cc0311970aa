"""The emulator speaks the JuliaHub wire protocol with its quirks (tested over HTTP)."""

from __future__ import annotations

import base64
import hashlib
import json
import re
from typing import Any

import requests
from conftest import Emulator, wait_for

ISO_OFFSET = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}\+00:00$")
ISO_Z = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
HASURA = {"X-Hasura-Role": "jhuser", "X-JuliaHub-Ensure-JS": "true"}


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def get(em: Emulator, path: str, **params: Any) -> requests.Response:
    return requests.get(f"{em.url}{path}", params=params, headers=em.headers, timeout=30)


def job_object(em: Emulator, jobname: str) -> dict[str, Any]:
    response = requests.get(
        f"{em.url}/api/rest/jobs/{jobname}", headers={**em.headers, **HASURA}, timeout=30
    )
    assert response.status_code == 200
    (job,) = response.json()["details"]
    return dict(job)


def raw_logs(em: Emulator, jobname: str, **params: Any) -> Any:
    response = get(
        em, "/juliaruncloud/get_logs", jobname=jobname, log_output_type="content",
        log_out_type="json", **params,
    )  # fmt: skip
    assert response.status_code == 200
    return response.json()


def logs(em: Emulator, jobname: str, **params: Any) -> list[dict[str, Any]]:
    """A page of logs, checking the quirk that the array comes as a JSON string."""
    body = raw_logs(em, jobname, **params)
    assert isinstance(body, str), body
    page = json.loads(body)
    assert isinstance(page, list)
    return page


def ms(message: dict[str, Any]) -> int:
    from datetime import datetime

    stamp = datetime.fromisoformat(message["timestamp"].replace("Z", "+00:00"))
    return round(stamp.timestamp() * 1000)


def lines_of(page: list[dict[str, Any]]) -> list[str]:
    return [m["message"] for m in page if not m.get("_meta")]


def test_every_endpoint_needs_the_bearer_token(emulator: Emulator) -> None:
    jobname = emulator.create_finished(log_lines=3)
    calls = [
        ("GET", "/api/v1"),
        ("POST", "/v1/graphql"),
        ("GET", "/juliaruncloud/get_jobs"),
        ("GET", f"/api/rest/jobs/{jobname}"),
        ("GET", f"/juliaruncloud/kill_job?jobname={jobname}"),
        ("POST", "/juliaruncloud/extend_job_time_limit"),
        ("GET", f"/juliaruncloud/get_logs?jobname={jobname}"),
        ("GET", f"/jobs/{jobname}/files/x?filetype=result"),
        ("GET", f"/ws/stream_logs?jobname={jobname}"),
        ("GET", "/_emulator/stats"),
        ("POST", "/_emulator/jobs"),
    ]
    for method, path in calls:
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": emulator.token}):
            response = requests.request(method, emulator.url + path, headers=headers, timeout=10)
            assert response.status_code == 401, (method, path, headers)
    assert job_object(emulator, jobname)["status"] == "Completed"  # kill did not happen


def test_api_v1_identity(emulator: Emulator) -> None:
    body = get(emulator, "/api/v1").json()
    assert body["api_version"] == "0.0.1"
    assert isinstance(body["username"], str) and body["username"]
    assert body["timezone"]["utc_offset"] == "+00:00"


# The official client's user query, as it sends it to a server without /api/v1.
USER_INFO_QUERY = """query UserInfo {
  users {
    name
    username
    firstname
    id
    info: emails {
      email
      features {
        app {
          featureid
          name: appspec(path: "name")
          appspec
        }
      }
    }
  }
}
"""


def graphql(em: Emulator, body: Any, role: str | None = "jhuser") -> requests.Response:
    headers = em.headers if role is None else {**em.headers, "X-Hasura-Role": role}
    return requests.post(f"{em.url}/v1/graphql", json=body, headers=headers, timeout=10)


def test_graphql_answers_the_user_query_as_asked(fresh_emulator: Emulator) -> None:
    em = fresh_emulator
    body = {"variables": {}, "operationName": None, "query": USER_INFO_QUERY}
    response = graphql(em, body)
    assert response.status_code == 200
    (user,) = response.json()["data"]["users"]
    identity = get(em, "/api/v1").json()
    assert user["username"] == identity["username"]
    assert isinstance(user["id"], int) and not isinstance(user["id"], bool)
    assert set(user) == {"name", "username", "firstname", "id", "info"}  # the alias, not emails
    (email,) = user["info"]
    assert set(email) == {"email", "features"} and "@" in email["email"]
    aliased = graphql(em, {"query": "query { users(limit: 1) { me: username } }"}).json()
    assert aliased == {"data": {"users": [{"me": identity["username"]}]}}
    assert em.stats()["missing_hasura_headers"] == 0
    assert graphql(em, body, role=None).status_code == 200
    assert em.stats()["missing_hasura_headers"] == 1
    assert em.stats()["requests"]["graphql"] == 3


def test_graphql_errors_are_a_200_with_errors_and_no_data(emulator: Emulator) -> None:
    for body, code in [
        ({"query": "{ jobs { id } }"}, "validation-failed"),
        ({"query": "{ users { password } }"}, "validation-failed"),
        ({"query": "{ users { username { first } } }"}, "validation-failed"),
        ({"query": "mutation { delete_users { affected_rows } }"}, "validation-failed"),
        ({"query": "{ users { username "}, "parse-failed"),
        ({"variables": {}}, "parse-failed"),
    ]:
        response = graphql(emulator, body)
        assert response.status_code == 200, body
        answer = response.json()
        assert "data" not in answer, body
        (error,) = answer["errors"]
        assert error["extensions"]["code"] == code, body
        assert error["message"], body


def test_get_jobs_returns_20_latest_first_unless_limited(fresh_emulator: Emulator) -> None:
    em = fresh_emulator
    assert get(em, "/juliaruncloud/get_jobs").json() == []
    created = em.admin("POST", "jobs", {"finished": {"log_lines": 1}, "count": 25})["jobnames"]
    assert len(set(created)) == 25
    listed = [job["jobname"] for job in get(em, "/juliaruncloud/get_jobs").json()]
    assert listed == created[::-1][:20]
    limited = [job["jobname"] for job in get(em, "/juliaruncloud/get_jobs", limit=3).json()]
    assert limited == created[::-1][:3]
    everything = get(em, "/juliaruncloud/get_jobs", limit=100).json()
    assert [job["jobname"] for job in everything] == created[::-1]
    assert get(em, "/juliaruncloud/get_jobs", limit="x").status_code == 400


def test_ten_thousand_jobs_in_one_call(fresh_emulator: Emulator) -> None:
    em = fresh_emulator
    spec = {"log_lines": 1_000_000, "files": [{"type": "result", "name": "r.bin", "size": 1000}]}
    answer = em.admin("POST", "jobs", {"finished": spec, "count": 10_000})
    assert len(answer["jobnames"]) == 10_000 and answer["jobname"] == answer["jobnames"][0]
    listed = get(em, "/juliaruncloud/get_jobs", limit=10_000).json()
    assert [job["jobname"] for job in listed] == answer["jobnames"][::-1]
    hashes = {job["files"][0]["hash"]["value"] for job in listed}
    assert len(hashes) == 1  # one shared blob


def test_job_object_fields(emulator: Emulator) -> None:
    content = b"println(1)\n"
    jobname = emulator.create_finished(
        alias="fit", outputs='{"a": 1}', env={"ALPHA": "0.5", "Q": 'say "hi"'},
        files=[{"type": "input", "name": "code.jl", "content": b64(content)}],
    )  # fmt: skip
    job = job_object(emulator, jobname)
    assert re.fullmatch(r"jr-[a-z0-9]{10}", job["jobname"]) and job["jobname"] == jobname
    assert isinstance(job["id"], int)
    assert job["jobname_alias"] == "fit" and job["status"] == "Completed"
    assert json.loads(job["inputs"]) == {"ALPHA": "0.5", "Q": 'say "hi"'}
    assert job["outputs"] == '{"a": 1}'
    for field in ("submittimestamp", "starttimestamp", "endtimestamp"):
        assert ISO_OFFSET.match(job[field]), job[field]
    assert job["submittimestamp"] <= job["starttimestamp"] <= job["endtimestamp"]
    (entry,) = job["files"]
    assert entry["name"] == "code.jl" and entry["type"] == "input"
    assert entry["size"] == len(content)
    assert entry["hash"] == {
        "algorithm": "sha2_256",
        "value": b64(hashlib.sha256(content).digest()),
    }
    assert entry["upload_timestamp"].endswith("+00:00")
    assert "proxy_link" not in job


def test_inputs_null_without_env_and_escaped_on_request(emulator: Emulator) -> None:
    assert job_object(emulator, emulator.create_finished())["inputs"] is None
    escaped = job_object(emulator, emulator.create_finished(env={"A": "1"}, escape_inputs=True))
    assert escaped["inputs"] == '{\\"A\\": \\"1\\"}'
    assert json.loads(escaped["inputs"].replace('\\"', '"')) == {"A": "1"}


def test_proxy_link_for_exposed_port(emulator: Emulator) -> None:
    jobname = emulator.create_finished(status="Running", expose=8080)
    assert job_object(emulator, jobname)["proxy_link"] == f"https://{jobname}.apps.localhost/"
    raw = emulator.create_finished(proxy_link="http://not-https.example/path")
    assert job_object(emulator, raw)["proxy_link"] == "http://not-https.example/path"


def test_unknown_job_is_empty_details(emulator: Emulator) -> None:
    response = get(emulator, "/api/rest/jobs/jr-0000000000")
    assert response.status_code == 200 and response.json() == {"details": []}


def test_missing_hasura_headers_answered_but_counted(fresh_emulator: Emulator) -> None:
    jobname = fresh_emulator.create_finished()
    assert get(fresh_emulator, f"/api/rest/jobs/{jobname}").json()["details"]
    assert fresh_emulator.stats()["missing_hasura_headers"] == 1
    job_object(fresh_emulator, jobname)
    assert fresh_emulator.stats()["missing_hasura_headers"] == 1


def test_kill_unknown_job_is_403(emulator: Emulator) -> None:
    response = get(emulator, "/juliaruncloud/kill_job", jobname="jr-0000000000")
    assert response.status_code == 403


def test_kill_answers_status_true(emulator: Emulator) -> None:
    jobname = emulator.create_finished(status="Running", log_lines=2)
    response = get(emulator, "/juliaruncloud/kill_job", jobname=jobname)
    assert response.status_code == 200
    body = response.json()
    assert body["status"] is True and jobname in body["message"]
    assert job_object(emulator, jobname)["status"] == "Stopped"
    assert logs(emulator, jobname)[-1] == {"_meta": True, "end": "bottom", "message": ""}


def test_kill_of_a_finished_job_succeeds_and_keeps_its_status(emulator: Emulator) -> None:
    jobname = emulator.create_finished(status="Completed", log_lines=2)
    before = job_object(emulator, jobname)
    response = get(emulator, "/juliaruncloud/kill_job", jobname=jobname)
    assert response.status_code == 200 and response.json()["status"] is True
    assert job_object(emulator, jobname) == before


def extend(em: Emulator, body: Any) -> requests.Response:
    return requests.post(
        f"{em.url}/juliaruncloud/extend_job_time_limit", json=body, headers=em.headers, timeout=10
    )


def test_extend_unknown_job(emulator: Emulator) -> None:
    assert extend(emulator, {"jobname": "jr-0000000000", "extendby": 1}).status_code == 403
    malformed = extend(emulator, {"jobname": "no-such-job", "extendby": 1})
    assert malformed.status_code == 200
    assert malformed.json()["success"] is False
    assert malformed.json()["message"].startswith("Invalid jobname")


def test_extend_of_a_finished_job_succeeds_and_changes_nothing(emulator: Emulator) -> None:
    jobname = emulator.submit("sleep 600", timelimit=1)
    get(emulator, "/juliaruncloud/kill_job", jobname=jobname)
    wait_for(lambda: job_object(emulator, jobname)["status"] == "Stopped", what="Stopped")
    before = emulator.admin("GET", f"jobs/{jobname}")
    response = extend(emulator, {"jobname": jobname, "extendby": 2})
    assert response.status_code == 200
    assert response.json() == {"success": True, "message": ""}
    assert emulator.admin("GET", f"jobs/{jobname}") == before
    assert job_object(emulator, jobname)["status"] == "Stopped"


def test_extend_validates_whole_hours(emulator: Emulator) -> None:
    jobname = emulator.submit("sleep 60", timelimit=1)
    try:
        for bad in (0, -1, 1.5, "2", True, None):
            response = extend(emulator, {"jobname": jobname, "extendby": bad})
            assert response.status_code == 400, bad
            assert response.json()["success"] is False
        ok = extend(emulator, {"jobname": jobname, "extendby": 2})
        assert ok.status_code == 200 and ok.json() == {"success": True, "message": ""}
    finally:
        get(emulator, "/juliaruncloud/kill_job", jobname=jobname)


def test_logs_are_a_json_string_with_markers(emulator: Emulator) -> None:
    jobname = emulator.create_finished(log_lines=5)
    page = logs(emulator, jobname)
    assert page[0] == {"_meta": True, "end": "top", "message": ""}
    assert page[-1] == {"_meta": True, "end": "bottom", "message": ""}
    messages = page[1:-1]
    assert [m["eventId"] for m in messages] == ["1", "2", "3", "4", "5"]
    for message in messages:
        assert ISO_Z.match(message["timestamp"])
        assert isinstance(message["keywords"], dict) and "jrun_hostname" in message["keywords"]
        assert isinstance(message["metadata"], dict) and "level" in message["metadata"]
    assert messages[0]["message"].startswith("line 0000001 of " + jobname)


def test_running_job_log_has_no_bottom(emulator: Emulator) -> None:
    jobname = emulator.create_finished(status="Running", log_lines=3)
    page = logs(emulator, jobname)
    assert page[0]["_meta"] and not page[-1].get("_meta") and len(page) == 4


def test_logs_cap_and_paging_both_ways(emulator: Emulator) -> None:
    jobname = emulator.create_finished(log_lines=25_000)
    newest = logs(emulator, jobname)
    assert len(newest) == 10_000
    assert newest[-1]["end"] == "bottom" and newest[-2]["eventId"] == "25000"
    collected = newest[:-1]
    pages = 1
    while not collected[0].get("_meta"):  # older, until the top marker
        reference = collected[0]
        older = logs(emulator, jobname, event_id=reference["eventId"], end_time=ms(reference))
        assert 0 < len(older) <= 10_000
        collected = older + collected
        pages += 1
    assert pages == 3
    assert [m["eventId"] for m in collected[1:]] == [str(n) for n in range(1, 25_001)]
    forward = [collected[1]]
    while True:  # newer, from the first line until the bottom marker
        reference = forward[-1]
        newer = logs(emulator, jobname, event_id=reference["eventId"], start_time=ms(reference))
        assert len(newer) <= 10_000
        if newer and newer[-1].get("_meta"):
            forward += newer[:-1]
            break
        forward += newer
    assert [m["eventId"] for m in forward] == [str(n) for n in range(1, 25_001)]
    small = logs(emulator, jobname, nentries=7)
    assert len(small) == 7 and small[-1]["end"] == "bottom"
    assert len(logs(emulator, jobname, nentries=50_000)) == 10_000


def test_million_line_log_is_served_lazily(emulator: Emulator) -> None:
    jobname = emulator.create_finished(log_lines=1_000_000)
    newest = logs(emulator, jobname)
    assert newest[-2]["eventId"] == "1000000" and len(newest) == 10_000
    reference = newest[0]
    older = logs(emulator, jobname, event_id=reference["eventId"], end_time=ms(reference))
    assert older[-1]["eventId"] == str(int(reference["eventId"]) - 1)


def test_logs_query_errors(emulator: Emulator) -> None:
    jobname = emulator.create_finished(log_lines=20)
    page = logs(emulator, jobname)
    reference = page[5]
    wrong_time = raw_logs(emulator, jobname, event_id="5", start_time=ms(reference) + 1)
    assert wrong_time["success"] is False
    unknown_event = raw_logs(emulator, jobname, event_id="999", start_time=ms(reference))
    assert unknown_event["success"] is False
    assert raw_logs(emulator, jobname, nentries=0)["success"] is False
    response = get(emulator, "/juliaruncloud/get_logs", jobname="jr-0000000000",
                   log_output_type="content", log_out_type="json")  # fmt: skip
    assert response.status_code == 403


def test_logs_with_both_times_or_without_jobname_are_a_plain_text_400(emulator: Emulator) -> None:
    jobname = emulator.create_finished(log_lines=20)
    reference = logs(emulator, jobname)[5]
    both = get(
        emulator, "/juliaruncloud/get_logs", jobname=jobname, log_output_type="content",
        log_out_type="json", event_id=reference["eventId"], start_time=ms(reference),
        end_time=ms(reference),
    )  # fmt: skip
    assert (both.status_code, both.text) == (400, "both start_time and end_time provided")
    assert both.headers["Content-Type"].startswith("text/plain")
    nameless = get(emulator, "/juliaruncloud/get_logs", log_output_type="content",
                   log_out_type="json")  # fmt: skip
    assert (nameless.status_code, nameless.text) == (400, "jobname missing")
    assert nameless.headers["Content-Type"].startswith("text/plain")


def test_range_requests_and_deterministic_blobs(emulator: Emulator) -> None:
    size = 5 * 1024 * 1024 + 17
    spec = [{"type": "result", "name": "data.bin", "size": size, "seed": 7}]
    first, second = emulator.create_finished(files=spec), emulator.create_finished(files=spec)
    other = emulator.create_finished(files=[{**spec[0], "seed": 8}])
    url = f"/jobs/{first}/files/data.bin"
    whole = get(emulator, url, filetype="result")
    assert whole.status_code == 200 and len(whole.content) == size
    expected = job_object(emulator, first)["files"][0]["hash"]["value"]
    assert b64(hashlib.sha256(whole.content).digest()) == expected
    assert job_object(emulator, second)["files"][0]["hash"]["value"] == expected
    assert job_object(emulator, other)["files"][0]["hash"]["value"] != expected
    ranged = requests.get(
        emulator.url + url, params={"filetype": "result"},
        headers={**emulator.headers, "Range": "bytes=1000000-1000099"}, timeout=30,
    )  # fmt: skip
    assert ranged.status_code == 206 and ranged.content == whole.content[1_000_000:1_000_100]
    tail = requests.get(
        emulator.url + url, params={"filetype": "result"},
        headers={**emulator.headers, "Range": f"bytes={size - 10}-"}, timeout=30,
    )  # fmt: skip
    assert tail.status_code == 206 and tail.content == whole.content[-10:]
    assert get(emulator, url, filetype="input").status_code == 404
    assert get(emulator, f"/jobs/{first}/files/nothing.bin", filetype="result").status_code == 404


def test_same_name_under_two_types(emulator: Emulator) -> None:
    jobname = emulator.create_finished(files=[
        {"type": "input", "name": "code.jl", "content": b64(b"input")},
        {"type": "source", "name": "code.jl", "content": b64(b"source")},
    ])  # fmt: skip
    assert get(emulator, f"/jobs/{jobname}/files/code.jl", filetype="input").content == b"input"
    assert get(emulator, f"/jobs/{jobname}/files/code.jl", filetype="source").content == b"source"


def test_uploading_file_then_finished(emulator: Emulator) -> None:
    jobname = emulator.create_finished(
        files=[{"type": "result", "name": "late.bin", "uploading": True}]
    )
    (entry,) = job_object(emulator, jobname)["files"]
    assert entry["size"] is None and entry["hash"]["value"] is None
    url = f"/jobs/{jobname}/files/late.bin"
    assert get(emulator, url, filetype="result").status_code == 404
    emulator.admin("POST", f"jobs/{jobname}/files",
                   {"type": "result", "name": "late.bin", "content": b64(b"now here")})  # fmt: skip
    (entry,) = job_object(emulator, jobname)["files"]
    assert entry["size"] == 8
    assert entry["hash"]["value"] == b64(hashlib.sha256(b"now here").digest())
    assert get(emulator, url, filetype="result").content == b"now here"


def test_hex_hashes_and_millisecond_log_timestamps_on_request(emulator: Emulator) -> None:
    jobname = emulator.create_finished(
        log_lines=3, hex_hashes=True, ms_timestamps=True,
        files=[{"type": "result", "name": "r.txt", "content": b64(b"r")}],
    )  # fmt: skip
    (entry,) = job_object(emulator, jobname)["files"]
    assert entry["hash"]["value"] == hashlib.sha256(b"r").hexdigest()
    page = logs(emulator, jobname)
    stamps = [m["timestamp"] for m in page[1:-1]]
    assert all(isinstance(stamp, int) for stamp in stamps) and stamps == sorted(stamps)
    newer = logs(emulator, jobname, event_id="1", start_time=stamps[0])
    assert [m.get("eventId") for m in newer] == ["2", "3", None]
