"""The command line's parts that need no mount: options, the cache directory, refusals."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from jhfs.cli import build_parser, main
from jhfs.mount_options import MountOptions, parse_mount_options
from jhfs.preflight import default_cache_root, server_cache_dir


def test_mount_options_are_comma_separated_and_repeatable_and_jhfs_takes_its_own() -> None:
    assert parse_mount_options(["allow_other,max_read=131072", "ro"]).fuse == {
        "allow_other": True,
        "max_read": "131072",
        "ro": True,
    }
    assert parse_mount_options([]) == MountOptions(download_streams=4, verify_full=False)
    assert parse_mount_options(["download_streams=8,verify=full,ro"]) == MountOptions(
        download_streams=8, verify_full=True, fuse={"ro": True}
    )
    assert parse_mount_options(["max_rate=2.5,timeout=5"]) == MountOptions(
        max_rate=2.5, timeout=5.0
    )


@pytest.mark.parametrize(
    ("option", "message"),
    [
        ("download_streams=0", "download_streams must be a whole number from 1 to 16"),
        ("download_streams=many", "download_streams must be a whole number from 1 to 16"),
        ("download_streams", "download_streams must be a whole number from 1 to 16"),
        ("verify=some", "verify must be stream or full"),
        ("max_rate=0", "max_rate must be a number greater than 0 and at most 1000"),
        ("max_rate=nan", "max_rate must be a number greater than 0 and at most 1000"),
        ("timeout", "timeout must be a number greater than 0 and at most 3600"),
        ("timeout=1e9", "timeout must be a number greater than 0 and at most 3600"),
        ("errors=strict", "-o errors is set by jhfs itself"),
        ("ro,raw_fi", "-o raw_fi is set by jhfs itself"),
        ("nothreads", "-o nothreads is set by jhfs itself"),
        ("debug", r"-o debug is set by jhfs itself \(use --debug\)"),
    ],
)
def test_bad_jhfs_options_are_refused_with_what_is_allowed(option: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_mount_options([option])


def test_default_cache_root_follows_xdg(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert default_cache_root() == tmp_path / "jhfs"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert default_cache_root() == tmp_path / "home" / ".cache" / "jhfs"


def test_cache_dir_is_private_and_per_server(tmp_path: Path) -> None:
    first = server_cache_dir(tmp_path, "http://127.0.0.1:8080")
    second = server_cache_dir(tmp_path, "https://juliahub.com/prefix")
    assert first != second
    assert first.parent == second.parent == tmp_path
    assert first.name == "127.0.0.1_8080"
    assert second.name == "juliahub.com_prefix"
    assert first.stat().st_mode & 0o777 == 0o700
    # The server's URL, for `jhfs cache du`, private like the rest.
    assert (second / "server").read_text() == "https://juliahub.com/prefix\n"
    assert (second / "server").stat().st_mode & 0o777 == 0o600


def test_cache_dirs_created_on_the_way_are_private_whatever_the_umask(tmp_path: Path) -> None:
    umask = os.umask(0)
    try:
        directory = server_cache_dir(tmp_path / "cache" / "jhfs", "http://127.0.0.1:8080")
    finally:
        os.umask(umask)
    for created in (directory, directory.parent, directory.parent.parent):
        assert created.stat().st_mode & 0o777 == 0o700, created


def test_mount_options_parse() -> None:
    args = build_parser().parse_args(
        ["mount", "/mnt/jh", "-f", "--jobs-limit", "50", "-o", "allow_other", "--debug"]
    )
    assert (args.foreground, args.jobs_limit, args.options, args.debug) == (
        True, 50, ["allow_other"], True,
    )  # fmt: skip
    assert build_parser().parse_args(["mount", "/mnt/jh"]).jobs_limit == 1000


@pytest.mark.parametrize(
    "argv",
    [
        ["mount", "/mnt/jh", "--token", "secret"],  # a token is never taken from argv
        ["mount", "/mnt/jh", "--jobs-limit", "0"],
        ["mount"],
        ["frobnicate"],
    ],
)
def test_bad_command_lines_are_refused(argv: list[str]) -> None:
    with pytest.raises(SystemExit) as raised:
        main(argv)
    assert raised.value.code == 2


def test_mounting_on_a_missing_directory_is_a_clear_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["mount", str(tmp_path / "nowhere"), "-f"]) == 1
    assert (
        capsys.readouterr().err.strip() == f"jhfs: error: {tmp_path / 'nowhere'} is not a directory"
    )
