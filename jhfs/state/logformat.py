"""How a job's log messages are written out: the two renderings of one log.

`logs` is the text, every message + "\\n". `logs.jsonl` is one JSON object per
message and line, with the fields of JuliaHub.jl's JobLogMessage:

    {"timestamp": "2024-05-01T12:00:00.250Z", "eventId": "17", "message": "...",
     "keywords": {...}, "metadata": {...}}

- `timestamp`: ISO 8601 in UTC with milliseconds and a `Z`, as the server
  writes it, whichever form it came in (ISO text with any offset, or unix
  milliseconds); null when the server gave none. Milliseconds are the log's
  own unit (the server pages by them): finer digits are cut.
- `eventId`: the server's id of the message, as a string (null if none).
- `message`: the text, as in `logs`.
- `keywords`, `metadata`: the objects as the server sent them ({} for null).

Both are written from the same fetched messages (jhfs.state.logs), so line N
of one is message N of the other.
"""

from __future__ import annotations

import enum
import json
import math
from collections.abc import Sequence

from jhfs.client import LogMessage
from jhfs.client.models import format_timestamp

# Compact, and non-ASCII text as itself (greppable) rather than \\u escapes.
# allow_nan=False: a NaN or Infinity the server sent (Python's parser takes them)
# is not JSON, and would break `jq` on the whole file; see _finite.
_JSON = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False)


class Rendering(enum.Enum):
    """A file of a job's log; its value is the suffix of its file in the cache."""

    TEXT = ".log"
    JSONL = ".jsonl"

    def encode(self, messages: Sequence[LogMessage]) -> bytes:
        """The bytes of `messages` in this rendering, one line each."""
        if self is Rendering.TEXT:
            text = "".join(m.message + "\n" for m in messages)
            # A lone surrogate from a JSON escape cannot be UTF-8: shown as "?".
            return text.encode("utf-8", "replace")
        text = "".join(_encode(_fields(m)) + "\n" for m in messages)
        # Here a lone surrogate is inside a JSON string, where backslashreplace
        # writes it as the JSON escape it came as (\\udc80): kept, and still JSON.
        return text.encode("utf-8", "backslashreplace")


def _encode(fields: dict[str, object]) -> str:
    try:
        return _JSON.encode(fields)
    except ValueError:  # a NaN or an Infinity somewhere in keywords or metadata
        return _JSON.encode(_finite(fields))


def _finite(value: object) -> object:
    """`value` with each NaN and Infinity as null, which JSON can say."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {key: _finite(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_finite(item) for item in value]
    return value


def _fields(message: LogMessage) -> dict[str, object]:
    return {
        "timestamp": format_timestamp(message.timestamp),
        "eventId": message.event_id,
        "message": message.message,
        "keywords": message.keywords,
        "metadata": message.metadata,
    }
