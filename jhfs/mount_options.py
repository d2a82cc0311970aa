"""`-o` options: the ones jhfs reads itself, and the rest, passed on to libfuse.

jhfs's own (also accepted in an fstab line's options):
  download_streams=N   connections per download of a large file (1 to MAX_STREAMS)
  verify=stream|full   stream: a download is readable as it arrives, but no read
                       reaches the end before the hash matched (the default);
                       full: no byte before the whole file matched
"""

from __future__ import annotations

from dataclasses import dataclass, field

from jhfs.state.files import DEFAULT_STREAMS, MAX_STREAMS

VERIFY_MODES = ("stream", "full")


@dataclass(frozen=True)
class MountOptions:
    download_streams: int = DEFAULT_STREAMS
    verify_full: bool = False
    fuse: dict[str, str | bool] = field(default_factory=dict)  # for libfuse, as given


def parse_mount_options(values: list[str]) -> MountOptions:
    """`-o allow_other,download_streams=8` (repeatable); ValueError names a bad value."""
    fuse: dict[str, str | bool] = {}
    for value in values:
        for item in filter(None, value.split(",")):
            key, sep, setting = item.partition("=")
            fuse[key] = setting if sep else True
    streams = fuse.pop("download_streams", str(DEFAULT_STREAMS))
    if not (isinstance(streams, str) and streams.isdigit() and 1 <= int(streams) <= MAX_STREAMS):
        raise ValueError(f"download_streams must be a whole number from 1 to {MAX_STREAMS}")
    verify = fuse.pop("verify", "stream")
    if verify not in VERIFY_MODES:
        raise ValueError("verify must be stream or full")
    return MountOptions(download_streams=int(streams), verify_full=verify == "full", fuse=fuse)
