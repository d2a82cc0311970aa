"""Single flight: concurrent callers asking for the same key share one call.

The first caller runs the function; the others wait for it and get its result
or its exception. Nothing is remembered afterwards, so a call after a failure
tries again (caching results is the caller's business).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar, cast

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class _Call(Generic[V]):
    __slots__ = ("done", "error", "value", "waiters")

    def __init__(self) -> None:
        self.done = threading.Event()
        self.waiters = 0
        self.value: V | None = None
        self.error: BaseException | None = None


class SingleFlight(Generic[K, V]):
    """At most one call per key in flight; its lock is never held while the call runs."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._calls: dict[K, _Call[V]] = {}

    def do(self, key: K, fn: Callable[[], V]) -> V:
        with self._lock:
            call = self._calls.get(key)
            leader = call is None
            if call is None:
                call = self._calls[key] = _Call()
            else:
                call.waiters += 1
        if not leader:
            call.done.wait()
            if call.error is not None:
                raise call.error
            return cast(V, call.value)  # set whenever error is None
        try:
            call.value = fn()
            return call.value
        except BaseException as error:
            call.error = error
            raise
        finally:
            with self._lock:
                del self._calls[key]
            call.done.set()

    def waiting(self, key: K) -> int:
        """How many callers are waiting for the call in flight for `key` (0 if none)."""
        with self._lock:
            call = self._calls.get(key)
            return call.waiters if call is not None else 0
