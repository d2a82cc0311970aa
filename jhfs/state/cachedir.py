"""The cache directory on disk: private subdirectories and crash-safe temporary files.

Layout under the per-server cache directory (all dirs 0700, files 0600):
  blobs/<hex sha256>   verified job files (files.FileCache)
  logs/<jobname>.log   complete logs of finished jobs (logs.LogStore)
  partial/<hex sha256> downloads stopped before their end, kept to resume (partial)
  tmp/<pid>.*          downloads, log chunks and growing logs in progress
Temporary names start with the owning process id, so a later mount can delete
what a crashed one left behind without touching a live mount's files. A file
becomes valid under its final name by `durable_rename`, after its own bytes
were fsynced: a crash leaves either the old state or the whole new file.
"""

from __future__ import annotations

import logging
import os
import tempfile
from pathlib import Path

logger = logging.getLogger(__name__)


def private_dir(path: Path) -> Path:
    """Create `path` if needed, mode 0700 whatever the umask (missing parents get
    the usual permissions: they are not ours)."""
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    if path.stat().st_mode & 0o077:
        path.chmod(0o700)
    return path


def temp_file(tmp_dir: Path, suffix: str) -> tuple[int, Path]:
    """A new file in tmp_dir, mode 0600, named after this process: (fd, path)."""
    fd, name = tempfile.mkstemp(prefix=f"{os.getpid()}.", suffix=suffix, dir=tmp_dir)
    return fd, Path(name)


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


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, owned by someone else
    return True


def clean_stale_temp(tmp_dir: Path) -> int:
    """Delete temporary files whose owning process is gone; returns how many."""
    removed = 0
    for entry in os.scandir(tmp_dir):
        pid_text = entry.name.split(".", 1)[0]
        if pid_text.isdigit() and _process_alive(int(pid_text)):
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
