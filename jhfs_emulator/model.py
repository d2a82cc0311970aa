"""Jobs and job files as the emulator keeps them, and their wire (JSON) form."""

from __future__ import annotations

import asyncio
import base64
import json
import random
import re
import string
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from jhfs_emulator.logs import JobLog
from jhfs_emulator.timefmt import job_timestamp, upload_timestamp

DONE_STATUSES = frozenset({"Completed", "Failed", "Stopped"})
JOBNAME_PATTERN = re.compile(r"jr-[a-z0-9]{10}")
_ALPHABET = string.ascii_lowercase + string.digits


def new_jobname() -> str:
    return "jr-" + "".join(random.choices(_ALPHABET, k=10))


@dataclass
class JobFile:
    """One entry of a job's `files`; `path` is None while it is still uploading."""

    type: str
    name: str
    path: Path | None
    size: int | None
    sha256: bytes | None
    uploaded_ms: int

    @property
    def uploading(self) -> bool:
        return self.path is None

    def wire(self, hex_hash: bool = False) -> dict[str, Any]:
        value = None
        if self.sha256 is not None:
            value = self.sha256.hex() if hex_hash else base64.b64encode(self.sha256).decode()
        return {
            "name": self.name,
            "type": self.type,
            "size": self.size,
            "hash": {"algorithm": None if value is None else "sha2_256", "value": value},
            "upload_timestamp": upload_timestamp(self.uploaded_ms),
        }


@dataclass
class Job:
    """A job: its identity, its state, its files and its log."""

    id: int
    jobname: str
    alias: str | None
    env: dict[str, str] | None
    log: JobLog
    status: str = "Submitted"
    outputs: str = ""
    files: list[JobFile] = field(default_factory=list)
    submitted_ms: int | None = None
    started_ms: int | None = None
    ended_ms: int | None = None
    escape_inputs: bool = False
    hex_hashes: bool = False
    proxy_link: str | None = None
    timelimit_hours: float | None = None
    deadline_ms: int | None = None
    deadline_moved: asyncio.Event = field(default_factory=asyncio.Event)
    stop_reason: str | None = None
    stop_requested: asyncio.Event = field(default_factory=asyncio.Event)
    process_id: int | None = None
    work_dir: Path | None = None

    @property
    def done(self) -> bool:
        return self.status in DONE_STATUSES

    def inputs(self) -> str | None:
        if self.env is None:
            return None
        text = json.dumps(self.env)
        # The quirk: some servers send the JSON with its quotes backslash-escaped.
        return json.dumps(text)[1:-1] if self.escape_inputs else text

    def find_file(self, name: str, filetype: str | None) -> list[JobFile]:
        return [f for f in self.files if f.name == name and filetype in (None, f.type)]

    def wire(self) -> dict[str, Any]:
        answer: dict[str, Any] = {
            "id": self.id,
            "jobname": self.jobname,
            "jobname_alias": self.alias,
            "status": self.status,
            "inputs": self.inputs(),
            "outputs": self.outputs,
            "files": [f.wire(self.hex_hashes) for f in self.files],
            "submittimestamp": job_timestamp(self.submitted_ms),
            "starttimestamp": job_timestamp(self.started_ms),
            "endtimestamp": job_timestamp(self.ended_ms),
        }
        if self.proxy_link is not None:
            answer["proxy_link"] = self.proxy_link
        return answer
