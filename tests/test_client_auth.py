"""Server and token discovery, auth.toml expiry, and re-reading it when it changes."""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path

import pytest

from jhfs.client import AuthenticationError, TokenSource, discover
from jhfs.client.auth import auth_toml_path, depot_dir, normalize_server

ENV_VARS = ("JULIAHUB_SERVER", "JULIAHUB_TOKEN", "JULIA_PKG_SERVER", "JULIA_DEPOT_PATH")

SOME_TOKEN = "a-token-that-is-no-word"  # redacted wherever it appears


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in ENV_VARS:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))


def write_auth_toml(
    depot: Path, host: str, token: str, expires: float | None = None, key: str = "expires_at"
) -> Path:
    path = depot / "servers" / host / "auth.toml"
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = [f'id_token = "{token}"', 'user_email = "u@example.com"', 'refresh_token = "r"']
    if expires is not None:
        lines.append(f"{key} = {int(expires)}")
    path.write_text("\n".join(lines) + "\n")
    return path


def bump_mtime(path: Path, seconds: int) -> None:
    """Make a rewrite visible even within one mtime tick of the file system."""
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + seconds * 1_000_000_000))


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://juliahub.com", "https://juliahub.com"),
        ("https://juliahub.com///", "https://juliahub.com"),
        ("juliahub.com", "https://juliahub.com"),
        ("juliahub.com/", "https://juliahub.com"),
        ("https://example.com/prefix/", "https://example.com/prefix"),
        ("HTTPS://example.com:8443/a/b", "https://example.com:8443/a/b"),
        ("http://127.0.0.1:8080/", "http://127.0.0.1:8080"),
        ("http://127.5.6.7:1", "http://127.5.6.7:1"),
        ("http://localhost:9000", "http://localhost:9000"),
        ("http://[::1]:9000/", "http://[::1]:9000"),
    ],
)
def test_normalize_server(url: str, expected: str) -> None:
    assert normalize_server(url) == expected


@pytest.mark.parametrize(
    "url",
    [
        "http://juliahub.com",
        "http://10.0.0.1:8080",
        "http://128.0.0.1",
        "ftp://juliahub.com",
        "https://",
        "https://host/?q=1",
        "https://host/#f",
        "https://user@host",
        "https://host:notaport",
    ],
)
def test_normalize_server_refuses(url: str) -> None:
    with pytest.raises(ValueError):
        normalize_server(url)


