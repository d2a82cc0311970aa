"""How mount(8) runs jhfs: `jhfs SOURCE MOUNTPOINT [-o OPTIONS] [-v] [-n] [-s] [-f]`.

`mount -t fuse.jhfs none MNT -o ...` (and an fstab line of type fuse.jhfs)
runs libfuse's mount.fuse3, which drops the options that only mount(8)
reads and runs `jhfs none MNT -o OPTIONS` through /bin/sh; `mount -t jhfs`
runs /sbin/mount.jhfs (the `mount.jhfs` command) the same way, with every
option. This module turns that call into `jhfs mount`'s arguments: jhfs's
own long options written key=value (`server=URL`, `cache_dir=DIR`...), the
`-o` options `jhfs mount` takes, and FUSE's; fstab's own options are
dropped. The mount is made in the background: the command returns once it
is ready, as `jhfs mount` does.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import pwd
import sys
from collections.abc import Callable

HELPER_USAGE = (
    "mount(8) runs jhfs as `jhfs SOURCE MOUNTPOINT [-o OPTIONS]` (fstab's type fuse.jhfs, "
    "options such as server=URL,cache_dir=DIR): see the README's section on mount(8), "
    "fstab and systemd"
)

# `jhfs mount`'s long options, as key=value (or a bare key for a flag):
# server=URL becomes --server URL.
LONG_OPTIONS = frozenset(
    {"server", "cache_dir", "cache_max_size", "jobs_limit", "log_file", "log_level"}
)
FLAGS = frozenset({"debug"})
# `jhfs mount -o`'s own options (jhfs.mount_options).
JHFS_OPTIONS = frozenset({"download_streams", "verify", "timeout", "max_rate"})
# FUSE's options that libfuse 3 takes (the kernel's flags among them).
FUSE_OPTIONS = frozenset(
    {
        "allow_other", "allow_root", "auto_unmount", "default_permissions", "kernel_cache",
        "uid", "gid", "umask", "max_read",
        "ro", "rw", "dev", "nodev", "suid", "nosuid", "exec", "noexec",
        "atime", "noatime", "sync", "async", "dirsync",
    }
)  # fmt: skip
# Read by mount(8), systemd or fstab's readers, not by the file system; and the
# kernel's atime flags that libfuse does not take (a FUSE file system keeps its
# own times).
IGNORED = frozenset(
    {
        "defaults", "auto", "noauto", "user", "users", "nouser", "owner", "group", "nofail",
        "_netdev", "relatime", "norelatime", "strictatime", "lazytime", "diratime", "nodiratime",
    }
)  # fmt: skip
IGNORED_PREFIXES = ("x-", "comment=")


class HelperError(Exception):
    """A call jhfs cannot mount from; the message is the one line shown."""


def is_helper_call(argv: list[str], parser: argparse.ArgumentParser) -> bool:
    """Whether `jhfs ARGV` is mount(8)'s call: SOURCE MOUNTPOINT first, and SOURCE no
    subcommand (a lone unknown word is left to the parser's usage message)."""
    commands = {
        name
        for action in parser._actions
        if isinstance(action, argparse._SubParsersAction)
        for name in action.choices
    }
    words = argv[:2]
    return (
        len(words) == 2
        and not any(word.startswith("-") for word in words)
        and words[0] not in commands
    )


def mount_arguments(argv: list[str]) -> list[str] | None:
    """`jhfs mount`'s arguments for a mount helper call; None for -f (fake: mount nothing).

    SOURCE is `none` (or `jhfs`), or the server's URL (as server=URL does).
    HelperError names what is wrong.
    """
    positional: list[str] = []
    options: list[str] = []
    fake = sloppy = False
    items = iter(argv)
    for arg in items:
        if arg == "-o":
            options.extend(filter(None, next(items, "").split(",")))
        elif arg.startswith("-o"):
            options.extend(filter(None, arg[2:].split(",")))
        elif arg in ("-v", "-n"):  # verbose, no mtab: nothing to do
            pass
        elif arg == "-s":
            sloppy = True
        elif arg == "-f":
            fake = True
        elif arg.startswith("-"):
            raise HelperError(f"unknown argument {arg}")
        else:
            positional.append(arg)
    if len(positional) != 2:
        raise HelperError(f"{positional[0]!r} is not a command; {HELPER_USAGE}")
    source, mountpoint = positional
    command = ["mount", mountpoint]
    if "://" in source:
        command += ["--server", source]
    elif source not in ("none", "jhfs"):
        raise HelperError(f"{source!r} is not a command; {HELPER_USAGE}")
    passed: list[str] = []
    for option in options:
        key, sep, value = option.partition("=")
        if key == "token":
            raise HelperError(
                "a token is never taken from mount options (fstab and ps show them): set "
                "JULIAHUB_TOKEN, or keep it in ~/.julia/servers/<host>/auth.toml"
            )
        if key == "setuid":
            raise HelperError("setuid=USER needs the type fuse.jhfs (mount.fuse3 handles it)")
        if key in IGNORED or option.startswith(IGNORED_PREFIXES):
            continue
        flag = "--" + key.replace("_", "-")
        if key in LONG_OPTIONS and sep and value:
            command += [flag, value]
        elif key in FLAGS and not sep:
            command.append(flag)
        elif key in JHFS_OPTIONS or key in FUSE_OPTIONS:
            passed.append(option)
        elif not sloppy:
            raise HelperError(f"unknown mount option {option!r}")
    if passed:
        command += ["-o", ",".join(passed)]
    return None if fake else command


def use_own_home() -> None:
    """HOME as the user's own home when it is unset or someone else's.

    mount.fuse3 with setuid=USER runs jhfs as USER but leaves HOME as it was
    (root's, or /root when mount(8) removed it): the token's auth.toml and the
    default cache directory would then be looked for in root's home, which
    this user cannot read.
    """
    home = os.environ.get("HOME")
    try:
        owner = os.stat(home).st_uid if home else None
    except OSError:
        owner = None
    if owner != os.getuid():
        with contextlib.suppress(KeyError):  # a uid without a passwd entry: keep what there is
            os.environ["HOME"] = pwd.getpwuid(os.getuid()).pw_dir


def run_helper(argv: list[str], run_jhfs: Callable[[list[str]], int]) -> int:
    """Mount as mount(8) asks; 0 once mounted (or for -f), 1 with one line otherwise."""
    try:
        command = mount_arguments(argv)
    except HelperError as exc:
        print(f"jhfs: error: {exc}", file=sys.stderr)
        return 1
    if command is None:
        return 0
    use_own_home()
    try:
        return run_jhfs(command)
    except SystemExit as exc:  # `jhfs mount`'s parser refused a value (its exit status is 2)
        return 0 if exc.code in (0, None) else 1


def main() -> int:
    """`mount.jhfs`: the helper mount(8) runs for the type jhfs (as /sbin/mount.jhfs)."""
    from jhfs.cli import main as jhfs_main

    return run_helper(sys.argv[1:], jhfs_main)
