"""The mount's bounded worker pools: what downloads run on instead of threads of their own.

Every download of a mount shares CONNECTION_WORKERS threads for its ranged
requests and HASH_WORKERS for hashing, so 60 slow downloads cost no more
threads than 16. A task does one turn (one chunk, a few hash blocks) and then
queues again behind the others: downloads take turns, and one beyond what
the workers can carry waits for its turn.

The threads are started as tasks come and end after IDLE_EXIT seconds with
nothing to do (an idle mount has none). They are daemon threads: a worker
still stuck in a socket read at the end of the process (a stalled server)
does not hold up its exit, as concurrent.futures' workers, joined at exit,
would.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import threading
from collections import deque
from collections.abc import Callable
from typing import TypeVar

logger = logging.getLogger(__name__)

_T = TypeVar("_T")

CONNECTION_WORKERS = 16  # mount-wide; libfuse and the log follower add up to 13
HASH_WORKERS = 3  # sha256 releases the GIL: a few cores' worth
IDLE_EXIT = 2.0  # seconds a worker waits for a task before it ends


class WorkerPool:
    """At most `workers` threads running tasks in the order they came (FIFO)."""

    def __init__(self, name: str, workers: int) -> None:
        self.name = name
        self._max = workers
        self._cond = threading.Condition()
        self._tasks: deque[Callable[[], None]] = deque()
        self._threads = 0
        self._idle = 0  # threads waiting for a task
        self._shut_down = False
        self._serial = itertools.count(1)

    def submit(self, task: Callable[[], None]) -> bool:
        """Queue `task`; False once the pool is shut down (the task will not run)."""
        with self._cond:
            if self._shut_down:
                return False
            self._tasks.append(task)
            if self._idle >= len(self._tasks):
                self._cond.notify()
            elif self._threads < self._max:
                self._threads += 1
                name = f"{self.name}-{next(self._serial)}"
                threading.Thread(target=self._work, name=name, daemon=True).start()
            return True

    def shutdown(self) -> None:
        """Take no more tasks; the queued ones still run (they end at once when
        their download has stopped), and the threads end after them."""
        with self._cond:
            self._shut_down = True
            self._cond.notify_all()

    def _work(self) -> None:
        while (task := self._next()) is not None:
            try:
                task()
            except Exception:  # a task handles its own errors: this is a bug
                logger.exception("%s: a task failed", self.name)

    def _next(self) -> Callable[[], None] | None:
        """The next task, or None, and then this thread ends."""
        with self._cond:
            while not self._tasks:
                if self._shut_down:
                    break
                self._idle += 1
                self._cond.wait(IDLE_EXIT)
                self._idle -= 1
                if not self._tasks:
                    break  # idle for IDLE_EXIT (or shut down)
            else:
                return self._tasks.popleft()
            self._threads -= 1
            return None


async def run_on(pool: WorkerPool, work: Callable[[], _T]) -> _T:
    """`work`'s result (or exception), run on `pool` and awaited from an asyncio
    loop, as loop.run_in_executor does for a concurrent.futures executor."""
    loop = asyncio.get_running_loop()
    future: asyncio.Future[_T] = loop.create_future()

    def settle(result: _T | None, error: BaseException | None) -> None:
        if future.done():  # the awaiting task was cancelled
            return
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(result)  # type: ignore[arg-type]  # None only with an error

    def task() -> None:
        result: _T | None = None
        error: BaseException | None = None
        try:
            result = work()
        except BaseException as exc:
            error = exc
        with contextlib.suppress(RuntimeError):  # the loop has closed meanwhile
            loop.call_soon_threadsafe(settle, result, error)

    if not pool.submit(task):
        raise RuntimeError(f"{pool.name} is shut down")
    return await future
