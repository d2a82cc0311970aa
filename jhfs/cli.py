"""The `jhfs` command: mount, umount, status, cache, demo, emulator.

The token never comes from the command line (it would show in `ps`): it is
found by the client's discovery (JULIAHUB_TOKEN, or auth.toml).
"""

from __future__ import annotations

import argparse
import logging
import re
import sys
from pathlib import Path

from jhfs import __version__, cache_command
from jhfs.client import JuliaHubClient, JuliaHubError
from jhfs.libfuse import LibfuseMissingError, require_libfuse3
from jhfs.logsetup import add_logging_options, chosen_level, log_to, open_log_file, setup_logging
from jhfs.mount_errors import MountError
from jhfs.mount_helper import HELPER_USAGE, is_helper_call, run_helper
from jhfs.mount_options import parse_mount_options
from jhfs.state.files import DEFAULT_MAX_SIZE
from jhfs.unmounting import unmount

logger = logging.getLogger(__name__)


def positive_seconds(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {text}")
    return value


def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


SIZE_UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}
_SIZE = re.compile(r"(\d+(?:\.\d+)?)\s*([KMGT]?)(?:I?B)?", re.IGNORECASE)


def byte_size(text: str) -> int:
    """A size such as 10G, 500M, 1.5T or 4096 (bytes); units are powers of 1024."""
    match = _SIZE.fullmatch(text.strip())
    if match is None:
        raise argparse.ArgumentTypeError(f"not a size (such as 10G or 500M): {text!r}")
    value = int(float(match.group(1)) * SIZE_UNITS[match.group(2).upper()])
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be more than 0 bytes, got {text!r}")
    return value


def add_cache_max_size(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--cache-max-size",
        type=byte_size,
        default=DEFAULT_MAX_SIZE,
        metavar="SIZE",
        help="how much the cache directory keeps, e.g. 500M or 10G (default: 10G); the least "
        "recently used files go first, and it never fills its file system past 95%%",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="jhfs",
        description="Mount a JuliaHub account's batch jobs as directories.",
        epilog=HELPER_USAGE,
    )
    parser.add_argument("--version", action="version", version=f"jhfs {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    mount = commands.add_parser("mount", help="mount the jobs at MOUNTPOINT")
    mount.add_argument("mountpoint", type=Path, metavar="MOUNTPOINT")
    mount.add_argument(
        "--server",
        metavar="URL",
        help="JuliaHub URL (default: $JULIAHUB_SERVER, else $JULIA_PKG_SERVER); the token "
        "comes from $JULIAHUB_TOKEN or the server's auth.toml",
    )
    mount.add_argument(
        "-f", "--foreground", action="store_true", help="stay in the foreground until unmounted"
    )
    mount.add_argument(
        "--cache-dir",
        type=Path,
        metavar="DIR",
        help="where downloads and finished logs are kept (default: $XDG_CACHE_HOME/jhfs, "
        "i.e. ~/.cache/jhfs), one subdirectory per server",
    )
    mount.add_argument(
        "--jobs-limit",
        type=positive_int,
        default=1000,
        metavar="N",
        help="how many of the latest jobs jobs/ lists (default: 1000); older ones stay "
        "reachable by name",
    )
    mount.add_argument(
        "-o",
        dest="options",
        action="append",
        default=[],
        metavar="OPTIONS",
        help="mount options, comma-separated: download_streams=N, verify=stream|full, and "
        "FUSE's (e.g. allow_other)",
    )
    add_cache_max_size(mount)
    add_logging_options(mount, "jhfs.log in the server's cache directory (stderr with -f)")

    umount = commands.add_parser("umount", help="unmount (lazily, if busy)")
    umount.add_argument("mountpoint", type=Path, metavar="MOUNTPOINT")

    status = commands.add_parser("status", help="what jhfs mounts are doing")
    status.add_argument("mountpoint", type=Path, nargs="?", metavar="MOUNT")
    status.add_argument("--watch", action="store_true", help="draw it again until Ctrl-C")
    status.add_argument(
        "-n",
        "--interval",
        type=positive_seconds,
        default=1.0,
        metavar="SECONDS",
        help="with --watch, the seconds between drawings (default: 1), as watch(1) has it",
    )
    status.add_argument("--json", action="store_true", help="print each mount's status.json")

    demo = commands.add_parser("demo", help="run the emulator with sample jobs and mount it")
    demo.add_argument("mountpoint", type=Path, metavar="MOUNTPOINT")
    add_cache_max_size(demo)
    add_logging_options(demo, "stderr")

    cache_command.add_parser(commands)

    commands.add_parser(
        "emulator",
        help="run the local JuliaHub emulator (`jhfs emulator --help`)",
        add_help=False,
    )
    return parser


def mount_command(args: argparse.Namespace) -> int:
    # Load libfuse: only after require_libfuse3.
    from jhfs.detach import serve_detached
    from jhfs.mounting import MountSettings, serve
    from jhfs.preflight import (
        check_mountpoint,
        check_server,
        default_cache_root,
        server_cache_dir,
    )
    from jhfs.state.saved import saved_listing

    mountpoint = args.mountpoint.absolute()
    log_file = args.log_file.absolute() if args.log_file else None
    log_fd = None if log_file is None else open_log_file(log_file)
    if args.foreground and log_fd is not None:
        log_to(log_fd)
    check_mountpoint(mountpoint)

    def make_client() -> JuliaHubClient:
        return JuliaHubClient.from_environment(server=args.server)

    client = make_client()
    root = args.cache_dir.absolute() if args.cache_dir else default_cache_root()
    cache_dir = server_cache_dir(root, client.server)
    user = check_server(client, saved_listing(cache_dir))
    settings = MountSettings(
        mountpoint=mountpoint,
        cache_dir=cache_dir,
        jobs_limit=args.jobs_limit,
        cache_max_size=args.cache_max_size,
        options=parse_mount_options(args.options),
        user=user,
    )
    # "?": the server did not say (offline, or no username in its answer).
    whose = "the jobs" if user == "?" else f"{user}'s jobs"
    logger.info("mounting %s on %s at %s", whose, client.server, mountpoint)
    if args.foreground:
        serve(client, settings, lambda: logger.info("ready at %s", mountpoint))
        return 0
    # The child builds its own client: nothing of this process's connections is shared.
    client.close()
    if log_file is None or log_fd is None:
        log_file = cache_dir / "jhfs.log"
        log_fd = open_log_file(log_file)
    return serve_detached(make_client, settings, log_file, log_fd)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = build_parser()
    if is_helper_call(argv, parser):  # as mount(8) runs it: jhfs SOURCE MOUNTPOINT -o ...
        return run_helper(argv, main)
    if argv[:1] == ["emulator"]:
        # Its own parser owns its options; the emulator imports nothing from jhfs.
        from jhfs_emulator.cli import main as emulator_main

        return emulator_main(argv[1:])
    args = parser.parse_args(argv)
    if args.command == "umount":
        return unmount(args.mountpoint)
    if args.command == "status":
        from jhfs.status_command import status_command

        return status_command(args.mountpoint, args.interval if args.watch else None, args.json)
    if args.command == "cache":
        return cache_command.run(args)
    setup_logging(chosen_level(args))
    try:
        require_libfuse3()
        if args.command == "demo":
            from jhfs.demo import run_demo

            if args.log_file:
                log_to(open_log_file(args.log_file))
            return run_demo(args.mountpoint.absolute(), args.cache_max_size)
        return mount_command(args)
    except (LibfuseMissingError, MountError, JuliaHubError, ValueError) as exc:
        print(f"jhfs: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
