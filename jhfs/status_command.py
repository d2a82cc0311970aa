"""`jhfs status [MOUNT]`: what jhfs mounts are doing, from each one's .jhfs/status.json.

Without MOUNT, every jhfs mount of this user that /proc/self/mountinfo lists.
Each mount's status is read from a thread given ANSWER_WITHIN to answer, so a
hung mount cannot hang the command; a mount that does not answer (its process
is gone: ENOTCONN) is shown as one line. `--watch` draws it all again every
few seconds until Ctrl-C; `--json` prints the documents themselves.

Exit status: 0 when every mount answered; 1 when one did not, when MOUNT is
not a jhfs mount, or when there is no jhfs mount at all (as grep finding
nothing: a script can tell "nothing mounted" from the output's absence).
"""

from __future__ import annotations

import datetime as dt
import errno
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from jhfs.nodes.dotjhfs import NAME, STATUS_JSON
from jhfs.unmounting import ANSWER_WITHIN, mount_entry, mount_table, within

BAR_WIDTH = 20
CLEAR_SCREEN = "\x1b[H\x1b[2J"
_UNITS = ("B", "KiB", "MiB", "GiB", "TiB")

Status = dict[str, Any]


def jhfs_mounts(uid: int) -> list[Path]:
    """The mount points of the user's jhfs mounts, in the order they were mounted (a
    path mounted twice, once: only the topmost mount there can be asked)."""
    paths = [path for path, entry in mount_table() if entry.is_jhfs_of(uid)]
    return [Path(os.fsdecode(path)) for path in dict.fromkeys(paths)]


def read_status(mountpoint: Path) -> Status | str:
    """The mount's status.json, or why there is none (one line)."""

    def read() -> bytes | OSError:
        try:
            return (mountpoint / NAME / STATUS_JSON).read_bytes()
        except OSError as exc:
            return exc

    answer = within(read)
    if answer is None:
        return f"no answer within {ANSWER_WITHIN:g} s (busy or hung)"
    if isinstance(answer, OSError):
        if answer.errno in (errno.ENOTCONN, errno.ECONNABORTED):
            return f"not answering: its process is gone (`jhfs umount {mountpoint}` clears it)"
        if answer.errno == errno.ENOENT:
            return "has no .jhfs/status.json (mounted by an older jhfs?)"
        return f"cannot read its status: {answer.strerror}"
    try:
        status = json.loads(answer)
    except ValueError:
        return "its status.json is not JSON"
    return status if isinstance(status, dict) else "its status.json is not an object"


def size_text(size: float) -> str:
    """A size in binary units: 512 B, 1.5 KiB, 210.0 MiB."""
    unit = 0
    while size >= 1024 and unit < len(_UNITS) - 1:
        size /= 1024
        unit += 1
    return f"{size:.0f} B" if unit == 0 else f"{size:.1f} {_UNITS[unit]}"


def duration_text(seconds: float) -> str:
    """m:ss, or h:mm:ss from an hour on."""
    minutes, secs = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02}:{secs:02}" if hours else f"{minutes}:{secs:02}"


def progress_bar(done: int, size: int) -> str:
    """[########............]  41%"""
    fraction = done / size if size else 1.0
    filled = int(fraction * BAR_WIDTH)
    return f"[{'#' * filled}{'.' * (BAR_WIDTH - filled)}] {int(fraction * 100):3}%"


def render_download(download: Status) -> list[str]:
    size, done = download["size"], download["bytes"]
    line = f"{progress_bar(done, size)} {size_text(done)}/{size_text(size)}"
    if download["paused"]:
        line += "  paused: nobody reads it"
    else:
        line += f"  {size_text(download['rate'])}/s"
        if download["eta"] is not None:
            line += f"  ETA {duration_text(download['eta'])}"
    what = "checking the cached copy of " if download["checking"] else ""
    return [f"    {what}{download['path']}", f"      {line}"]


def render(mountpoint: Path, status: Status | str, now: dt.datetime) -> list[str]:
    """One mount, as lines of text."""
    if isinstance(status, str):
        return [f"{mountpoint}: {status}"]
    mounted_at = dt.datetime.fromisoformat(status["mounted_at"].replace("Z", "+00:00"))
    up = duration_text((now - mounted_at).total_seconds())
    lines = [
        f"{status['mountpoint']}: {status['user']} on {status['server']} "
        f"(pid {status['pid']}, up {up}, jhfs {status['version']})"
    ]
    downloads = status["downloads"]
    lines.append("  downloads:" if downloads else "  downloads: none")
    for download in downloads:
        lines.extend(render_download(download))
    followed = [f"{log['job']} ({log['mode']})" for log in status["followed_logs"]]
    lines.append(f"  followed logs: {', '.join(followed) or 'none'}")
    cache = status["cache"]
    lines.append(f"  cache: {size_text(cache['used'])} of {size_text(cache['max_size'])}")
    requests = status["requests"]
    lines.append(
        f"  requests: {requests['last_minute']} in the last minute, {requests['total']} in all "
        f"(limit {requests['max_rate']:g}/s)"
    )
    return lines


def gather(mountpoint: Path | None) -> list[tuple[Path, Status | str]] | str:
    """Each mount with its status, or why MOUNT cannot be shown."""
    uid = os.getuid()
    if mountpoint is None:
        return [(path, read_status(path)) for path in jhfs_mounts(uid)]
    entry = mount_entry(mountpoint)
    if entry is None or not entry.is_jhfs_of(uid):
        return f"{mountpoint} is not a jhfs mount of yours"
    return [(mountpoint, read_status(mountpoint))]


def show(mountpoint: Path | None, as_json: bool, one_line: bool) -> int:
    """Print the mounts' status once; the exit status."""
    mounts = gather(mountpoint)
    if isinstance(mounts, str):
        print(f"jhfs: {mounts}", file=sys.stderr)
        return 1
    if as_json:
        documents = [
            {"mountpoint": str(path), "error": status} if isinstance(status, str) else status
            for path, status in mounts
        ]
        print(json.dumps(documents, indent=None if one_line else 2, ensure_ascii=False))
    elif not mounts:
        print("no jhfs mounts")
    else:
        now = dt.datetime.now(dt.UTC)
        print("\n".join(line for path, status in mounts for line in render(path, status, now)))
    sys.stdout.flush()
    answered = all(not isinstance(status, str) for _, status in mounts)
    return 0 if mounts and answered else 1


def status_command(mountpoint: Path | None, watch: float | None, as_json: bool) -> int:
    """`jhfs status`: once, or (`watch` seconds apart) until Ctrl-C, which ends it with 0."""
    try:
        if watch is None:
            return show(mountpoint, as_json, one_line=False)
        # On a terminal each drawing replaces the last; into a file or a pipe they
        # follow each other (with --json, one document a line).
        clear = sys.stdout.isatty() and not as_json
        while True:
            if clear:
                sys.stdout.write(CLEAR_SCREEN)
            show(mountpoint, as_json, one_line=True)
            if not clear and not as_json:
                print(flush=True)
            time.sleep(watch)
    except KeyboardInterrupt:
        return 0 if watch is not None else 130
    except BrokenPipeError:
        # The reader went away (`jhfs status --watch | head`): nothing more to say,
        # and nothing left to flush at exit.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
