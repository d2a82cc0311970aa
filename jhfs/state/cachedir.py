"""The cache directory on disk: private subdirectories and crash-safe temporary files.

Layout under the per-server cache directory (all dirs 0700, files 0600):
  blobs/<hex sha256>   verified job files (files.FileCache)
  logs/<jobname>.log   complete logs of finished jobs, and .jsonl beside (logs.LogStore)
  partial/<hex sha256> downloads stopped before their end, kept to resume (partial)
  listing.jsonl        the latest job listing, for when the server is down (saved)
  jobs/<hex sha256>.json  final jobs seen outside it, by the hash of their name (saved)
  tmp/<owner>.*        downloads, log chunks and growing logs in progress
  server               the server's URL, for `jhfs cache` (record_server; never a token)
  jhfs.lock            locked by every mount using the directory (cachelock)
  jhfs.log             the log of a mount in the background (jhfs.detach)
Temporary names start with their owner: the process id and the process's
start time (`<pid>-<ticks since boot>`), so a later mount can delete what a
killed or crashed one left behind without touching a live mount's files,
even once the dead one's pid belongs to another process (pids are reused,
soon in a container) or while it is a zombie nobody reaped. A file becomes
valid under its final name by `durable_rename`, after its own bytes were
fsynced: a crash leaves either the old state or the whole new file.
"""

from __future__ import annotations

import functools
import logging
import os
import tempfile
from pathlib import Path

logger = logging.getLogger(__name__)

SERVER_NAME = "server"


def private_dir(path: Path) -> Path:
    """Create `path` if needed, mode 0700 whatever the umask (missing parents get
    the usual permissions: they are not ours)."""
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    if path.stat().st_mode & 0o077:
        path.chmod(0o700)
    return path


def temp_file(tmp_dir: Path, suffix: str) -> tuple[int, Path]:
    """A new file in tmp_dir, mode 0600, named after this process: (fd, path)."""
    fd, name = tempfile.mkstemp(prefix=_owner(os.getpid()), suffix=suffix, dir=tmp_dir)
    return fd, Path(name)


@functools.lru_cache(maxsize=1)  # a fork's child asks with its own pid
def _owner(pid: int) -> str:
    """The start of this process's temporary names: "<pid>-<start time>."."""
    return f"{pid}-{_start_time(pid)}."


def fsync_dir(directory: Path) -> None:
    """Make the names in `directory` (a rename into it, an unlink) survive a crash."""
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def durable_rename(src: Path, dst: Path) -> None:
    """Rename `src` to `dst` and fsync dst's directory, so the new name survives a
    crash. The caller has fsynced the file's bytes first: the name must never
    point at bytes still in the page cache only."""
    os.replace(src, dst)
    fsync_dir(dst.parent)


def record_server(cache_dir: Path, server: str) -> None:
    """Write the URL of the server whose cache directory this is (SERVER_NAME), unless
    it is there already. A cache without it is only harder to name."""
    if recorded_server(cache_dir) == server:
        return
    try:
        fd, path = temp_file(private_dir(cache_dir / "tmp"), ".server")
        try:
            os.write(fd, f"{server}\n".encode())
            os.fsync(fd)
        finally:
            os.close(fd)
        durable_rename(path, cache_dir / SERVER_NAME)
    except OSError as exc:
        logger.warning("cannot write %s: %s", cache_dir / SERVER_NAME, exc)


def recorded_server(cache_dir: Path) -> str | None:
    """The server URL record_server wrote in `cache_dir`, if any."""
    try:
        fd = os.open(cache_dir / SERVER_NAME, os.O_RDONLY | os.O_NOFOLLOW)
    except OSError:  # none (an older jhfs made the directory), or not a file of ours
        return None
    try:
        text = os.read(fd, 4096).decode(errors="replace").strip()
    except OSError:
        return None
    finally:
        os.close(fd)
    return text or None


def _start_time(pid: int) -> int | None:
    """When process `pid` started (clock ticks since boot); None if there is no
    such process, or only its zombie."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat:
            text = stat.read()
    except OSError:  # FileNotFoundError, or ESRCH as it ends
        return None
    # pid (comm) state ... starttime is the 22nd field; comm may hold spaces and ")".
    fields = text[text.rindex(b")") + 2 :].split()
    return None if fields[0] in (b"Z", b"X") else int(fields[19])


def _owner_alive(owner: str) -> bool:
    """Whether the process a temporary file is named after still runs."""
    pid, _, start = owner.partition("-")
    if not pid.isdigit():
        return False  # not a name of ours
    started = _start_time(int(pid))
    if not start:  # named by an older jhfs: the pid alone
        return started is not None
    return start.isdigit() and started == int(start)


def clean_stale_temp(tmp_dir: Path) -> int:
    """Delete temporary files whose owning process is gone; returns how many."""
    removed = 0
    for entry in os.scandir(tmp_dir):
        if _owner_alive(entry.name.split(".", 1)[0]):
            continue
        try:
            os.unlink(entry.path)
            removed += 1
        except FileNotFoundError:
            pass  # another mount cleaning at the same time
        except IsADirectoryError:
            continue
    if removed:
        logger.info("removed %d leftover temporary files from %s", removed, tmp_dir)
    return removed
