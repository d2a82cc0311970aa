"""Mounting and unmounting: the server check, the cache directory, the FUSE loop, detaching.

`serve` runs the filesystem in this process until it is unmounted (libfuse
turns SIGINT, SIGTERM and SIGHUP into a clean unmount). `serve_detached`
forks first and returns in the parent only once the child reports the mount
ready (from the binding's `init`, which runs after the kernel handshake) or failed.
"""

from __future__ import annotations

import logging
import os
import re
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from jhfs.binding import KernelCache
from jhfs.client import (
    AuthenticationError,
    JuliaHubClient,
    JuliaHubError,
    ServerUnreachableError,
)
from jhfs.client.pacing import RateLimiter
from jhfs.fuse_ops import JhfsFUSE, JhfsOperations, operation_abandoned
from jhfs.mount_errors import MountError
from jhfs.mount_options import MountOptions
from jhfs.nodes import MountContext, RootDir
from jhfs.nodes.logs import path_of as logs_path
from jhfs.state.files import DEFAULT_MAX_SIZE, FileCache
from jhfs.state.freshness import KERNEL_TIMEOUT
from jhfs.state.logs import LogStore
from jhfs.state.registry import JobRegistry
from jhfs.state.waiting import Waiter

logger = logging.getLogger(__name__)

# libfuse starts a thread per concurrent request up to max_threads; each
# holds a Python thread state (fuse_ops.KEPT_THREAD_STATES) while it lives.
# libfuse 3.14 (Debian 12) parses but never applies max_threads and keeps its
# built-in 10; later versions take this. Idle threads beyond
# FUSE_MAX_IDLE_THREADS end (3.14 also complains at every mount unless this
# is given). More requests than threads wait in the kernel's queue. With
# the download pools (state.pools) and the request pool (state.waiting),
# the process stays under 40 threads however many readers wait.
FUSE_MAX_THREADS = 12
FUSE_MAX_IDLE_THREADS = 10


@dataclass
class MountSettings:
    mountpoint: Path
    cache_dir: Path  # already the per-server directory
    jobs_limit: int = 1000
    cache_max_size: int = DEFAULT_MAX_SIZE  # bytes of blobs and logs kept
    options: MountOptions = field(default_factory=MountOptions)


def default_cache_root() -> Path:
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "jhfs"


def server_cache_dir(root: Path, server: str) -> Path:
    """One cache directory per server (host, port and path prefix), mode 0700."""
    parts = urlsplit(server)
    name = re.sub(r"[^A-Za-z0-9.-]", "_", parts.netloc + parts.path.rstrip("/"))
    directory = root / name
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    directory.chmod(0o700)
    return directory


def check_mountpoint(mountpoint: Path) -> None:
    try:
        is_dir = mountpoint.is_dir()
    except OSError as exc:  # ENOTCONN: the FUSE process behind it is gone
        raise MountError(f"{mountpoint}: {exc.strerror}; try `jhfs umount {mountpoint}`") from None
    if not is_dir:
        raise MountError(f"{mountpoint} is not a directory")
    if os.path.ismount(mountpoint):
        raise MountError(f"{mountpoint} is already a mount point")


def check_server(client: JuliaHubClient) -> str:
    """Ask the server who we are (GET /api/v1); the username, or a one-line MountError."""
    try:
        identity = client.whoami()
    except AuthenticationError as exc:
        raise MountError(f"{client.server} refused the token: {exc}") from None
    except ServerUnreachableError as exc:
        raise MountError(f"cannot reach {client.server}: {exc}") from None
    except JuliaHubError as exc:
        raise MountError(f"{client.server} did not answer as JuliaHub does: {exc}") from None
    return str(identity.get("username", "?"))


def serve(client: JuliaHubClient, settings: MountSettings, on_ready: Callable[[], None]) -> None:
    """Mount and serve until unmounted; `on_ready` runs once the mount is usable."""
    os.umask(0o077)  # cached logs and blobs are the user's alone
    client.limiter = RateLimiter(settings.options.max_rate)  # this mount's limit
    waiter = Waiter(operation_abandoned)
    registry = JobRegistry(
        client,
        jobs_limit=settings.jobs_limit,
        waiter=waiter,
    )
    kernel_cache = KernelCache()
    logs = LogStore(
        client,
        registry,
        settings.cache_dir,
        on_grow=lambda jobname: kernel_cache.invalidate(logs_path(jobname)),
        waiter=waiter,
    )
    files = FileCache(
        client,
        settings.cache_dir,
        streams=settings.options.download_streams,
        strict=settings.options.verify_full,
        max_size=settings.cache_max_size,
        log_in_use=logs.in_use,
    )
    ctx = MountContext(
        client=client,
        registry=registry,
        logs=logs,
        files=files,
        abandoned=operation_abandoned,
        uid=os.getuid(),
        gid=os.getgid(),
        mounted_at_ns=time.time_ns(),
    )
    # statfs reports the cache's file system: the room left for downloads.
    operations = JhfsOperations(
        RootDir(ctx), str(settings.cache_dir), on_ready, settings.options.timeout, kernel_cache
    )
    options: dict[str, str | bool | float] = {
        "fsname": f"jhfs:{urlsplit(client.server).netloc}",
        "subtype": "jhfs",
        "default_permissions": True,  # the kernel enforces the modes (ctl is 0200)
        "attr_timeout": KERNEL_TIMEOUT,
        "entry_timeout": KERNEL_TIMEOUT,
        "negative_timeout": KERNEL_TIMEOUT,
        "max_threads": FUSE_MAX_THREADS,
        "max_idle_threads": FUSE_MAX_IDLE_THREADS,
        **settings.options.fuse,
    }
    try:
        JhfsFUSE(operations, str(settings.mountpoint), foreground=True, raw_fi=True, **options)
    except RuntimeError as exc:  # fuse_main's non-zero result
        if not operations.mounted:  # libfuse printed why on stderr
            message = f"could not mount {settings.mountpoint} (libfuse error {exc})"
            raise MountError(message) from None
        # libfuse 3 also ends its loop with a non-zero result when a signal
        # (SIGINT, SIGTERM, SIGHUP) asked for the unmount.
        logger.debug("the FUSE loop ended (libfuse result %s)", exc)
    finally:
        waiter.close()
        files.close()
        logs.close()
        client.close()
    logger.info("unmounted %s", settings.mountpoint)


def serve_detached(
    make_client: Callable[[], JuliaHubClient], settings: MountSettings, log_file: Path
) -> int:
    """Fork; the child serves, the parent exits 0 once the mount is ready (1 if it failed).

    After the mount is ready the child's stdin and stdout go to /dev/null and
    its stderr (the log) to `log_file`, so that whoever ran `jhfs mount` is not
    kept waiting on its pipes.
    """
    ready_read, ready_write = os.pipe()
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid:
        os.close(ready_write)
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
        log = os.open(log_file, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        os.dup2(null, 0)
        os.dup2(null, 1)
        os.dup2(log, 2)
        os.close(null)
        os.close(log)
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
