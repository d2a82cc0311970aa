"""Parsing of job, file, hash and log objects, with every quirk of the wire protocol."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import logging
from typing import Any

import pytest

from jhfs.client import NotFoundError, ServerError
from jhfs.client.models import (
    FileHash,
    parse_file_hash,
    parse_inputs,
    parse_job,
    parse_job_details,
    parse_job_file,
    parse_jobs,
    parse_log_message,
    parse_log_page,
    parse_proxy_hostname,
    parse_timestamp,
)

DIGEST = hashlib.sha256(b"hello").digest()
UTC = dt.UTC


def job_object(**overrides: Any) -> dict[str, Any]:
    """A job object shaped as the real service sends it (JuliaHub.jl's test fixtures)."""
    obj: dict[str, Any] = {
        "id": 2955,
        "jobname": "jr-eezd3arpcj",
        "jobname_alias": None,
        "status": "Completed",
        "inputs": '{"jobname":"jr-eezd3arpcj","RESULTS_FILE":"out.txt"}',
        "outputs": '{"x": 1}',
        "files": [
            {
                "name": "code.jl",
                "type": "input",
                "size": 3,
                "hash": {"algorithm": "sha2_256", "value": base64.b64encode(DIGEST).decode()},
                "upload_timestamp": "2023-03-15T07:56:52.174+00:00",
            },
        ],
        "submittimestamp": "2023-03-15T07:56:50.974+00:00",
        "starttimestamp": "2023-03-15T07:56:51.251+00:00",
        "endtimestamp": "2023-03-15T07:56:59.000+00:00",
    }
    obj.update(overrides)
    return obj


def test_job_fields_and_raw_kept_exactly() -> None:
    obj = job_object(jobname_alias="my alias")
    original = json.loads(json.dumps(obj))
    job = parse_job(obj)
    assert job.jobname == "jr-eezd3arpcj"
    assert job.id == 2955
    assert job.alias == "my alias"
    assert job.status == "Completed" and job.is_done
    assert job.inputs == {"jobname": "jr-eezd3arpcj", "RESULTS_FILE": "out.txt"}
    assert job.outputs == '{"x": 1}'
    assert job.submitted == dt.datetime(2023, 3, 15, 7, 56, 50, 974000, tzinfo=UTC)
    assert job.ended == dt.datetime(2023, 3, 15, 7, 56, 59, tzinfo=UTC)
    assert job.hostname is None
    assert job.raw == original
    (file,) = job.files
    assert (file.jobname, file.type, file.name, file.size) == (
        "jr-eezd3arpcj",
        "input",
        "code.jl",
        3,
    )
    assert file.hash == FileHash("sha2_256", DIGEST)
    assert file.hash.hex == DIGEST.hex()
    assert file.is_uploaded


def test_job_repr_leaves_out_raw() -> None:
    assert "inputs" in repr(parse_job(job_object()))
    assert "raw=" not in repr(parse_job(job_object()))


@pytest.mark.parametrize("status", ["Submitted", "Running", "Failed", "Stopped", "Completed"])
def test_known_statuses(status: str) -> None:
    job = parse_job(job_object(status=status))
    assert job.status == status
    assert job.is_done == (status in ("Failed", "Stopped", "Completed"))


def test_unknown_status_passed_through() -> None:
    job = parse_job(job_object(status="Queued for the moon"))
    assert job.status == "Queued for the moon"
    assert not job.is_done


@pytest.mark.parametrize("status", ["completed", "RUNNING", " Failed", "stopped "])
def test_miscased_known_status_is_server_error(status: str) -> None:
    with pytest.raises(ServerError, match="status"):
        parse_job(job_object(status=status))


@pytest.mark.parametrize(
    ("inputs", "expected"),
    [
        (None, {}),
        ("", {}),
        ('{"a": "b", "n": 1}', {"a": "b", "n": 1}),
        # backslash-escaped JSON text, as some servers store it
        ('{\\"a\\": \\"b\\", \\"path\\": \\"C:\\\\\\\\x\\"}', {"a": "b", "path": "C:\\x"}),
        # valid JSON whose strings carry JSON escapes: not to be unescaped first
        ('{"a": "line1\\nline2", "q": "say \\"hi\\""}', {"a": "line1\nline2", "q": 'say "hi"'}),
        # doubly encoded
        (json.dumps(json.dumps({"a": "b"})), {"a": "b"}),
    ],
)
def test_inputs_quirks(inputs: str | None, expected: dict[str, Any]) -> None:
    assert parse_inputs(inputs) == expected
    assert parse_job(job_object(inputs=inputs)).inputs == expected


@pytest.mark.parametrize("inputs", ["{not json", "[1, 2]", "42", 5, ["a"]])
def test_bad_inputs_are_server_errors(inputs: Any) -> None:
    with pytest.raises(ServerError, match="inputs"):
        parse_job(job_object(inputs=inputs))


def test_size_null_is_zero_and_hash_members_null_mean_unfinished() -> None:
    file = parse_job_file(
        "jr-x",
        {
            "name": "out.tar.gz",
            "type": "result",
            "size": None,
            "hash": {"algorithm": None, "value": None},
        },
    )
    assert file.size == 0
    assert file.hash == FileHash(None, None)
    assert file.hash.hex is None
    assert not file.is_uploaded
    assert file.upload_timestamp is None


def test_one_hash_member_null_is_not_uploaded() -> None:
    value = base64.b64encode(DIGEST).decode()
    half = parse_job_file(
        "jr-x",
        {"name": "a", "type": "result", "size": 5, "hash": {"algorithm": None, "value": value}},
    )
    assert half.hash.digest == DIGEST and not half.is_uploaded
    other = parse_job_file(
        "jr-x",
        {
            "name": "a",
            "type": "result",
            "size": 5,
            "hash": {"algorithm": "sha2_256", "value": None},
        },
    )
    assert not other.is_uploaded


def test_hash_value_base64_or_hex_give_the_same_digest() -> None:
    b64 = parse_file_hash({"algorithm": "sha2_256", "value": base64.b64encode(DIGEST).decode()})
    hex_lower = parse_file_hash({"algorithm": "sha2_256", "value": DIGEST.hex()})
    hex_upper = parse_file_hash({"algorithm": "sha2_256", "value": DIGEST.hex().upper()})
    assert b64.digest == hex_lower.digest == hex_upper.digest == DIGEST


@pytest.mark.parametrize("value", ["not base64 at all!", "abc", DIGEST.hex()[:-2], 17])
def test_bad_hash_values_are_server_errors(value: Any) -> None:
    with pytest.raises(ServerError, match="hash"):
        parse_file_hash({"algorithm": "sha2_256", "value": value})


def test_unknown_file_type_and_algorithm_kept() -> None:
    file = parse_job_file(
        "jr-x",
        {
            "name": "n",
            "type": "appbundle",
            "size": 1,
            "hash": {"algorithm": "blake3", "value": base64.b64encode(b"\x01\x02").decode()},
        },
    )
    assert file.type == "appbundle"
    assert file.hash == FileHash("blake3", b"\x01\x02")


@pytest.mark.parametrize(
    "entry",
    [
        {"type": "input", "size": 1},  # no name
        {"name": "a", "size": 1},  # no type
        {"name": "a", "type": "input", "size": -1},
        {"name": "a", "type": "input", "size": "12"},
        {"name": "a", "type": "input", "size": 2**63},  # no st_size can hold it
        {"name": "a", "type": "input", "size": True},
        {"name": "a", "type": "input", "size": 1, "hash": "abc"},
        "a string",
    ],
)
def test_malformed_files_are_server_errors(entry: Any) -> None:
    with pytest.raises(ServerError):
        parse_job(job_object(files=[entry]))


def test_files_absent_or_null() -> None:
    obj = job_object()
    del obj["files"]
    assert parse_job(obj).files == ()
    assert parse_job(job_object(files=None)).files == ()
    with pytest.raises(ServerError, match="files"):
        parse_job(job_object(files={"name": "a"}))


def test_same_name_under_two_types() -> None:
    files = [
        {"name": "code.jl", "type": t, "size": 3, "hash": {"algorithm": None, "value": None}}
        for t in ("input", "source")
    ]
    job = parse_job(job_object(files=files))
    assert [(f.type, f.name) for f in job.files] == [("input", "code.jl"), ("source", "code.jl")]


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2023-03-15T07:56:50.974+00:00", dt.datetime(2023, 3, 15, 7, 56, 50, 974000, tzinfo=UTC)),
        ("2023-03-15T09:56:50.974+02:00", dt.datetime(2023, 3, 15, 7, 56, 50, 974000, tzinfo=UTC)),
        ("2023-03-15T07:56:50.974Z", dt.datetime(2023, 3, 15, 7, 56, 50, 974000, tzinfo=UTC)),
        ("2023-03-15T07:56:50", dt.datetime(2023, 3, 15, 7, 56, 50, tzinfo=UTC)),
        (1678866410974, dt.datetime(2023, 3, 15, 7, 46, 50, 974000, tzinfo=UTC)),
        (0, dt.datetime(1970, 1, 1, tzinfo=UTC)),
        (None, None),
    ],
)
def test_timestamps(value: Any, expected: dt.datetime | None) -> None:
    assert parse_timestamp(value) == expected


