"""Where the server URL and token come from, and keeping the token fresh.

Discovery order (discover): explicit arguments; JULIAHUB_SERVER +
JULIAHUB_TOKEN; JULIA_PKG_SERVER + <depot>/servers/<host>/auth.toml, the file
the Julia tools (PkgAuthentication, JuliaHub.jl) keep refreshed in place. A
TokenSource backed by auth.toml re-reads it whenever its mtime or size
changes, and on request after a 401.
"""

from __future__ import annotations

import ipaddress
import logging
import os
import re
import threading
import time
import tomllib
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from jhfs.client.errors import AuthenticationError, TokenExpiredError

logger = logging.getLogger(__name__)

_FILENAME_UNSAFE = re.compile(r'[:/<>"\\|?*]')


def _fresh_token_hint(host: str) -> str:
    return (
        f'run `using JuliaHub; JuliaHub.authenticate("{host}")` in Julia to get a fresh token, '
        "or set JULIAHUB_SERVER and JULIAHUB_TOKEN"
    )


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def normalize_server(url: str) -> str:
    """A base URL without trailing slashes: https, or http for a loopback host only.

    A bare host (`juliahub.com`) means https. ValueError for anything else.
    """
    text = url.strip()
    if "://" not in text:
        text = f"https://{text}"
    try:
        parts = urlsplit(text)
        host = parts.hostname
        parts.port  # noqa: B018 -- raises ValueError for a malformed port
    except ValueError as exc:
        raise ValueError(f"invalid JuliaHub server URL {url!r}: {exc}") from None
    if not host:
        raise ValueError(f"invalid JuliaHub server URL {url!r}: no host")
    if parts.query or parts.fragment or parts.username is not None:
        raise ValueError(f"invalid JuliaHub server URL {url!r}: no query, fragment or user allowed")
    scheme = parts.scheme.lower()
    if scheme == "http":
        if not is_loopback(host):
            raise ValueError(
                f"refusing JuliaHub server URL {url!r}: http:// is only allowed for loopback "
                "hosts (127.0.0.0/8, localhost, ::1); use https://"
            )
    elif scheme != "https":
        raise ValueError(f"invalid JuliaHub server URL {url!r}: the scheme must be https")
    return f"{scheme}://{parts.netloc}{parts.path.rstrip('/')}"


def depot_dir() -> Path:
    """The first entry of JULIA_DEPOT_PATH, else ~/.julia (as Julia resolves it)."""
    first = os.environ.get("JULIA_DEPOT_PATH", "").split(os.pathsep)[0]
    return Path(first).expanduser() if first else Path.home() / ".julia"


def auth_toml_path(server: str) -> Path:
    """<depot>/servers/<host[:port], unsafe characters as _>/auth.toml, as Pkg names it."""
    netloc = urlsplit(normalize_server(server)).netloc
    return depot_dir() / "servers" / _FILENAME_UNSAFE.sub("_", netloc) / "auth.toml"


