"""How fast and how long the client may talk to the server: the mount-wide rate
limit, and the deadline of the user operation a request serves.

JuliaHub is shared: a client that floods it gets its token throttled. Every
request takes a token from one bucket (`RateLimiter`). A request someone is
waiting for (a lookup, a read, a ctl command) takes its token and goes at
once, leaving the bucket in debt if need be (a download's requests too: a
download nobody reads pauses); a background request (following a log that a
program holds open) waits until the bucket has a token for it, so the
foreground's requests go first and the background's average rate stays
within the limit.

A user operation has one deadline for everything it waits on: requests,
retries, slow bodies and other threads' work (`operation_deadline`, set at
the FUSE edge, read with `remaining`). It is a context variable, so it
follows the operation into whatever runs in its context and nowhere else:
background work has none.
"""

from __future__ import annotations

import contextvars
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from jhfs.client.errors import DeadlineExceeded

DEFAULT_RATE = 10.0  # requests per second, mount-wide (-o max_rate=N)
# Requests the foreground may send at once before background ones wait
# (`ls -l` of a new job sends a few).
BURST = 10

_deadline: contextvars.ContextVar[float | None] = contextvars.ContextVar(
    "jhfs_deadline", default=None
)
_background: contextvars.ContextVar[bool] = contextvars.ContextVar("jhfs_background", default=False)


class RateLimiter:
    """A token bucket of `rate` tokens a second, holding at most `burst`.

    Thread-safe. `reserve` never sleeps itself: it returns how long the
    caller must wait, so that threads and an asyncio loop can both use it.
    """

    def __init__(
        self,
        rate: float = DEFAULT_RATE,
        burst: int = BURST,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if rate <= 0:
            raise ValueError("the rate must be > 0")
        self.rate = rate
        self._burst = float(burst)
        self._clock = clock
        self._lock = threading.Lock()
        self._tokens = self._burst
        self._at = clock()

    def reserve(self, *, background: bool) -> float:
        """Take a token; the seconds to wait before sending (always 0 in the foreground)."""
        with self._lock:
            now = self._clock()
            self._tokens = min(self._burst, self._tokens + (now - self._at) * self.rate)
            self._at = now
            if not background:
                # The debt is bounded, so that a burst of user requests delays
                # the background by at most burst / rate seconds.
                self._tokens = max(self._tokens - 1, -self._burst)
                return 0.0
            self._tokens -= 1
            return max(0.0, -self._tokens / self.rate)


class RecentCounts:
    """What was counted in the last `window` seconds, and in all: the requests a mount
    sent, the bytes a download received (what `jhfs status` shows).

    Thread-safe; bounded: one bucket per second of the window.
    """

    def __init__(self, window: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.window = window
        self._clock = clock
        self._lock = threading.Lock()
        self._buckets: deque[list[int]] = deque()  # [second, amount], oldest first
        self._total = 0
        self._since = clock()  # when counting began (or `restart`)

    def add(self, amount: int = 1) -> None:
        with self._lock:
            second = int(self._clock())
            if self._buckets and self._buckets[-1][0] == second:
                self._buckets[-1][1] += amount
            else:
                self._buckets.append([second, amount])
                self._drop_old(second)
            self._total += amount

    def restart(self) -> None:
        """Count the rate from now (a download resumed after a pause)."""
        with self._lock:
            self._buckets.clear()
            self._since = self._clock()

    @property
    def total(self) -> int:
        """All that was counted."""
        with self._lock:
            return self._total

    def recent(self) -> int:
        """What was counted in the last `window` seconds (the current one included)."""
        with self._lock:
            self._drop_old(int(self._clock()))
            return sum(amount for _, amount in self._buckets)

    def rate(self) -> float:
        """The recent amount a second: over the window, or the time counted if shorter."""
        with self._lock:
            now = self._clock()
            self._drop_old(int(now))
            recent = sum(amount for _, amount in self._buckets)
            # The buckets kept began at the start of the window's first second.
            span = now - max(int(now) - self.window + 1, self._since)
        return recent / span if span > 0 else 0.0

    def _drop_old(self, second: int) -> None:
        # Lock held.
        while self._buckets and self._buckets[0][0] <= second - self.window:
            self._buckets.popleft()


@contextmanager
def background() -> Iterator[None]:
    """Requests made inside wait their turn on the rate limit."""
    token = _background.set(True)
    try:
        yield
    finally:
        _background.reset(token)


def in_background() -> bool:
    return _background.get()


@contextmanager
def operation_deadline(seconds: float) -> Iterator[None]:
    """Everything done inside must end within `seconds` (DeadlineExceeded after)."""
    token = _deadline.set(time.monotonic() + seconds)
    try:
        yield
    finally:
        _deadline.reset(token)


def remaining() -> float | None:
    """Seconds left before the current operation's deadline (None: no deadline).

    Raises DeadlineExceeded once it has passed.
    """
    deadline = _deadline.get()
    if deadline is None:
        return None
    left = deadline - time.monotonic()
    if left <= 0:
        raise DeadlineExceeded("the operation took longer than its deadline (-o timeout)")
    return left