@pytest.mark.parametrize(
    "value",
    ["yesterday", "2023-13-45T00:00:00Z", True, 1.5, [1], "0001-01-01T00:00:00+01:00"],
)
def test_bad_timestamps_are_server_errors(value: Any) -> None:
    with pytest.raises(ServerError, match=r"time|range"):
        parse_timestamp(value)
    with pytest.raises(ServerError):
        parse_job(job_object(starttimestamp=value))


def test_job_timestamps_may_be_null_or_missing() -> None:
    obj = job_object(starttimestamp=None, endtimestamp=None)
    del obj["submittimestamp"]
    job = parse_job(obj)
    assert (job.submitted, job.started, job.ended) == (None, None, None)


@pytest.mark.parametrize(
    ("link", "host"),
    [
        ("https://jr-abc.hub.example.com/", "jr-abc.hub.example.com"),
        ("https://jr-abc.hub.example.com", "jr-abc.hub.example.com"),
        ("http://jr-abc.hub.example.com/", None),
        ("https://jr-abc.hub.example.com/path", None),
        ("https://jr-abc.hub.example.com/?q=1", None),
        ("https://jr-abc.hub.example.com/#frag", None),
        ("https://user:pw@jr-abc.hub.example.com/", None),
        ("jr-abc.hub.example.com", None),
        ("https:///", None),
        ("", None),
        (None, None),
        (42, None),
        ("https://jr abc.hub.example.com/", None),
        ("https://jr-abc\x00.hub.example.com/", None),
        ("https://" + "a" * 5000 + ".example.com/", None),
        ("https://-jr.hub.example.com/", None),
        ("https://jr-abc.hub.example.com:443/", "jr-abc.hub.example.com"),
    ],
)
def test_proxy_link_only_bare_https_host(link: Any, host: str | None) -> None:
    assert parse_proxy_hostname(link) == host
    assert parse_job(job_object(proxy_link=link)).hostname == host


