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
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from jhfs.client import TransferCancelled

POLL = 0.1  # seconds between checks: Ctrl-C is answered within this
WORKERS = 8  # requests run at once for user operations, mount-wide


class Waiter:
    """A bounded pool for user operations' requests, and the wait for them."""

    def __init__(self, abandoned: Callable[[], bool], workers: int = WORKERS) -> None:
        self._abandoned = abandoned
        self._pool = ThreadPoolExecutor(workers, thread_name_prefix="jhfs-request")

    def submit(self, work: Callable[[], None]) -> None:
        """Run `work` on the pool, in the caller's context (its deadline)."""
        self._pool.submit(contextvars.copy_context().run, work)

    def wait(self, done: threading.Event, what: str) -> None:
        """Until `done` is set; TransferCancelled once nobody waits for `what`."""
        while not done.wait(POLL):
            if self._abandoned():
                raise TransferCancelled(f"stopped waiting for {what}")

    def close(self) -> None:
        """Work not started yet is dropped; work in progress ends with its requests."""
        self._pool.shutdown(wait=False, cancel_futures=True)
