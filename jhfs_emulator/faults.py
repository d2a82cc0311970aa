"""Injected faults and request statistics, for testing and benchmarking clients.

There are two kinds of fault, both added with POST /_emulator/faults:

- One-shot faults apply to the next `count` requests (default 1) of one
  endpoint (or `*`): answer with an HTTP status (and Retry-After, and `body`:
  a text answered as is instead of the JSON failure), answer late,
  cut the connection mid-body (a TCP reset), end the body early (a clean close
  short of Content-Length), or flip some bytes of the body (length unchanged).
  A request takes at most one of them, the first matching in the order added.
- Shaping faults change how download bodies are sent, as a storage service
  would: `throttle` paces every download connection on its own to `rate`
  bytes/s, `no_range` ignores the Range header (200 with the whole file).
  They stay until DELETE /_emulator/faults unless `count` is given, and are
  consulted in addition to the one-shot fault, so a download can be throttled
  and also corrupted or cut. Per mode the first matching one applies.

Any fault can be limited to the requests about one job (`jobname`); only the
endpoints in JOB_ENDPOINTS are about a job. Every matching request uses up one
of a fault's `count`, whatever its answer turns out to be.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

JOB_ENDPOINTS = frozenset({"job", "kill_job", "extend_job", "get_logs", "download", "stream_logs"})
ENDPOINTS = JOB_ENDPOINTS | {"get_jobs", "api_v1", "graphql"}
SHAPING_MODES = frozenset({"throttle", "no_range"})
MODES = frozenset({"status", "delay", "reset", "truncate", "corrupt"}) | SHAPING_MODES


class FaultSpecError(ValueError):
    """A fault request that cannot be honoured."""


@dataclass
class Fault:
    endpoint: str
    mode: str
    count: int | None = 1  # None: until the faults are cleared
    status: int = 503
    retry_after: float | None = None
    delay: float = 1.0
    rate: float | None = None  # bytes per second per connection, for throttle
    jobname: str | None = None
    body: str | None = None  # for status: the answer's text, instead of the JSON failure

    @classmethod
    def from_spec(cls, spec: Any) -> Fault:
        if not isinstance(spec, dict):
            raise FaultSpecError("a fault is a JSON object")
        endpoint, mode = spec.get("endpoint", "*"), spec.get("mode", "status")
        if endpoint != "*" and endpoint not in ENDPOINTS:
            raise FaultSpecError(f"endpoint must be * or one of {sorted(ENDPOINTS)}")
        if mode not in MODES:
            raise FaultSpecError(f"mode must be one of {sorted(MODES)}")
        if mode in SHAPING_MODES and endpoint != "download":
            raise FaultSpecError(f"mode {mode} shapes download bodies: endpoint must be download")
        count = spec.get("count", None if mode in SHAPING_MODES else 1)
        status, retry_after = spec.get("status", 503), spec.get("retry_after")
        delay, rate, jobname = spec.get("delay", 1.0), spec.get("rate"), spec.get("jobname")
        body = spec.get("body")
        if "count" in spec and (not isinstance(count, int) or count < 1):
            raise FaultSpecError("count must be a whole number >= 1")
        if not isinstance(status, int) or not 100 <= status <= 599:
            raise FaultSpecError("status must be an HTTP status code")
        if retry_after is not None and not isinstance(retry_after, int | float):
            raise FaultSpecError("retry_after must be a number of seconds")
        if not isinstance(delay, int | float) or delay < 0:
            raise FaultSpecError("delay must be a number of seconds >= 0")
        if mode == "throttle" and not _positive_number(rate):
            raise FaultSpecError("rate must be a number of bytes per second > 0")
        if mode != "throttle" and rate is not None:
            raise FaultSpecError("rate is for mode throttle only")
        if body is not None and (mode != "status" or not isinstance(body, str)):
            raise FaultSpecError("body is a string, for mode status only")
        if jobname is not None and (not isinstance(jobname, str) or not jobname):
            raise FaultSpecError("jobname must be a job's name")
        if jobname is not None and endpoint != "*" and endpoint not in JOB_ENDPOINTS:
            raise FaultSpecError(
                f"jobname needs * or an endpoint about a job: {sorted(JOB_ENDPOINTS)}"
            )
        return cls(
            endpoint, mode, count, status, retry_after, float(delay),
            None if rate is None else float(rate), jobname, body,
        )  # fmt: skip

    def matches(self, endpoint: str, jobname: str | None) -> bool:
        return self.endpoint in ("*", endpoint) and self.jobname in (None, jobname)

    def wire(self) -> dict[str, Any]:
        return asdict(self)


def _positive_number(value: Any) -> bool:
    return (
        isinstance(value, int | float)
        and not isinstance(value, bool)
        and math.isfinite(value)
        and value > 0
    )


@dataclass(frozen=True)
class Shaping:
    """How one download body is sent: its pace, and whether Range is honoured."""

    rate: float | None = None
    no_range: bool = False


class Faults:
    """The pending faults, consumed in the order they were added."""

    def __init__(self) -> None:
        self._pending: list[Fault] = []

    def add(self, fault: Fault) -> None:
        self._pending.append(fault)

    def clear(self) -> None:
        self._pending.clear()

    def pending(self) -> list[Fault]:
        return list(self._pending)

    def take(self, endpoint: str, jobname: str | None) -> Fault | None:
        """The one-shot fault for this request, if any (one of its `count` is used up)."""
        return self._use(endpoint, jobname, lambda mode: mode not in SHAPING_MODES)

    def shaping(self, jobname: str | None) -> Shaping:
        """How to send this download's body (one `count` of each shaping fault used is used up)."""
        throttle = self._use("download", jobname, lambda mode: mode == "throttle")
        no_range = self._use("download", jobname, lambda mode: mode == "no_range")
        return Shaping(None if throttle is None else throttle.rate, no_range is not None)

    def _use(
        self, endpoint: str, jobname: str | None, wanted: Callable[[str], bool]
    ) -> Fault | None:
        for fault in self._pending:
            if wanted(fault.mode) and fault.matches(endpoint, jobname):
                if fault.count is not None:
                    fault.count -= 1
                    if fault.count == 0:
                        self._pending.remove(fault)
                return fault
        return None


class Stats:
    """Requests per endpoint name and bytes sent in response bodies."""

    def __init__(self) -> None:
        self.requests: Counter[str] = Counter()
        self.bytes_sent = 0
        self.missing_hasura_headers = 0

    def reset(self) -> None:
        self.requests.clear()
        self.bytes_sent = 0
        self.missing_hasura_headers = 0

    def wire(self) -> dict[str, Any]:
        return {
            "requests": dict(self.requests),
            "bytes_sent": self.bytes_sent,
            "missing_hasura_headers": self.missing_hasura_headers,
        }
