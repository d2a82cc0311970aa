"""The mount's bounded worker pools: what downloads run on instead of threads of their own.

Every download of a mount shares CONNECTION_WORKERS threads for its ranged
requests and HASH_WORKERS for hashing, so 60 slow downloads cost no more
threads than 6. A task does one turn (one chunk, a few hash blocks) and then
queues again behind the others: downloads take turns, and one beyond what
the workers can carry waits for its turn.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

logger = logging.getLogger(__name__)

CONNECTION_WORKERS = 16  # mount-wide; libfuse and the log follower add up to 13
HASH_WORKERS = 3  # sha256 releases the GIL: a few cores' worth


class WorkerPool:
    """A fixed number of threads running tasks in the order they came (FIFO)."""

    def __init__(self, name: str, workers: int) -> None:
        self._name = name
        self._executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix=name)

    def submit(self, task: Callable[[], None]) -> bool:
        """Queue `task`; False once the pool is shut down (the task will not run)."""
        try:
            self._executor.submit(self._run, task)
        except RuntimeError:  # shut down
            return False
        return True

    def _run(self, task: Callable[[], None]) -> None:
        # A future nobody looks at would swallow the error.
        try:
            task()
        except Exception:
            logger.exception("%s: a task failed", self._name)

    def shutdown(self) -> None:
        """Take no more tasks; the queued ones still run (they end at once when
        their download has stopped), and the threads end after them."""
        self._executor.shutdown(wait=False)