@pytest.mark.parametrize(
    "change",
    [
        {"jobname": None},
        {"jobname": ""},
        {"jobname": 12},
        {"status": None},
        {"status": 3},
        {"outputs": 7},
        {"jobname_alias": 5},
    ],
)
def test_wrong_types_are_server_errors(change: dict[str, Any]) -> None:
    with pytest.raises(ServerError, match="malformed"):
        parse_job(job_object(**change))


def test_outputs_null_is_empty() -> None:
    assert parse_job(job_object(outputs=None)).outputs == ""


def test_job_lists_and_details() -> None:
    jobs = parse_jobs([job_object(jobname="jr-a"), job_object(jobname="jr-b")])
    assert [j.jobname for j in jobs] == ["jr-a", "jr-b"]
    assert parse_job_details({"details": []}, "jr-a") is None
    job = parse_job_details({"details": [job_object(jobname="jr-a")]}, "jr-a")
    assert job is not None and job.jobname == "jr-a"
    with pytest.raises(ServerError, match="2 jobs"):
        parse_job_details({"details": [job_object(), job_object()]}, "jr-eezd3arpcj")
    with pytest.raises(ServerError, match="asked for job jr-a"):
        parse_job_details({"details": [job_object(jobname="jr-b")]}, "jr-a")
    bads: list[Any] = [{}, {"details": None}, [], "x"]
    for bad in bads:
        with pytest.raises(ServerError):
            parse_job_details(bad, "jr-a")
    with pytest.raises(ServerError):
        parse_jobs({"jobs": []})


def test_a_malformed_job_is_left_out_of_the_list_with_one_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    listing = [job_object(jobname="jr-a"), job_object(jobname="jr-bad", status="completed")]
    for _ in range(3):
        assert [j.jobname for j in parse_jobs(listing)] == ["jr-a"]
    warnings = [r.getMessage() for r in caplog.records if "left out" in r.getMessage()]
    assert len(warnings) == 1 and "jr-bad" in warnings[0]


# --- logs ------------------------------------------------------------------------------


def log_entry(n: int, **overrides: Any) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "message": f"line {n}",
        "timestamp": f"2024-01-02T03:04:05.{n % 1000:03d}Z",
        "eventId": str(n),
        "keywords": {"jrun_hostname": "h"},
        "metadata": {"level": "Info"},
    }
    entry.update(overrides)
    return entry


