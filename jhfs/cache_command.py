"""`jhfs cache du|clear|verify`: the cache directories, from outside any mount.

The cache root (--cache-dir, default $XDG_CACHE_HOME/jhfs) holds one
directory per server. Only directories a mount has locked once
(jhfs.state.cachelock's lock file) are taken for server caches: pointed at
some other directory, these commands find nothing there to delete. Nothing
outside the root is touched and no symbolic link is followed (one inside a
server's directory is deleted as a link).

`clear` deletes what is in a server's directory (see CONTENT) while it holds
the directory's lock exclusively, so only when no mount uses it; the lock
file and the server's name stay. `verify` hashes every downloaded file
again and deletes those that do not match their name, without the lock: a
mount reading a file deleted meanwhile keeps its open descriptor, and a mount
checks a cached file on its first open anyway.
"""

from __future__ import annotations

import argparse
import math
import os
import re
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path

from jhfs.client.auth import normalize_server
from jhfs.preflight import default_cache_root, server_cache_path
from jhfs.state.cachedir import fsync_dir, recorded_server
from jhfs.state.cachelock import LOCK_NAME, exclusive, holders, in_use
from jhfs.state.cachesize import COUNTED
from jhfs.state.download import digest_of
from jhfs.state.saved import LISTING_NAME
from jhfs.unmounting import mounts_of

BLOBS = "blobs"
# What `clear` deletes, by name in a server's directory: what one file of it is.
CONTENT = {
    BLOBS: "downloaded file",
    "logs": "finished log file",
    "partial": "partial download",
    "jobs": "saved job",
    LISTING_NAME: "saved listing",
    "tmp": "temporary file",
    "jhfs.log": "mount log",
}
_BLOB_NAME = re.compile(r"[0-9a-f]{64}")  # a sha2_256 digest in hex


@dataclass
class Usage:
    """Files and bytes under one name of a server's directory."""

    files: int = 0
    size: int = 0

    def add(self, other: Usage) -> None:
        self.files += other.files
        self.size += other.size


@dataclass
class ServerCache:
    directory: Path
    server: str  # its URL as the mount recorded it, else guessed from the name
    usage: dict[str, Usage] = field(default_factory=dict)  # by top-level name

    @property
    def counted(self) -> int:
        """Bytes that --cache-max-size bounds."""
        return sum(self.usage[name].size for name in COUNTED if name in self.usage)

    @property
    def other(self) -> int:
        return sum(u.size for name, u in self.usage.items() if name not in COUNTED)


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """`jhfs cache` and its three commands."""
    cache = commands.add_parser("cache", help="the cache's size; clear it; check it")
    actions = cache.add_subparsers(dest="action", required=True, metavar="ACTION")
    du = actions.add_parser("du", help="the size of each server's cache, and its mounts")
    du.add_argument("--bytes", action="store_true", help="sizes in bytes, not K, M, G")
    actions.add_parser("clear", help="delete the cache of every server no mount uses")
    actions.add_parser("verify", help="hash the downloaded files again; delete damaged ones")
    for action in actions.choices.values():
        action.add_argument(
            "--cache-dir",
            type=Path,
            metavar="DIR",
            help="the cache root given to `jhfs mount` (default: $XDG_CACHE_HOME/jhfs)",
        )
        action.add_argument("--server", metavar="URL", help="only this server's cache")


def run(args: argparse.Namespace) -> int:
    root = args.cache_dir.absolute() if args.cache_dir else default_cache_root()
    try:
        server = normalize_server(args.server) if args.server else None
    except ValueError as exc:
        print(f"jhfs: error: {exc}", file=sys.stderr)
        return 1
    try:
        caches = find_caches(root, server)
        if not caches:
            print(f"no cache {f'of {server} ' if server else ''}in {root}")
            return 0
        if args.action == "du":
            return du(root, caches, args.bytes)
        if args.action == "clear":
            return clear(caches)
        return verify(caches)
    except OSError as exc:  # a directory not ours to read or change, a failing disk
        print(f"jhfs: error: {exc}", file=sys.stderr)
        return 1


def find_caches(root: Path, server: str | None) -> list[ServerCache]:
    """The server caches in `root` (or only `server`'s), by name."""
    if server is not None:
        candidates = [server_cache_path(root, server)]
    else:
        try:
            candidates = sorted(Path(entry.path) for entry in os.scandir(root))
        except (FileNotFoundError, NotADirectoryError):
            return []
    return [
        ServerCache(path, recorded_server(path) or _guess_server(path.name))
        for path in candidates
        if _is_server_cache(path)
    ]


def _is_server_cache(path: Path) -> bool:
    """A real directory (not a link) that a mount has locked once."""
    try:
        return path.is_dir() and not path.is_symlink() and (path / LOCK_NAME).is_file()
    except OSError:
        return False


def _guess_server(name: str) -> str:
    """host[:port][/path] from a directory's name (server_cache_path wrote ":" and "/"
    as "_"), for a cache whose server was not recorded."""
    host, _, rest = name.partition("_")
    port, _, path = rest.partition("_") if rest[:1].isdigit() else ("", "", rest)
    if port and not port.isdigit():
        port, path = "", rest
    return host + (f":{port}" if port else "") + (f"/{path.replace('_', '/')}" if path else "")


# -- du -------------------------------------------------------------------------------


