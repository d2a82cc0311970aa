"""--cache-max-size: the sizes it takes and the ones it refuses (no mount needed)."""

from __future__ import annotations

import argparse

import pytest

from jhfs.cli import build_parser, byte_size
from jhfs.state.files import DEFAULT_MAX_SIZE


@pytest.mark.parametrize(
    ("text", "size"),
    [
        ("10G", 10 << 30),
        ("500M", 500 << 20),
        ("500m", 500 << 20),
        ("1.5G", 3 << 29),
        ("64KiB", 64 << 10),
        ("2TB", 2 << 40),
        ("4096", 4096),
    ],
)
def test_sizes_in_powers_of_1024(text: str, size: int) -> None:
    assert byte_size(text) == size


@pytest.mark.parametrize("text", ["", "lots", "10X", "-1G", "0", "0.0001K", "1 0G"])
def test_what_is_not_a_size_is_refused(text: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError):
        byte_size(text)


def test_mount_and_demo_take_it_with_a_default_of_10g() -> None:
    parser = build_parser()
    assert parser.parse_args(["mount", "m"]).cache_max_size == DEFAULT_MAX_SIZE == 10 << 30
    assert parser.parse_args(["mount", "m", "--cache-max-size", "2G"]).cache_max_size == 2 << 30
    assert parser.parse_args(["demo", "m", "--cache-max-size", "500M"]).cache_max_size == 500 << 20
