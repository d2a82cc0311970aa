"""What every request handler shares: the job store, faults, stats, the token."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from jhfs_emulator.faults import Faults, Stats
from jhfs_emulator.store import JobStore

USERNAME = "emulator-user"


@dataclass
class EmulatorContext:
    store: JobStore
    token: str
    faults: Faults = field(default_factory=Faults)
    stats: Stats = field(default_factory=Stats)


CONTEXT = web.AppKey("context", EmulatorContext)
STREAM_FAULT = web.RequestKey("stream_fault", str)


def context_of(request: web.Request) -> EmulatorContext:
    return request.app[CONTEXT]


def json_answer(value: Any, status: int = 200) -> web.Response:
    return web.Response(
        body=json.dumps(value).encode(), status=status, content_type="application/json"
    )
