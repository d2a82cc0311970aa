"""Where jhfs logs and how much: the logging options, the level they choose, the log file.

The level is the most verbose that the options ask for (`--log-level`, `-v`,
`--debug`), and info when none is given: the lines a person needs (mounted
where, logging where, one warning per outage) are at info or above. A log
file is opened before anything is mounted, so that a bad path is one line
and no mount; it is created 0600 (job names are in it) and appended to.
"""

from __future__ import annotations

import argparse
import faulthandler
import logging
import os
import sys
from pathlib import Path

from jhfs.mount_errors import MountError

LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "error": logging.ERROR,
}
DEFAULT_LEVEL = logging.INFO
FORMAT = "jhfs: %(asctime)s %(levelname)s %(name)s: %(message)s"


def add_logging_options(parser: argparse.ArgumentParser, default_file: str) -> None:
    """--log-file, --log-level, -v and --debug (the names mount(8)'s helper maps onto)."""
    parser.add_argument(
        "--log-file",
        type=Path,
        metavar="PATH",
        help=f"append the log to PATH (created 0600; its directory must exist) instead of "
        f"{default_file}",
    )
    parser.add_argument(
        "--log-level",
        type=str.lower,
        choices=list(LEVELS),
        metavar="LEVEL",
        help="debug, info, warning or error (default: info)",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log level info")
    parser.add_argument("--debug", action="store_true", help="log level debug")


def chosen_level(args: argparse.Namespace) -> int:
    """The most verbose level the options ask for; info if they ask for none."""
    asked = [LEVELS[args.log_level]] if args.log_level else []
    asked += [logging.INFO] if args.verbose else []
    asked += [logging.DEBUG] if args.debug else []
    return min(asked, default=DEFAULT_LEVEL)


def setup_logging(level: int) -> None:
    """Log at `level` to stderr (`log_to` moves it to a file)."""
    logging.basicConfig(level=level, format=FORMAT, stream=sys.stderr)
    # mfusepy logs every errno it returns at debug level, most with a
    # traceback (each ENOTSUP that `ls -l` asks for, say): jhfs.errno_map
    # logs each failure itself, in one line. Its warnings and the exceptions
    # it catches (which only a bug in jhfs raises) still show.
    logging.getLogger("fuse").setLevel(logging.WARNING)
    # A crash in native code (libfuse, ctypes) leaves the Python stack of every
    # thread in the log instead of nothing: the bug's traceback.
    faulthandler.enable(2, all_threads=True)  # stderr's descriptor, the log once detached


def open_log_file(path: Path) -> int:
    """`path` opened for appending (created 0600), or a one-line MountError."""
    try:
        return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o600)
    except FileNotFoundError:
        raise MountError(
            f"cannot open the log file {path}: the directory {path.parent} does not exist"
        ) from None
    except OSError as exc:
        raise MountError(f"cannot open the log file {path}: {exc.strerror}") from None


def log_to(log_fd: int) -> None:
    """From now on the log goes to the file open at `log_fd` instead of stderr."""
    stream = os.fdopen(log_fd, "a", encoding="utf-8", errors="backslashreplace", buffering=1)
    for handler in logging.getLogger().handlers:
        if isinstance(handler, logging.StreamHandler):
            handler.setStream(stream)
    faulthandler.enable(log_fd, all_threads=True)
