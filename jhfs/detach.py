"""`jhfs mount` without -f: the filesystem in a child process, detached from the terminal.

The parent returns only once the child reports the mount ready (from the
binding's `init`, which runs after the kernel handshake) or failed, and
exits 0 or 1 accordingly.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Callable
from pathlib import Path

from jhfs.client import JuliaHubClient
from jhfs.mount_errors import MountError
from jhfs.mounting import MountSettings, serve

logger = logging.getLogger(__name__)


def serve_detached(
    make_client: Callable[[], JuliaHubClient], settings: MountSettings, log_file: Path, log_fd: int
) -> int:
    """Fork; the child serves, the parent exits 0 once the mount is ready (1 if it failed).

    After the mount is ready the child's stdin and stdout go to /dev/null and
    its stderr (the log) to `log_file`, open at `log_fd`, so that whoever ran
    `jhfs mount` is not kept waiting on its pipes.
    """
    ready_read, ready_write = os.pipe()
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid:
        os.close(ready_write)
        os.close(log_fd)
        with os.fdopen(ready_read, "rb") as pipe:
            report = pipe.read().decode(errors="replace").strip()
        if report == "ready":
            return 0
        os.waitpid(pid, 0)
        report = report or "the filesystem process ended before the mount was ready"
        print(f"jhfs: error: {report}", file=sys.stderr)
        return 1

    os.close(ready_read)
    os.setsid()  # no controlling terminal: the shell's hangups and Ctrl-C are not ours
    os.chdir("/")  # do not keep the directory jhfs was started in busy
    parent_waiting = True

    def tell_parent(message: str) -> None:
        nonlocal parent_waiting
        if parent_waiting:
            parent_waiting = False
            os.write(ready_write, message.encode())
            os.close(ready_write)

    def ready() -> None:
        logger.info("mounted %s; logging to %s", settings.mountpoint, log_file)
        null = os.open(os.devnull, os.O_RDWR)
        os.dup2(null, 0)
        os.dup2(null, 1)
        os.dup2(log_fd, 2)
        os.close(null)
        os.close(log_fd)
        tell_parent("ready")

    code = 0
    try:
        serve(make_client(), settings, ready)
    except MountError as exc:
        if parent_waiting:
            tell_parent(str(exc))
        else:
            logger.error("%s", exc)
        code = 1
    except Exception as exc:
        logger.exception("jhfs failed")
        tell_parent(f"failed: {exc}")
        code = 1
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)  # the parent's interpreter state is not ours to tear down
