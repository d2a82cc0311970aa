"""Waiting on behalf of a user operation, so that the wait can end early.

Once the kernel has passed a request to the filesystem, the process behind it
waits for the answer even through Ctrl-C or SIGKILL. So a user operation
never blocks in a request itself: the request runs on a bounded pool of
worker threads (`Waiter.submit`, in the operation's context so its deadline
goes with it), and the operation's thread waits for it in short steps,
asking `abandoned` between them. `abandoned` answers whether nobody waits
any more (EINTR), and raises once the operation's deadline has passed or
the mount is ending. The work itself goes on; what it fetches is cached for
the next caller.
"""

from __future__ import annotations

import contextvars
import threading
import time
from collections.abc import Callable

from jhfs.client import TransferCancelled
from jhfs.state.pools import WorkerPool

POLL = 0.1  # seconds between checks: Ctrl-C is answered within this
WORKERS = 8  # requests run at once for user operations, mount-wide


def pause(seconds: float, abandoned: Callable[[], bool]) -> bool:
    """Sleep `seconds` in POLL steps; False as soon as `abandoned` says nobody waits
    (whatever `abandoned` raises goes to the caller)."""
    end = time.monotonic() + seconds
    while (now := time.monotonic()) < end:
        time.sleep(min(POLL, end - now))
        if abandoned():
            return False
    return True


class Waiter:
    """A bounded pool for user operations' requests, and the wait for them."""

    def __init__(self, abandoned: Callable[[], bool], workers: int = WORKERS) -> None:
        self._abandoned = abandoned
        self._pool = WorkerPool("jhfs-request", workers)

    def submit(self, work: Callable[[], None]) -> None:
        """Run `work` on the pool, in the caller's context (its deadline)."""
        context = contextvars.copy_context()
        if not self._pool.submit(lambda: context.run(work)):
            work()  # the mount is ending: in this thread, as without a Waiter

    def wait(self, done: threading.Event, what: str) -> None:
        """Until `done` is set; TransferCancelled once nobody waits for `what`."""
        while not done.wait(POLL):
            if self._abandoned():
                raise TransferCancelled(f"stopped waiting for {what}")

    def close(self) -> None:
        """Take no more work; what is queued still runs, on daemon threads that
        do not hold up the end of the process."""
        self._pool.shutdown()
