"""Where the server URL and token come from, and keeping the token fresh.

STUB: signatures settled, implementation in progress.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Credentials:
    server: str  # base URL, no trailing slash, https (or http on loopback)
    token: str  # never logged, never in a repr

    def __repr__(self) -> str:
        return f"Credentials(server={self.server!r}, token=<hidden>)"


class TokenSource:
    """Gives the current token; re-reads auth.toml when it changed on disk."""

    def __init__(self, token: str | None = None, auth_toml: Path | None = None) -> None: ...

    def token(self) -> str:
        """The token to send now (AuthenticationError if none or expired)."""
        ...

    def reload(self) -> bool:
        """Re-read auth.toml after a 401; True if a different token was found."""
        ...


def discover(server: str | None = None, token: str | None = None) -> tuple[str, TokenSource]:
    """Server URL and token source, in the documented order of precedence.

    explicit arguments; JULIAHUB_SERVER + JULIAHUB_TOKEN; JULIA_PKG_SERVER +
    <depot>/servers/<host>/auth.toml. Raises AuthenticationError with a
    message saying how to get a token when none is usable.
    """
    ...
