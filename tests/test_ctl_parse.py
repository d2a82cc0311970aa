"""ctl's command language, parsed directly."""

from __future__ import annotations

import pytest

from jhfs.nodes.ctl import MAX_WRITE, CtlSyntaxError, Extend, Kill, parse_commands
from jhfs.nodes.errors import InvalidInput


@pytest.mark.parametrize(
    ("data", "commands"),
    [
        (b"kill\n", [Kill()]),
        (b"kill", [Kill()]),
        (b"  kill  \r\n", [Kill()]),
        (b"extend 2\n", [Extend(2)]),
        (b"extend 02\n", [Extend(2)]),
        (b"extend\t10\n", [Extend(10)]),
        (b"extend 1\nkill\n", [Extend(1), Kill()]),
    ],
)
def test_valid_writes(data: bytes, commands: list[object]) -> None:
    assert parse_commands(data) == commands


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"\n",
        b"stop\n",
        b"kill now\n",
        b"KILL\n",
        b"extend\n",
        b"extend 0\n",
        b"extend -1\n",
        b"extend +1\n",
        b"extend 1.5\n",
        b"extend 2.0\n",
        b"extend two\n",
        b"extend 1 2\n",
        b"extend \xd9\xa3\n",  # a non-ASCII digit
        b"kill\n\nkill\n",  # an empty line among commands
        b"kill\nbogus\n",  # one bad line spoils the write
        b"\xff\xfe\n",
        # Only \n (or \r\n) ends a line, and only spaces and tabs separate words.
        b"kill\x0bkill\n",
        b"kill\x0ckill\n",
        b"kill\x1ckill\n",
        b"kill\rkill\n",
        "kill\u0085kill\n".encode(),
        "kill\u2028kill\n".encode(),
        "extend\u00a02\n".encode(),
        "extend\u20032\n".encode(),
        b"kill\x0b\n",
        b"k" * (MAX_WRITE + 1),
    ],
)
def test_invalid_writes(data: bytes) -> None:
    with pytest.raises(CtlSyntaxError):
        parse_commands(data)


def test_a_syntax_error_is_invalid_input() -> None:
    # errno_map turns InvalidInput into EINVAL and one log line; a ValueError
    # would be a bug (EIO and a traceback).
    assert issubclass(CtlSyntaxError, InvalidInput)
    assert not issubclass(CtlSyntaxError, ValueError)


def test_commands_print_as_written() -> None:
    assert [str(c) for c in parse_commands(b"kill\nextend 3\n")] == ["kill", "extend 3"]
