"""`-o` options: the ones jhfs reads itself, and the rest, passed on to libfuse.

jhfs's own (also accepted in an fstab line's options):
  download_streams=N   connections per download of a large file (1 to MAX_STREAMS)
  verify=stream|full   stream: a download is readable as it arrives, but no read
                       reaches the end before the hash matched (the default);
                       full: no byte before the whole file matched
  max_rate=N           requests a second to the server, mount-wide, that background
                       work keeps to (following logs that programs hold open)
  timeout=S            seconds an operation may take in all, retries included
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from jhfs.client.pacing import DEFAULT_RATE
from jhfs.state.files import DEFAULT_STREAMS, MAX_STREAMS

VERIFY_MODES = ("stream", "full")
DEFAULT_TIMEOUT = 60.0  # seconds (-o timeout=S)
MAX_TIMEOUT = 3600.0
MAX_RATE = 1000.0


@dataclass(frozen=True)
class MountOptions:
    download_streams: int = DEFAULT_STREAMS
    verify_full: bool = False
    max_rate: float = DEFAULT_RATE
    timeout: float = DEFAULT_TIMEOUT
    fuse: dict[str, str | bool] = field(default_factory=dict)  # for libfuse, as given


# Not libfuse's options but the binding's own parameters, which jhfs sets:
# `errors=strict` would make a non-UTF-8 path a traceback, `raw_fi` change what
# every operation receives, `foreground` or `nothreads` how the mount runs.
SET_BY_JHFS = frozenset({"raw_fi", "encoding", "errors", "foreground", "debug", "nothreads"})


def parse_mount_options(values: list[str]) -> MountOptions:
    """`-o allow_other,download_streams=8` (repeatable); ValueError names a bad value."""
    fuse: dict[str, str | bool] = {}
    for value in values:
        for item in filter(None, value.split(",")):
            key, sep, setting = item.partition("=")
            if key in SET_BY_JHFS:
                raise ValueError(
                    f"-o {key} is set by jhfs itself" + (" (use --debug)" if key == "debug" else "")
                )
            fuse[key] = setting if sep else True
    streams = fuse.pop("download_streams", str(DEFAULT_STREAMS))
    if not (isinstance(streams, str) and streams.isdigit() and 1 <= int(streams) <= MAX_STREAMS):
        raise ValueError(f"download_streams must be a whole number from 1 to {MAX_STREAMS}")
    verify = fuse.pop("verify", "stream")
    if verify not in VERIFY_MODES:
        raise ValueError("verify must be stream or full")
    max_rate = _number(fuse.pop("max_rate", str(DEFAULT_RATE)), "max_rate", MAX_RATE)
    timeout = _number(fuse.pop("timeout", str(DEFAULT_TIMEOUT)), "timeout", MAX_TIMEOUT)
    return MountOptions(
        download_streams=int(streams),
        verify_full=verify == "full",
        max_rate=max_rate,
        timeout=timeout,
        fuse=fuse,
    )


def _number(setting: str | bool, name: str, most: float) -> float:
    """A positive number up to `most`; ValueError naming the option otherwise."""
    try:
        value = float(setting) if isinstance(setting, str) else math.nan
    except ValueError:
        value = math.nan
    if not 0 < value <= most:  # also refuses nan
        raise ValueError(f"{name} must be a number greater than 0 and at most {most:g}")
    return value