def test_explicit_arguments_win(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JULIAHUB_SERVER", "https://env.example.com")
    monkeypatch.setenv("JULIAHUB_TOKEN", "env-token")
    monkeypatch.setenv("JULIA_PKG_SERVER", "pkg.example.com")
    server, tokens = discover("https://arg.example.com/", "arg-token")
    assert server == "https://arg.example.com"
    assert tokens.token() == "arg-token"


def test_juliahub_env_pair_beats_pkg_server(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    write_auth_toml(tmp_path / "depot", "pkg.example.com", "file-token")
    monkeypatch.setenv("JULIA_DEPOT_PATH", str(tmp_path / "depot"))
    monkeypatch.setenv("JULIA_PKG_SERVER", "pkg.example.com")
    monkeypatch.setenv("JULIAHUB_SERVER", "https://env.example.com")
    monkeypatch.setenv("JULIAHUB_TOKEN", "env-token")
    server, tokens = discover()
    assert (server, tokens.token()) == ("https://env.example.com", "env-token")


def test_token_without_server_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JULIAHUB_TOKEN", "env-token")
    monkeypatch.setenv("JULIA_PKG_SERVER", "pkg.example.com")  # goes with auth.toml only
    with pytest.raises(AuthenticationError, match="token is set but no server"):
        discover()
    with pytest.raises(AuthenticationError, match="JULIAHUB_SERVER"):
        discover(token="arg-token")


def test_nothing_configured(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(AuthenticationError, match="JULIA_PKG_SERVER") as info:
        discover()
    assert "JuliaHub.authenticate" in str(info.value)


def test_pkg_server_and_auth_toml(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    depot = tmp_path / "depot"
    write_auth_toml(depot, "juliahub.example.com", "file-token", time.time() + 3600)
    monkeypatch.setenv("JULIA_DEPOT_PATH", os.pathsep.join([str(depot), str(tmp_path / "other")]))
    monkeypatch.setenv("JULIA_PKG_SERVER", "juliahub.example.com")
    server, tokens = discover()
    assert server == "https://juliahub.example.com"
    assert tokens.token() == "file-token"
    assert tokens.auth_toml == depot / "servers" / "juliahub.example.com" / "auth.toml"


def test_pkg_server_with_scheme_and_port(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    depot = tmp_path / "depot"
    write_auth_toml(depot, "127.0.0.1_8123", "loop-token")  # Pkg replaces ':' by '_'
    monkeypatch.setenv("JULIA_DEPOT_PATH", str(depot))
    monkeypatch.setenv("JULIA_PKG_SERVER", "http://127.0.0.1:8123/")
    server, tokens = discover()
    assert server == "http://127.0.0.1:8123"
    assert tokens.token() == "loop-token"


def test_explicit_server_reads_its_auth_toml(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    depot = tmp_path / "depot"
    write_auth_toml(depot, "arg.example.com", "arg-file-token")
    monkeypatch.setenv("JULIA_DEPOT_PATH", str(depot))
    monkeypatch.setenv("JULIA_PKG_SERVER", "pkg.example.com")
    server, tokens = discover("https://arg.example.com")
    assert (server, tokens.token()) == ("https://arg.example.com", "arg-file-token")


def test_default_depot_is_home_julia(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    assert depot_dir() == tmp_path / "home" / ".julia"
    monkeypatch.setenv("JULIA_DEPOT_PATH", os.pathsep + str(tmp_path / "second"))
    assert depot_dir() == tmp_path / "home" / ".julia"  # an empty first entry means the default
    write_auth_toml(tmp_path / "home" / ".julia", "juliahub.com", "home-token")
    monkeypatch.setenv("JULIA_PKG_SERVER", "juliahub.com")
    assert discover()[1].token() == "home-token"
    assert auth_toml_path("juliahub.com") == (
        tmp_path / "home" / ".julia" / "servers" / "juliahub.com" / "auth.toml"
    )


def test_missing_auth_toml_says_how_to_get_a_token(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("JULIA_DEPOT_PATH", str(tmp_path / "empty-depot"))
    monkeypatch.setenv("JULIA_PKG_SERVER", "juliahub.com")
    with pytest.raises(AuthenticationError) as info:
        discover()
    message = str(info.value)
    assert "does not exist" in message
    assert 'JuliaHub.authenticate("juliahub.com")' in message
    assert "JULIAHUB_TOKEN" in message


@pytest.mark.parametrize("key", ["expires", "expires_at"])
def test_expired_token_is_refused_with_a_hint(tmp_path: Path, key: str) -> None:
    path = write_auth_toml(tmp_path, "juliahub.com", "old-token", time.time() - 10, key=key)
    with pytest.raises(AuthenticationError, match="expired") as info:
        TokenSource(auth_toml=path).token()
    assert "JuliaHub.authenticate" in str(info.value)
    assert "old-token" not in str(info.value)


def test_unexpired_and_expiry_free_tokens_are_used(tmp_path: Path) -> None:
    path = write_auth_toml(tmp_path, "a.example.com", "fresh", time.time() + 60, key="expires")
    assert TokenSource(auth_toml=path).token() == "fresh"
    path = write_auth_toml(tmp_path, "b.example.com", "forever")
    assert TokenSource(auth_toml=path).token() == "forever"


@pytest.mark.parametrize(
    "content",
    [
        'user_email = "x"\n',
        'id_token = ""\n',
        "id_token = 5\n",
        "not toml [[[\n",
        'id_token = "a b"\n',
        'id_token = "t"\nexpires = "soon"\n',
    ],
)
def test_unusable_auth_toml(tmp_path: Path, content: str) -> None:
    path = tmp_path / "auth.toml"
    path.write_text(content)
    with pytest.raises(AuthenticationError):
        TokenSource(auth_toml=path)


def test_rereads_auth_toml_when_it_changes(tmp_path: Path) -> None:
    path = write_auth_toml(tmp_path, "juliahub.com", "token-one", time.time() + 3600)
    tokens = TokenSource(auth_toml=path)
    assert tokens.token() == "token-one"
    # Refreshed in place by the Julia tools (different size and mtime).
    write_auth_toml(tmp_path, "juliahub.com", "token-number-two", time.time() + 7200)
    bump_mtime(path, 5)
    assert tokens.token() == "token-number-two"


def test_expired_then_refreshed_on_disk(tmp_path: Path) -> None:
    path = write_auth_toml(tmp_path, "juliahub.com", "token-one", time.time() + 3600)
    tokens = TokenSource(auth_toml=path)
    write_auth_toml(tmp_path, "juliahub.com", "token-one", time.time() - 1)
    bump_mtime(path, 5)
    with pytest.raises(AuthenticationError, match="expired"):
        tokens.token()
    write_auth_toml(tmp_path, "juliahub.com", "token-two", time.time() + 3600)
    bump_mtime(path, 10)
    assert tokens.token() == "token-two"


def test_reload_reports_a_changed_token(tmp_path: Path) -> None:
    path = write_auth_toml(tmp_path, "juliahub.com", "token-one")
    tokens = TokenSource(auth_toml=path)
    assert tokens.reload() is False  # unchanged
    # Same size and mtime: only an explicit reload (after a 401) notices.
    stat = path.stat()
    write_auth_toml(tmp_path, "juliahub.com", "token-eno")
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert tokens.token() == "token-one"
    assert tokens.reload() is True
    assert tokens.token() == "token-eno"


def test_a_half_written_file_keeps_the_previous_token(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = write_auth_toml(tmp_path, "juliahub.com", "token-one")
    tokens = TokenSource(auth_toml=path)
    path.write_text("id_token = ")
    bump_mtime(path, 5)
    with caplog.at_level(logging.WARNING):
        assert [tokens.token() for _ in range(3)] == ["token-one"] * 3
    assert caplog.text.count("keeping the previous token") == 1  # once, not every call
    assert tokens.reload() is False
    write_auth_toml(tmp_path, "juliahub.com", "token-two")  # the write completes
    bump_mtime(path, 10)
    assert tokens.token() == "token-two"


def test_fixed_token_source() -> None:
    tokens = TokenSource(token="fixed-secret")
    assert tokens.token() == "fixed-secret"
    assert tokens.reload() is False
    assert tokens.auth_toml is None
    assert "fixed-secret" not in repr(tokens)
    with pytest.raises(ValueError):
        TokenSource()
    with pytest.raises(ValueError):
        TokenSource(token=SOME_TOKEN, auth_toml=Path("x"))
    with pytest.raises(AuthenticationError):
        TokenSource(token="  ")
    assert TokenSource(token=" padded-token\n").token() == "padded-token"
    for bad in ("two words", "line\nbreak", "nul\x00"):
        with pytest.raises(AuthenticationError, match="whitespace or control") as info:
            TokenSource(token=bad)
        assert bad not in str(info.value)


def test_token_not_in_repr_of_file_source(tmp_path: Path) -> None:
    path = write_auth_toml(tmp_path, "juliahub.com", "file-secret-123")
    tokens = TokenSource(auth_toml=path)
    assert "file-secret-123" not in repr(tokens)
    assert str(path) in repr(tokens)
