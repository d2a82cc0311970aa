"""Injected faults and request statistics, for testing and benchmarking clients.

A fault applies to the next `count` requests of one endpoint (or `*`): answer
with an HTTP status (and Retry-After), answer late, cut the connection
mid-body (a TCP reset), end the body early (a clean close short of
Content-Length), or flip some bytes of the body (length unchanged).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass
from typing import Any

ENDPOINTS = frozenset(
    {"get_jobs", "job", "kill_job", "extend_job", "get_logs", "download", "api_v1", "stream_logs"}
)
MODES = frozenset({"status", "delay", "reset", "truncate", "corrupt"})


class FaultSpecError(ValueError):
    """A fault request that cannot be honoured."""


@dataclass
class Fault:
    endpoint: str
    mode: str
    count: int = 1
    status: int = 503
    retry_after: float | None = None
    delay: float = 1.0

    @classmethod
    def from_spec(cls, spec: Any) -> Fault:
        if not isinstance(spec, dict):
            raise FaultSpecError("a fault is a JSON object")
        endpoint, mode = spec.get("endpoint", "*"), spec.get("mode", "status")
        if endpoint != "*" and endpoint not in ENDPOINTS:
            raise FaultSpecError(f"endpoint must be * or one of {sorted(ENDPOINTS)}")
        if mode not in MODES:
            raise FaultSpecError(f"mode must be one of {sorted(MODES)}")
        count, status = spec.get("count", 1), spec.get("status", 503)
        retry_after, delay = spec.get("retry_after"), spec.get("delay", 1.0)
        if not isinstance(count, int) or count < 1:
            raise FaultSpecError("count must be a whole number >= 1")
        if not isinstance(status, int) or not 100 <= status <= 599:
            raise FaultSpecError("status must be an HTTP status code")
        if retry_after is not None and not isinstance(retry_after, int | float):
            raise FaultSpecError("retry_after must be a number of seconds")
        if not isinstance(delay, int | float) or delay < 0:
            raise FaultSpecError("delay must be a number of seconds >= 0")
        return cls(endpoint, mode, count, status, retry_after, float(delay))

    def wire(self) -> dict[str, Any]:
        return asdict(self)


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

    def take(self, endpoint: str) -> Fault | None:
        """The fault for this request, if any (one of its `count` is used up)."""
        for fault in self._pending:
            if fault.endpoint in ("*", endpoint):
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