class TokenSource:
    """Gives the current token; re-reads auth.toml when it changed on disk.

    Either a fixed token, or an auth.toml path (exactly one). Thread-safe.
    """

    def __init__(self, token: str | None = None, auth_toml: Path | None = None) -> None:
        if (token is None) == (auth_toml is None):
            raise ValueError("TokenSource needs exactly one of a token or an auth.toml path")
        self._lock = threading.Lock()
        self._path = auth_toml
        self._token = None if token is None else _checked(token, "the JuliaHub token")
        self._expires: float | None = None
        self._stamp: tuple[int, int] | None = None  # (mtime_ns, size) of the file read
        if auth_toml is not None:
            with self._lock:
                self._read_file()

    def __repr__(self) -> str:
        source = f"auth_toml={str(self._path)!r}" if self._path else "token=<hidden>"
        return f"TokenSource({source})"

    @property
    def auth_toml(self) -> Path | None:
        return self._path

    def token(self) -> str:
        """The token to send now (AuthenticationError if none or expired)."""
        with self._lock:
            if self._path is not None:
                self._reread_if_changed()
                if self._expired():
                    # Perhaps refreshed within the same mtime tick: look once more.
                    self._read_file()
                if self._expired():
                    assert self._expires is not None
                    when = time.strftime("%Y-%m-%d %H:%M:%S %Z", time.localtime(self._expires))
                    raise TokenExpiredError(
                        f"the JuliaHub token in {self._path} expired at {when}; "
                        + _fresh_token_hint(self._path.parent.name)
                    )
            assert self._token is not None
            return self._token

    def reload(self) -> bool:
        """Re-read auth.toml after a 401; True if a different token was found."""
        if self._path is None:
            return False
        with self._lock:
            before = self._token
            try:
                self._read_file()
            except AuthenticationError as exc:
                logger.warning("could not re-read the token: %s", exc)
                return False
            changed = self._token != before
        if changed:
            logger.info("re-read %s: the token changed", self._path)
        return changed

    def _expired(self) -> bool:
        return self._expires is not None and self._expires <= time.time()

    def _reread_if_changed(self) -> None:
        assert self._path is not None
        try:
            stat = self._path.stat()
        except OSError:
            # Gone (perhaps mid-rewrite): keep the token read before, the server judges it.
            return
        if (stat.st_mtime_ns, stat.st_size) != self._stamp:
            try:
                self._read_file()
            except AuthenticationError as exc:
                if self._token is None:
                    raise
                # Not again until the file changes once more (the next write completes it).
                self._stamp = (stat.st_mtime_ns, stat.st_size)
                logger.warning("keeping the previous token: %s", exc)

    def _read_file(self) -> None:
        assert self._path is not None
        hint = _fresh_token_hint(self._path.parent.name)
        try:
            stat = self._path.stat()
            with self._path.open("rb") as handle:
                data = tomllib.load(handle)
        except FileNotFoundError:
            raise AuthenticationError(
                f"no JuliaHub token: {self._path} does not exist; {hint}"
            ) from None
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise AuthenticationError(f"cannot read {self._path}: {exc}; {hint}") from None
        token = data.get("id_token")
        if not isinstance(token, str):
            raise AuthenticationError(f"{self._path} holds no id_token; {hint}")
        self._token = _checked(token, f"the id_token in {self._path}")
        self._expires = _expiry(data, self._path)
        self._stamp = (stat.st_mtime_ns, stat.st_size)
        logger.debug("read the token from %s", self._path)


def _checked(token: str, what: str) -> str:
    """The token without surrounding whitespace; refused if it could not be a header value."""
    token = token.strip()
    if not token:
        raise AuthenticationError(f"{what} is empty")
    if not token.isprintable() or any(c.isspace() for c in token):
        # requests would refuse the header with a message quoting it.
        raise AuthenticationError(f"{what} contains whitespace or control characters")
    return token


def _expiry(data: dict[str, Any], path: Path) -> float | None:
    for key in ("expires", "expires_at"):
        if key in data:
            value = data[key]
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise AuthenticationError(f"{path}: {key} is not a number of unix seconds")
            return float(value)
    return None


def discover(server: str | None = None, token: str | None = None) -> tuple[str, TokenSource]:
    """Server URL and token source, in the documented order of precedence.

    explicit arguments; JULIAHUB_SERVER + JULIAHUB_TOKEN; JULIA_PKG_SERVER +
    <depot>/servers/<host>/auth.toml. Raises AuthenticationError with a
    message saying how to get a token when none is usable (ValueError for a
    server URL that is not https, or http on loopback).

    A token given (argument or JULIAHUB_TOKEN) needs a server given the same
    way: as in the official client, JULIA_PKG_SERVER only goes with auth.toml.
    A server given without a token reads that server's auth.toml.
    """
    env = os.environ
    token = token or env.get("JULIAHUB_TOKEN") or None
    server = server or env.get("JULIAHUB_SERVER") or None
    if token is not None:
        if server is None:
            raise AuthenticationError(
                "a JuliaHub token is set but no server: set JULIAHUB_SERVER (e.g. "
                "https://juliahub.com) or pass the server explicitly"
            )
        url = normalize_server(server)
        logger.debug("using the explicit token for %s", url)
        return url, TokenSource(token=token)
    server = server or env.get("JULIA_PKG_SERVER") or None
    if server is None:
        raise AuthenticationError(
            "no JuliaHub server configured: set JULIA_PKG_SERVER (e.g. juliahub.com) and "
            'run `using JuliaHub; JuliaHub.authenticate("juliahub.com")` in Julia, '
            "or set JULIAHUB_SERVER and JULIAHUB_TOKEN"
        )
    url = normalize_server(server)
    path = auth_toml_path(url)
    logger.debug("using the token in %s for %s", path, url)
    return url, TokenSource(auth_toml=path)
