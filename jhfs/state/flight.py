"""Single flight: concurrent callers asking for the same key share one call.

The first caller starts the function; the others wait for it and get its
result or its exception. Nothing is remembered afterwards, so a call after a
failure tries again (caching results is the caller's business). Given a
Waiter, the call runs on the Waiter's pool and every caller, the first too,
waits for it there, so that each can give up on its own (Ctrl-C, deadline)
while the call goes on for the others.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar, cast

from jhfs.state.waiting import Waiter

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

    def do(self, key: K, fn: Callable[[], V], waiter: Waiter | None = None) -> V:
        with self._lock:
            call = self._calls.get(key)
            leader = call is None
            if call is None:
                call = self._calls[key] = _Call()
            else:
                call.waiters += 1
        if leader:
            if waiter is None:
                self._run(key, call, fn)
            else:
                waiter.submit(lambda: self._run(key, call, fn))
        if waiter is None:
            call.done.wait()
        else:
            waiter.wait(call.done, str(key))
        if call.error is not None:
            raise call.error
        return cast(V, call.value)  # set whenever error is None

    def _run(self, key: K, call: _Call[V], fn: Callable[[], V]) -> None:
        try:
            call.value = fn()
        except BaseException as error:
            call.error = error
        finally:
            with self._lock:
                del self._calls[key]
            call.done.set()

    def waiting(self, key: K) -> int:
        """How many callers are waiting for the call in flight for `key` (0 if none)."""
        with self._lock:
            call = self._calls.get(key)
            return call.waiters if call is not None else 0
