"""What a mount is doing, as one JSON-ready snapshot: MOUNT/.jhfs/status.json, which
`jhfs status` renders (README's table has its fields).

Gathered from each owner's own accessor: the downloads and the cache's use from
the file cache, the followed logs from the log follower, the requests from the
client. Each holds its lock for a moment and none across HTTP: a snapshot
costs no request, and never waits for one.
"""

from __future__ import annotations

import datetime as dt
import os
from typing import Any

from jhfs import __version__
from jhfs.client import JuliaHubClient
from jhfs.client.models import format_timestamp
from jhfs.state.download import Progress, describe
from jhfs.state.files import FileCache
from jhfs.state.logs import LogStore


def snapshot(
    client: JuliaHubClient,
    files: FileCache,
    logs: LogStore,
    *,
    mountpoint: str,
    user: str,
    mounted_at_ns: int,
) -> dict[str, Any]:
    """The mount's state now, as status.json has it."""
    used, limit = files.use()
    sent = client.requests_sent
    mounted_at = dt.datetime.fromtimestamp(mounted_at_ns / 1e9, dt.UTC)
    return {
        "version": __version__,
        "server": client.server,
        "user": user,
        "mountpoint": mountpoint,
        "pid": os.getpid(),
        "mounted_at": format_timestamp(mounted_at),
        "downloads": [_download(progress) for progress in files.progress()],
        "followed_logs": [
            {"job": jobname, "mode": mode}
            for jobname, mode in sorted(logs.follower.following().items())
        ],
        "cache": {"used": used, "max_size": limit},
        "requests": {
            "last_minute": sent.recent(),
            "total": sent.total,
            "max_rate": client.limiter.rate,
        },
    }


def _download(progress: Progress) -> dict[str, Any]:
    file = progress.file
    paused = progress.readers == 0
    left = file.size - progress.done
    eta = None
    if not paused and progress.rate > 0:
        eta = round(left / progress.rate, 1)
    return {
        "job": file.jobname,
        "type": file.type,
        "name": file.name,
        "path": f"jobs/{describe(file)}",
        "size": file.size,
        "bytes": progress.done,
        "rate": round(progress.rate),
        "eta": eta,
        "readers": progress.readers,
        "connections": progress.connections,
        "checking": progress.checking,
        "paused": paused,
    }