def du(root: Path, caches: list[ServerCache], in_bytes: bool) -> int:
    def size(n: int) -> str:
        return str(n) if in_bytes else human(n)

    rows = [("CACHED", "OTHER", "SERVER", "MOUNTED")]
    for cache in caches:
        cache.usage = usage(cache.directory)
        rows.append((size(cache.counted), size(cache.other), cache.server, _mounted(cache)))
    total_counted = sum(cache.counted for cache in caches)
    total_other = sum(cache.other for cache in caches)
    rows.append((size(total_counted), size(total_other), f"total in {root}", ""))
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    for counted, other, server, mounted in rows:
        line = f"{counted:>{widths[0]}}  {other:>{widths[1]}}  {server:<{widths[2]}}  {mounted}"
        print(line.rstrip())
    return 0


def _mounted(cache: ServerCache) -> str:
    if not in_use(cache.directory):
        return "-"
    return _where(cache) or "yes"


def _where(cache: ServerCache) -> str:
    """The mount points of the mounts using `cache`, as far as they say."""
    paths = mounts_of(cache.server, holders(cache.directory))
    return ", ".join(str(path) for path in paths)


def human(size: int) -> str:
    """A size as `du -h` writes it: powers of 1024, rounded up, one decimal below 10."""
    value = float(size)
    for unit in ("", "K", "M", "G", "T", "P"):
        if value < 1024 or unit == "P":
            break
        value /= 1024
    if not unit:
        return str(size)
    if value < 10 and math.ceil(value * 10) < 100:
        return f"{math.ceil(value * 10) / 10:.1f}{unit}"
    rounded = math.ceil(value)
    return f"{rounded}{unit}" if rounded < 1024 else human(1024 ** ("KMGTP".index(unit) + 2))


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}{'' if number == 1 else 's'}"


def usage(directory: Path) -> dict[str, Usage]:
    """Files and bytes under each name in `directory` (links count as files of 0 bytes)."""
    found: dict[str, Usage] = {}
    for entry in _scan(directory):
        found[entry.name] = _tree_usage(entry)
    return found


def _scan(directory: Path) -> list[os.DirEntry[str]]:
    try:
        return list(os.scandir(directory))
    except (FileNotFoundError, NotADirectoryError):
        return []


def _tree_usage(entry: os.DirEntry[str]) -> Usage:
    try:
        if entry.is_dir(follow_symlinks=False):
            total = Usage()
            for child in _scan(Path(entry.path)):
                total.add(_tree_usage(child))
            return total
        if entry.is_file(follow_symlinks=False):
            return Usage(1, entry.stat(follow_symlinks=False).st_size)
    except FileNotFoundError:  # gone meanwhile
        return Usage()
    return Usage(1, 0)


# -- clear ----------------------------------------------------------------------------


def clear(caches: list[ServerCache]) -> int:
    code = 0
    for cache in caches:
        with exclusive(cache.directory) as unused:
            if not unused:
                code = 1
                where = _where(cache)
                print(
                    f"jhfs: {cache.server}: in use by a mount{f' at {where}' if where else ''}; "
                    f"not cleared ({cache.directory})",
                    file=sys.stderr,
                )
                continue
            removed = _clear(cache.directory)
        freed = sum(u.size for u in removed.values())
        what = ", ".join(_count(u.files, CONTENT[name]) for name, u in removed.items() if u.files)
        print(f"{cache.server}: freed {human(freed)}{f': {what}' if what else ''}")
    return code


def _clear(directory: Path) -> dict[str, Usage]:
    """Delete CONTENT from `directory` (its lock held); what was there, by name."""
    removed: dict[str, Usage] = {}
    for entry in _scan(directory):
        if entry.name not in CONTENT:  # the lock, the server's name, or not ours
            continue
        removed[entry.name] = _tree_usage(entry)
        if entry.is_dir(follow_symlinks=False):
            shutil.rmtree(entry.path)  # deletes links inside as links
        else:
            os.unlink(entry.path)
    return {name: removed[name] for name in CONTENT if name in removed}  # in CONTENT's order


# -- verify ---------------------------------------------------------------------------


def verify(caches: list[ServerCache]) -> int:
    for cache in caches:
        checked, damaged = _verify_blobs(cache.directory / BLOBS)
        print(
            f"{cache.server}: {_count(checked.files, 'downloaded file')} checked "
            f"({human(checked.size)}); "
            f"{len(damaged) or 'none'} damaged{', deleted' if damaged else ''}"
        )
        for name in damaged:
            print(f"  deleted {name}: its bytes do not hash to its name")
    return 0


def _verify_blobs(blobs: Path) -> tuple[Usage, list[str]]:
    """Hash every blob in `blobs`; delete (durably) those whose hash is not their name."""
    checked = Usage()
    damaged = []
    for entry in sorted(_scan(blobs), key=lambda entry: entry.name):
        if not _BLOB_NAME.fullmatch(entry.name) or not entry.is_file(follow_symlinks=False):
            continue  # not a blob of ours: FileCache never opens it
        try:
            fd = os.open(entry.path, os.O_RDONLY | os.O_NOFOLLOW)
        except FileNotFoundError:  # evicted meanwhile
            continue
        try:
            inode = os.fstat(fd).st_ino
            good = digest_of(fd) == bytes.fromhex(entry.name)
            checked.add(Usage(1, os.fstat(fd).st_size))
        finally:
            os.close(fd)
        if good:
            continue
        try:
            # A mount may have put a new download under that name meanwhile: keep it.
            if os.stat(entry.path, follow_symlinks=False).st_ino == inode:
                os.unlink(entry.path)
                damaged.append(entry.name)
        except FileNotFoundError:
            pass
    if damaged:
        fsync_dir(blobs)
    return checked, damaged
