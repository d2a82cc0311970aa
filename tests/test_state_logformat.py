"""The two renderings of log messages: text lines and JSON lines (JobLogMessage's fields)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from jhfs.client.models import parse_log_page
from jhfs.state.logformat import Rendering


def messages(*objects: dict[str, Any]) -> Any:
    """Log messages as the client parses them from a get_logs body."""
    return parse_log_page(json.dumps(json.dumps(list(objects)))).messages


def jsonl(*objects: dict[str, Any]) -> list[dict[str, Any]]:
    data = Rendering.JSONL.encode(messages(*objects))
    assert data.endswith(b"\n") and data.count(b"\n") == len(objects)
    return [json.loads(line) for line in data.decode("utf-8").splitlines()]


def test_a_message_keeps_every_field_the_server_sent() -> None:
    keywords = {"jrun_hostname": "h-1", "jrun_worker_id": 1, "user": {"nested": [1, 2.5, None]}}
    metadata = {"level": "Warn", "_module": "Main", "line": 141, "id": "Main_1a"}
    (obj,) = jsonl(
        {
            "message": "loss 0.25",
            "timestamp": "2024-05-01T12:00:00.250Z",
            "eventId": "17",
            "keywords": keywords,
            "metadata": metadata,
        }
    )
    assert obj == {
        "timestamp": "2024-05-01T12:00:00.250Z",
        "eventId": "17",
        "message": "loss 0.25",
        "keywords": keywords,
        "metadata": metadata,
    }


def test_timestamps_are_iso_utc_with_milliseconds_whatever_form_they_came_in() -> None:
    objects = jsonl(
        {"message": "a", "timestamp": 1714564800250, "eventId": 1},  # unix ms, int id
        {"message": "b", "timestamp": "2024-05-01T14:00:00.250+02:00"},
        {"message": "c", "timestamp": "2024-05-01T12:00:00.250999"},  # no offset: UTC
        {"message": "d"},
    )
    assert [o["timestamp"] for o in objects] == [
        "2024-05-01T12:00:00.250Z",
        "2024-05-01T12:00:00.250Z",
        "2024-05-01T12:00:00.250Z",  # finer than milliseconds: cut
        None,
    ]
    assert [o["eventId"] for o in objects] == ["1", None, None, None]
    assert [(o["keywords"], o["metadata"]) for o in objects] == [({}, {})] * 4


def test_text_stays_text_and_a_lone_surrogate_stays_its_escape() -> None:
    body = '[{"message": "caf\\u00e9 \\ud83d\\ude00 a\\nb \\udc80 end"}]'
    (message,) = parse_log_page(json.dumps(body)).messages
    data = Rendering.JSONL.encode([message])
    # Non-ASCII as itself (greppable), the line break escaped: one line per message.
    assert "café 😀".encode() in data and data.count(b"\n") == 1
    assert b"\\udc80" in data  # as it came: valid JSON, not a byte that is no UTF-8
    assert json.loads(data)["message"] == message.message
    text = Rendering.TEXT.encode([message])
    assert text == "café 😀 a\nb ? end\n".encode()


def test_nan_and_infinity_the_server_sent_are_null_so_every_line_is_json() -> None:
    # Python's parser takes NaN and Infinity, which JSON has not: strict parsers
    # (jq) would refuse the whole file.
    body = '"[{\\"message\\": \\"x\\", \\"eventId\\": \\"1\\", '
    body += '\\"keywords\\": {\\"loss\\": NaN, \\"v\\": [Infinity, 1.5]}, '
    body += '\\"metadata\\": {\\"t\\": -Infinity}}]"'
    data = Rendering.JSONL.encode(parse_log_page(body).messages)
    strict = json.loads(data, parse_constant=lambda name: pytest.fail(f"{name} in the output"))
    assert strict["keywords"] == {"loss": None, "v": [None, 1.5]}
    assert strict["metadata"] == {"t": None}
