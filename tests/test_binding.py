"""The FUSE binding: libfuse 3 is required, and reads go straight into libfuse's buffer."""

from __future__ import annotations

import ctypes
import ctypes.util
from typing import Any

import pytest

from jhfs import cli
from jhfs.binding import fuse_file_info
from jhfs.fuse_ops import JhfsFUSE


def only_libfuse2(name: str) -> str | None:
    return "libfuse.so.2" if name == "fuse" else None


def test_a_machine_with_only_libfuse2_gets_one_line_naming_the_package(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(ctypes.util, "find_library", only_libfuse2)
    assert cli.main(["mount", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert err == (
        "jhfs: error: jhfs needs libfuse 3 (only libfuse 2 is installed): install it with "
        "your package manager (Debian/Ubuntu: apt install fuse3)\n"
    )


class RecordingOperations:
    def __init__(self) -> None:
        self.calls: list[tuple[str | None, int, int, int]] = []

    def read(self, path: str | None, buf: memoryview, offset: int, fi: Any) -> int:
        self.calls.append((path, len(buf), offset, fi.fh))
        data = b"0123456789"[offset : offset + len(buf)]
        buf[: len(data)] = data
        return len(data)


def call_read(path: bytes | None, size: int, offset: int) -> tuple[RecordingOperations, bytes, int]:
    """JhfsFUSE.read as libfuse calls it, on a FUSE object that never mounted."""
    fuse = JhfsFUSE.__new__(JhfsFUSE)
    operations = RecordingOperations()
    fuse.operations, fuse.encoding, fuse.errors = operations, "utf-8", "surrogateescape"
    buffer = (ctypes.c_byte * size)()
    info = fuse_file_info()
    info.fh = 42
    count = fuse.read(
        path,
        ctypes.cast(buffer, ctypes.POINTER(ctypes.c_byte)),
        size,
        offset,
        ctypes.pointer(info),
    )
    return operations, bytes(buffer), count


def test_read_fills_libfuses_buffer_in_place_and_returns_the_count() -> None:
    operations, buffer, count = call_read(b"/jobs/x/files/result/a", 4, 3)
    assert count == 4
    assert buffer == b"3456"
    assert operations.calls == [("/jobs/x/files/result/a", 4, 3, 42)]


def test_read_near_the_end_returns_fewer_bytes() -> None:
    _, buffer, count = call_read(b"/f", 8, 6)
    assert count == 4
    assert buffer[:4] == b"6789"


def test_read_decodes_any_path_bytes_and_passes_none_through() -> None:
    operations, _, _ = call_read(b"/jobs/\xff", 1, 0)
    operations_none, _, _ = call_read(None, 1, 0)
    assert operations.calls[0][0] == "/jobs/\udcff"
    assert operations_none.calls[0][0] is None


class ListingOperations:
    entries = [  # noqa: RUF012  # a fixed listing
        (".", None),
        ("..", None),
        ("jr-a", {"st_mode": 0o40555, "st_size": 0, "st_mtime": 5_000_000_000}),
        ("jr-b", {"st_mode": 0o40555, "st_size": 0, "st_mtime": 6_000_000_000}),
        ("plain", None),
    ]

    def readdir(self, path: str | None, fh: int, offset: int) -> list[Any]:
        return self.entries


def call_readdir(offset: int, room: int) -> list[tuple[bytes, int, int, int, int]]:
    """JhfsFUSE.readdir_fuse_3 with a filler whose buffer holds `room` entries."""
    fuse = JhfsFUSE.__new__(JhfsFUSE)
    fuse.operations, fuse.encoding, fuse.errors = ListingOperations(), "utf-8", "surrogateescape"
    filled: list[tuple[bytes, int, int, int, int]] = []

    def filler(buf: Any, name: bytes, st: Any, position: int, flags: int) -> int:
        if len(filled) == room:
            return 1
        filled.append((name, position, flags, st.st_mode, st.st_mtimespec.tv_sec))
        return 0

    info = fuse_file_info()
    assert fuse.readdir_fuse_3(b"/jobs", None, filler, offset, ctypes.pointer(info), 0) == 0
    return filled


def test_readdir_gives_positions_and_attributes_and_resumes_where_the_buffer_filled() -> None:
    first = call_readdir(0, room=3)
    assert first == [
        (b".", 1, 0, 0, 0),
        (b"..", 2, 0, 0, 0),
        (b"jr-a", 3, 2, 0o40555, 5),  # FUSE_FILL_DIR_PLUS with its attributes
    ]
    rest = call_readdir(3, room=10)
    assert rest == [(b"jr-b", 4, 2, 0o40555, 6), (b"plain", 5, 0, 0, 0)]
