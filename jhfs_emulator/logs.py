"""A job's log: its lines, their timestamps, and their JSON message objects.

Two kinds: `LiveLog` collects the lines a running process prints; `SyntheticLog`
stands for a finished job's log of any length without holding it in memory,
deriving each line's text and timestamp from its line number. Lines are
numbered from 1, and that number (as a string) is the message's `eventId`.
"""

from __future__ import annotations

import asyncio
import json
from abc import ABC, abstractmethod
from dataclasses import dataclass
from json.encoder import encode_basestring  # the C string encoder, ensure_ascii=False

from jhfs_emulator.timefmt import log_timestamp

TOP_MARKER = '{"_meta": true, "end": "top", "message": ""}'
BOTTOM_MARKER = '{"_meta": true, "end": "bottom", "message": ""}'


def _metadata(level: str, stream: str) -> str:
    return json.dumps(
        {
            "level": level,
            "_module": "Main.JuliaRunJob",
            "filepath": "/opt/juliahub/master_startup.jl",
            "line": 141,
            "group": "master_startup",
            "id": "Main_JuliaRunJob_53527a33",
            "stream": stream,
        }
    )


_STDOUT_METADATA = _metadata("Info", "stdout")
_STDERR_METADATA = _metadata("Error", "stderr")


class JobLog(ABC):
    """The lines of one job's log, and a way to wait for more.

    `ms_timestamps` sends timestamps as integer unix milliseconds instead of ISO
    strings, the other form the real service is known to use.
    """

    def __init__(self, jobname: str, process_id: int) -> None:
        self._keywords_head = (
            json.dumps(
                {"jrun_hostname": f"{jobname}-x5z4g", "jrun_worker_id": 1, "jrun_thread_id": 1}
            )[:-1]
            + f', "jrun_process_id": {process_id}, "jrun_time": '
        )
        self.finished = False
        self.ms_timestamps = False
        self._changed = asyncio.Event()

    @abstractmethod
    def __len__(self) -> int: ...

    @abstractmethod
    def line(self, number: int) -> tuple[int, str, bool]:
        """(timestamp in ms, text, from stderr) of the 1-based line `number`."""

    def timestamp_ms(self, number: int) -> int:
        return self.line(number)[0]

    def message_json(self, number: int) -> str:
        """The JSON text of the message object for line `number`."""
        ms, text, is_stderr = self.line(number)
        stamp = log_timestamp(ms)
        metadata = _STDERR_METADATA if is_stderr else _STDOUT_METADATA
        timestamp = str(ms) if self.ms_timestamps else f'"{stamp}"'
        return (
            f'{{"message": {encode_basestring(text)}, "timestamp": {timestamp}, '
            f'"eventId": "{number}", "keywords": {self._keywords_head}"{stamp}"}}, '
            f'"metadata": {metadata}}}'
        )

    def finish(self) -> None:
        self.finished = True
        self._notify()

    def changed(self) -> asyncio.Event:
        """An event set at the next change (a new line or the end of the log)."""
        return self._changed

    def _notify(self) -> None:
        event, self._changed = self._changed, asyncio.Event()
        event.set()


class LiveLog(JobLog):
    """The lines a process prints, kept as they arrive."""

    def __init__(self, jobname: str, process_id: int = 27) -> None:
        super().__init__(jobname, process_id)
        self._lines: list[tuple[int, str, bool]] = []

    def __len__(self) -> int:
        return len(self._lines)

    def line(self, number: int) -> tuple[int, str, bool]:
        return self._lines[number - 1]

    def append(self, ms: int, text: str, is_stderr: bool = False) -> None:
        self._lines.append((ms, text, is_stderr))
        self._notify()


@dataclass(frozen=True)
class SyntheticLines:
    """How a synthetic log's lines are derived: count, first timestamp, spacing."""

    count: int
    first_ms: int
    spacing_ms: int = 1


class SyntheticLog(JobLog):
    """A finished job's log of `count` deterministic lines, generated on demand.

    Line n reads `line {n:07d} of {jobname}: step {n} loss={1/n:.6f}` (a stable
    format: other tests rebuild it) and is stamped `first_ms + (n-1) * spacing_ms`.
    """

    def __init__(self, jobname: str, lines: SyntheticLines) -> None:
        super().__init__(jobname, 27)
        self._jobname = jobname
        self._spec = lines
        self.finished = True

    def __len__(self) -> int:
        return self._spec.count

    def line(self, number: int) -> tuple[int, str, bool]:
        if not 1 <= number <= self._spec.count:
            raise IndexError(number)
        ms = self._spec.first_ms + (number - 1) * self._spec.spacing_ms
        text = f"line {number:07d} of {self._jobname}: step {number} loss={1.0 / number:.6f}"
        return ms, text, False
