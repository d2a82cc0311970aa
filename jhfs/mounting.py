"""The mount: the state layer wired to the nodes and the FUSE loop, served until unmounted.

`serve` runs the filesystem in this process until it is unmounted (libfuse
turns SIGINT, SIGTERM and SIGHUP into a clean unmount; reads still waiting
then fail at once) and then closes the state layer. From start to end it
holds the shared lock of its cache directory (jhfs.state.cachelock), so
`jhfs cache clear` leaves that alone while it runs. What is checked before
mounting is jhfs.preflight's; running in the background, jhfs.detach's.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from jhfs.binding import KernelCache
from jhfs.client import JuliaHubClient
from jhfs.client.pacing import RateLimiter
from jhfs.fuse_ops import JhfsFUSE, JhfsOperations, operation_abandoned
from jhfs.mount_errors import MountError
from jhfs.mount_options import MountOptions
from jhfs.nodes import MountContext, RootDir
from jhfs.nodes.logs import paths_of as logs_paths
from jhfs.nodes.text import generated_paths
from jhfs.state.cachelock import CacheLockedError, hold_shared
from jhfs.state.files import DEFAULT_MAX_SIZE, FileCache
from jhfs.state.freshness import KERNEL_TIMEOUT
from jhfs.state.jobwait import JobWaits
from jhfs.state.logs import LogStore
from jhfs.state.registry import JobRegistry
from jhfs.state.saved import SavedJobs
from jhfs.state.waiting import Waiter
from jhfs.unmounting import SUBTYPE, fsname

logger = logging.getLogger(__name__)

# libfuse starts a thread per concurrent request up to max_threads; each
# holds a Python thread state (fuse_ops.KEPT_THREAD_STATES) while it lives.
# libfuse 3.14's fuse_main (Debian 12) parses but never applies max_threads;
# jhfs runs fuse_main's steps itself (binding.loop_end_hook) and applies it,
# as libfuse 3.15 and later do. Idle threads beyond
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
    user: str = "?"  # whose account (from the token's check): for .jhfs/status.json
    options: MountOptions = field(default_factory=MountOptions)


# fuse_main's result (libfuse 3.12 and later) when its loop ended with an
# error, which includes a signal (SIGINT, SIGTERM, SIGHUP) asking for the
# unmount; 1 to 7 are failures to mount or to start the loop.
LOOP_ENDED = 8


def serve(client: JuliaHubClient, settings: MountSettings, on_ready: Callable[[], None]) -> None:
    """Mount and serve until unmounted; `on_ready` runs once the mount is usable."""
    os.umask(0o077)  # cached logs and blobs are the user's alone
    lock = _lock_cache(settings.cache_dir)  # held until this process lets go or ends
    client.limiter = RateLimiter(settings.options.max_rate)  # this mount's limit
    waiter = Waiter(operation_abandoned)
    kernel_cache = KernelCache()

    def forget(paths: list[str]) -> None:
        for path in paths:
            kernel_cache.invalidate(path)

    registry = JobRegistry(
        client,
        jobs_limit=settings.jobs_limit,
        waiter=waiter,
        saved=SavedJobs(settings.cache_dir),
        on_change=lambda jobname: forget(generated_paths(jobname)),
    )

    def log_stored(size: int) -> None:
        files.log_stored(size)  # made below, before the mount serves

    logs = LogStore(
        client,
        registry,
        settings.cache_dir,
        on_grow=lambda jobname: forget(logs_paths(jobname)),
        on_stored=log_stored,
        waiter=waiter,
    )
    files = FileCache(
        client,
        settings.cache_dir,
        streams=settings.options.download_streams,
        strict=settings.options.verify_full,
        max_size=settings.cache_max_size,
        log_in_use=logs.in_use,
        on_missing=registry.forget,
    )
    ctx = MountContext(
        client=client,
        registry=registry,
        logs=logs,
        files=files,
        waits=JobWaits(registry, operation_abandoned, check_timeout=settings.options.timeout),
        abandoned=operation_abandoned,
        forget=kernel_cache.invalidate,
        uid=os.getuid(),
        gid=os.getgid(),
        mounted_at_ns=time.time_ns(),
        mountpoint=str(settings.mountpoint),
        user=settings.user,
    )
    # statfs reports the cache's file system: the room left for downloads.
    operations = JhfsOperations(
        RootDir(ctx), str(settings.cache_dir), on_ready, settings.options.timeout, kernel_cache
    )
    options: dict[str, str | bool | float] = {
        "fsname": fsname(client.server),
        "subtype": SUBTYPE,
        "default_permissions": True,  # the kernel enforces the modes (ctl: 0644, the owner writes)
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
        # A signal may end the loop even before the kernel's handshake (init)
        # made the mount usable: that is an unmount, not a failure to mount.
        if not operations.mounted and exc.args != (LOOP_ENDED,):  # libfuse said why on stderr
            message = f"could not mount {settings.mountpoint} (libfuse error {exc})"
            raise MountError(message) from None
        logger.debug("the FUSE loop ended (libfuse result %s)", exc)
    finally:
        waiter.close()
        files.close()
        logs.close()
        client.close()
        os.close(lock)
    logger.info("unmounted %s", settings.mountpoint)


def _lock_cache(cache_dir: Path) -> int:
    """The shared lock that tells `jhfs cache clear` this mount uses `cache_dir`."""
    try:
        return hold_shared(cache_dir)
    except CacheLockedError as exc:
        raise MountError(str(exc)) from None
    except OSError as exc:
        raise MountError(f"cannot lock the cache directory {cache_dir}: {exc.strerror}") from None
