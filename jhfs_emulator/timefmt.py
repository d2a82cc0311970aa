"""Timestamp formats of the wire protocol.

Job timestamps are ISO 8601 with an explicit `+00:00` offset and milliseconds;
log timestamps are ISO 8601 in UTC with a trailing `Z` and milliseconds (the
official client parses them with Julia's `DateTime`, which takes at most
millisecond precision).
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from functools import lru_cache


def now_ms() -> int:
    return time.time_ns() // 1_000_000


@lru_cache(maxsize=8192)
def _second_prefix(seconds: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds))


def log_timestamp(ms: int) -> str:
    """`2023-03-15T07:56:51.251Z` for unix milliseconds."""
    seconds, millis = divmod(ms, 1000)
    return f"{_second_prefix(seconds)}.{millis:03d}Z"


def job_timestamp(ms: int | None) -> str | None:
    """`2023-03-15T07:56:50.974+00:00` for unix milliseconds (None stays None)."""
    if ms is None:
        return None
    seconds, millis = divmod(ms, 1000)
    return f"{_second_prefix(seconds)}.{millis:03d}+00:00"


def upload_timestamp(ms: int) -> str:
    """Upload timestamps carry microseconds, as the real service's do."""
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="microseconds")