def log_body(entries: list[Any]) -> bytes:
    """The quirk: a JSON string whose content is the JSON array."""
    return json.dumps(json.dumps(entries)).encode()


def test_log_message_fields() -> None:
    message = parse_log_message(log_entry(7))
    assert message.message == "line 7"
    assert message.event_id == "7"
    assert message.timestamp == dt.datetime(2024, 1, 2, 3, 4, 5, 7000, tzinfo=UTC)
    assert message.timestamp_ms == 1704164645007
    assert message.keywords == {"jrun_hostname": "h"}
    assert message.metadata == {"level": "Info"}


def test_log_message_quirks() -> None:
    bare = parse_log_message({})
    assert (bare.message, bare.timestamp, bare.event_id, bare.keywords, bare.metadata) == (
        "",
        None,
        None,
        {},
        {},
    )
    assert bare.timestamp_ms is None
    as_ms = parse_log_message({"message": "m", "timestamp": 1704164645007, "eventId": "9"})
    assert as_ms.timestamp_ms == 1704164645007
    assert parse_log_message({"eventId": 12}).event_id == "12"
    for bad in ({"message": 3}, {"eventId": [1]}, {"keywords": "k"}, {"timestamp": "soon"}):
        with pytest.raises(ServerError):
            parse_log_message(bad)


def test_log_page_markers() -> None:
    top = {"_meta": True, "end": "top"}
    bottom = {"_meta": True, "end": "bottom"}
    page = parse_log_page(log_body([top, log_entry(1), log_entry(2), bottom]))
    assert [m.message for m in page.messages] == ["line 1", "line 2"]
    assert page.has_top and page.has_bottom
    middle = parse_log_page(log_body([log_entry(5)]))
    assert not middle.has_top and not middle.has_bottom
    empty = parse_log_page(log_body([top]))
    assert empty.messages == [] and empty.has_top and not empty.has_bottom


def test_log_page_accepts_a_bare_array_and_escapes() -> None:
    entries = [log_entry(1, message='quote " backslash \\ tab \t unicode é')]
    page = parse_log_page(json.dumps(entries))
    assert page.messages[0].message == 'quote " backslash \\ tab \t unicode é'
    assert parse_log_page(log_body(entries)).messages == page.messages


@pytest.mark.parametrize(
    "marker",
    [
        {"_meta": False, "end": "top"},
        {"_meta": "true", "end": "top"},
        {"_meta": 1, "end": "bottom"},
        {"_meta": True, "end": "middle"},
        {"_meta": True},
    ],
)
def test_malformed_markers_are_server_errors(marker: dict[str, Any]) -> None:
    with pytest.raises(ServerError, match="marker"):
        parse_log_page(log_body([marker, log_entry(1)]))


def test_misplaced_marker_is_accepted_with_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        page = parse_log_page(log_body([log_entry(1), {"_meta": True, "end": "top"}]))
    assert page.has_top
    assert "unexpected position" in caplog.text


@pytest.mark.parametrize(
    ("body", "error", "match"),
    [
        (b"not json", ServerError, "malformed"),
        (json.dumps("not an array").encode(), ServerError, "malformed"),
        (b"42", ServerError, "malformed"),
        (b'{"success": false, "reason": "backend down"}', ServerError, "backend down"),
        (b'{"success": false, "message": "oops"}', ServerError, "oops"),
        (b'{"success": false, "message": "Invalid jobname: jr-x"}', NotFoundError, "Invalid"),
        (b'{"something": "else"}', ServerError, "object"),
        (log_body([1, 2]), ServerError, "malformed"),
    ],
)
def test_bad_log_bodies(body: bytes, error: type[Exception], match: str) -> None:
    with pytest.raises(error, match=match):
        parse_log_page(body)


def test_json_nested_too_deep_is_a_malformed_answer() -> None:
    deep = "[" * 100_000 + "]" * 100_000
    with pytest.raises(ServerError, match="malformed"):
        parse_log_page(deep)


def test_a_malformed_message_is_dropped_not_the_page(caplog: pytest.LogCaptureFixture) -> None:
    bad = {**log_entry(2), "message": 42}
    with caplog.at_level(logging.WARNING):
        page = parse_log_page(log_body([log_entry(1), bad, log_entry(3)]))
    assert [m.event_id for m in page.messages] == ["1", "3"]
    assert "left out of the log" in caplog.text
