"""Before mounting: the mount point, the server and its answer to the token, the cache directory.

Each problem is a MountError with one line that says what to do. Needs no
libfuse, so the command line checks all this before loading it. A mount point
left behind by a jhfs of this user that died (killed, crashed) is unmounted
first, with one line saying so.

Someone waits at the prompt for the server check: it is retried once, quietly
(the error line says how it ended), and has PREFLIGHT_SECONDS in all.
"""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path
from urllib.parse import urlsplit

from jhfs.client import (
    AuthenticationError,
    JuliaHubClient,
    JuliaHubError,
    NotTLSError,
    RetryPolicy,
    ServerUnreachableError,
    TokenExpiredError,
)
from jhfs.client.auth import is_loopback
from jhfs.client.errors import DeadlineExceeded
from jhfs.client.netfail import answers_plain_http
from jhfs.client.pacing import operation_deadline
from jhfs.mount_errors import MountError
from jhfs.state.cachedir import record_server
from jhfs.unmounting import MountEntry, answers, mount_entry, unmount_dead

logger = logging.getLogger(__name__)

PREFLIGHT_RETRIES = RetryPolicy(retries=1, level=logging.DEBUG)
PREFLIGHT_SECONDS = 15.0  # the whole server check, retry included
PROBE_SECONDS = 2.0  # whether an https:// URL's port speaks plain HTTP


def default_cache_root() -> Path:
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "jhfs"


def server_cache_path(root: Path, server: str) -> Path:
    """The cache directory of `server` (host, port and path prefix) under `root`:
    its path only (server_cache_dir creates it)."""
    parts = urlsplit(server)
    return root / re.sub(r"[^A-Za-z0-9.-]", "_", parts.netloc + parts.path.rstrip("/"))


def server_cache_dir(root: Path, server: str) -> Path:
    """One cache directory per server (server_cache_path), mode 0700, as is every
    directory created on the way there (the root, ~/.cache), whatever the umask.
    The server's URL is written in it (SERVER_FILE) for `jhfs cache du`."""
    directory = server_cache_path(root, server)
    umask = os.umask(0o077)  # missing parents get the umask's mode: 0700 too
    try:
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    finally:
        os.umask(umask)
    directory.chmod(0o700)
    record_server(directory, server)
    return directory


def check_mountpoint(mountpoint: Path) -> None:
    entry = mount_entry(mountpoint)
    if entry is not None:
        _recover_dead_mount(mountpoint, entry)
    try:
        is_dir = mountpoint.is_dir()
    except OSError as exc:  # ENOTCONN: the FUSE process behind it is gone
        raise MountError(f"{mountpoint}: {exc.strerror}; try `jhfs umount {mountpoint}`") from None
    if not is_dir:
        raise MountError(f"{mountpoint} is not a directory")
    if os.path.ismount(mountpoint):
        raise MountError(f"{mountpoint} is already a mount point")


def _recover_dead_mount(mountpoint: Path, entry: MountEntry) -> None:
    """Unmount what is mounted on `mountpoint` if it is a jhfs of this user whose
    process is gone; any other mount is a MountError."""
    alive = answers(mountpoint)
    if alive:
        raise MountError(f"{mountpoint} is already a mount point")
    if alive is None:
        raise MountError(
            f"{mountpoint} is already a mount point, which does not answer; "
            f"`jhfs umount {mountpoint}` detaches it"
        )
    if not entry.is_jhfs_of(os.getuid()):
        raise MountError(
            f"{mountpoint}: the process of the {entry.fstype} mount there has died; "
            f"run `fusermount -u {mountpoint}`"
        )
    failure = unmount_dead(mountpoint)
    if failure is not None:
        raise MountError(
            f"{mountpoint}: could not unmount the mount of a jhfs that had died: {failure}"
        )
    logger.warning("%s: recovered the mount point of a jhfs that had died", mountpoint)


def check_server(client: JuliaHubClient, saved_listing: Path | None = None) -> str:
    """Ask the server who we are (GET /api/v1, or GraphQL on an older server); the
    username, or a one-line MountError.

    A server that cannot be reached is only a warning when an earlier mount
    saved its listing (`saved_listing`): the mount then shows what was seen,
    which is what offline browsing is for. The check is there to stop a wrong
    server or token, and neither is one here: the cache directory is the
    server's own, so a listing in it means it answered this token before; and
    once it answers again, a refused token is EACCES with the hint to renew it.
    """
    try:
        with operation_deadline(PREFLIGHT_SECONDS):
            identity = client.whoami(PREFLIGHT_RETRIES)
    except TokenExpiredError as exc:
        raise MountError(str(exc)) from None  # said before sending it
    except AuthenticationError as exc:
        raise MountError(f"{client.server} refused the token: {exc}") from None
    except ServerUnreachableError as exc:
        unreachable = _unreachable(client.server, exc)
        if saved_listing is None:
            raise MountError(unreachable) from None
        logger.warning(
            "%s: mounting anyway, with the jobs an earlier mount saw (%s)",
            unreachable,
            saved_listing,
        )
        return "?"
    except JuliaHubError as exc:
        raise MountError(f"{client.server} did not answer as JuliaHub does: {exc}") from None
    return identity.username or "?"


def _unreachable(server: str, exc: ServerUnreachableError) -> str:
    """Why `server` did not answer, in one line; for an https:// URL whose port
    speaks plain HTTP, the URL that was perhaps meant."""
    if isinstance(exc, DeadlineExceeded):
        return f"cannot reach {server}: no answer within {PREFLIGHT_SECONDS:g} s"
    parts = urlsplit(server)
    host = parts.hostname or ""
    if isinstance(exc, NotTLSError) and answers_plain_http(host, parts.port or 443, PROBE_SECONDS):
        if is_loopback(host):
            return f"{server} answers plain HTTP, not HTTPS; did you mean http://{parts.netloc}{parts.path}?"
        return f"{server} answers plain HTTP, not HTTPS (jhfs speaks plain HTTP to loopback only)"
    return f"cannot reach {server}: {exc.failure}"
