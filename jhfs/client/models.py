"""Typed models of the JuliaHub job objects, and their parsing with every quirk.

STUB: the field layout is settled; parse_* functions are being implemented.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

KNOWN_STATUSES = frozenset({"Submitted", "Running", "Failed", "Stopped", "Completed"})
DONE_STATUSES = frozenset({"Failed", "Stopped", "Completed"})


@dataclass(frozen=True)
class FileHash:
    algorithm: str | None  # "sha2_256" once uploaded
    digest: bytes | None  # raw digest bytes (decoded from base64 or hex)

    @property
    def hex(self) -> str | None: ...


@dataclass(frozen=True)
class JobFile:
    jobname: str
    type: str  # input, source, project, result, or any other
    name: str
    size: int  # null on the wire -> 0
    hash: FileHash
    upload_timestamp: dt.datetime | None

    @property
    def is_uploaded(self) -> bool:
        """True once both hash members are known (the upload finished)."""
        ...


@dataclass(frozen=True)
class Job:
    jobname: str
    id: int | None
    alias: str | None
    status: str  # one of KNOWN_STATUSES, or an unknown value passed through
    inputs: dict[str, Any]  # parsed `inputs` (null -> {})
    outputs: str
    files: tuple[JobFile, ...]
    submitted: dt.datetime | None
    started: dt.datetime | None
    ended: dt.datetime | None
    hostname: str | None  # host of a valid https proxy_link, else None
    raw: dict[str, Any] = field(compare=False, repr=False)  # the object as the server sent it

    @property
    def is_done(self) -> bool: ...


@dataclass(frozen=True)
class LogMessage:
    message: str
    timestamp: dt.datetime | None
    event_id: str | None
    keywords: dict[str, Any]
    metadata: dict[str, Any]

    @property
    def timestamp_ms(self) -> int | None: ...


@dataclass(frozen=True)
class LogPage:
    """One answer of get_logs: messages oldest first, and which ends it reached."""

    messages: list[LogMessage]
    has_top: bool  # the `top` marker was present: nothing older exists
    has_bottom: bool  # the `bottom` marker was present: the job is done and nothing newer exists
