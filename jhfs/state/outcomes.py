"""The outcome of the last ctl command written for each job in this mount.

Reading ctl shows it, so that whoever wrote a command (or a copy of the job
directory) can see what came of it after the writing program is gone.
"""

from __future__ import annotations

import threading

from cachetools import LRUCache

REMEMBERED = 1024  # jobs whose last outcome is kept; the least recently written go first


class Outcomes:
    """Each job's last ctl outcome, as one line of text. Thread-safe."""

    def __init__(self, remembered: int = REMEMBERED) -> None:
        self._lock = threading.Lock()  # cachetools caches are not thread-safe
        self._last: LRUCache[str, str] = LRUCache(maxsize=remembered)

    def record(self, jobname: str, outcome: str) -> None:
        with self._lock:
            self._last[jobname] = outcome

    def last(self, jobname: str) -> str | None:
        with self._lock:
            return self._last.get(jobname)
