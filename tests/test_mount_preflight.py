"""What `jhfs mount` says when it cannot mount: one line on stderr, exit 1, nothing mounted.

Each case runs the real command against a real server (the emulator, a port
with nothing listening, a TLS server with a self-signed certificate), or
against none at all.
"""

from __future__ import annotations

import http.server
import socket
import ssl
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from conftest import Emulator
from mounting import force_unmount, is_mounted, jhfs, jhfs_env, module_emulator

emulator = module_emulator()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def self_signed_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The URL of an HTTPS server whose certificate nobody signed."""
    directory = tmp_path_factory.mktemp("tls")
    key, cert = directory / "key.pem", directory / "cert.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
         "-nodes", "-subj", "/CN=127.0.0.1", "-days", "1", "-keyout", str(key), "-out", str(cert)],
        check=True,
        capture_output=True,
    )  # fmt: skip
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), http.server.BaseHTTPRequestHandler)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"https://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@dataclass
class Case:
    """How to run `jhfs mount` for one failure, and the words its one line must hold."""

    env: dict[str, str]
    words: list[str]
    args: list[str] = field(default_factory=list)
    cleanup: Callable[[], None] = lambda: None


def expired_auth_toml(emulator: Emulator, tmp_path: Path) -> Case:
    netloc = emulator.url.split("://", 1)[1]
    auth_toml = tmp_path / "depot" / "servers" / netloc.replace(":", "_") / "auth.toml"
    auth_toml.parent.mkdir(parents=True)
    expired = int(time.time()) - 3600
    auth_toml.write_text(f'id_token = "{emulator.token}"\nexpires_at = {expired}\n')
    env = jhfs_env(emulator)
    del env["JULIAHUB_TOKEN"], env["JULIAHUB_SERVER"]
    env.update(JULIA_PKG_SERVER=emulator.url, JULIA_DEPOT_PATH=str(tmp_path / "depot"))
    when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(expired))
    return Case(env, [f"{auth_toml} expired at {when}", "JuliaHub.authenticate("])


def a_500_for_the_token(emulator: Emulator, tmp_path: Path) -> Case:
    emulator.fault(endpoint="api_v1", mode="status", status=500)
    return Case(
        jhfs_env(emulator),
        [f"{emulator.url} refused the token", "(500: "],
        cleanup=lambda: emulator.admin("DELETE", "faults"),
    )


def with_server(emulator: Emulator, url: str, words: list[str]) -> Case:
    return Case({**jhfs_env(emulator), "JULIAHUB_SERVER": url}, words)


def netloc_of(emulator: Emulator) -> str:
    return emulator.url.removeprefix("http://")


def plain_http_behind(emulator: Emulator, url: str) -> Case:
    netloc = netloc_of(emulator)
    words = [f"https://{netloc} answers plain HTTP", f"did you mean http://{netloc}?"]
    return with_server(emulator, url, words)


CASES: dict[str, Callable[[Emulator, Path], Case]] = {
    "server down": lambda em, _: with_server(
        em, f"http://127.0.0.1:{free_port()}", ["cannot reach http://127.0.0.1:", "refused"]
    ),
    "name does not resolve": lambda em, _: with_server(
        em,
        "https://nonexistent.invalid",
        [
            "cannot reach https://nonexistent.invalid",
            "host name nonexistent.invalid does not resolve",
        ],
    ),
    "plain HTTP behind https://": lambda em, _: plain_http_behind(em, f"https://{netloc_of(em)}"),
    "no scheme (https:// assumed)": lambda em, _: plain_http_behind(em, netloc_of(em)),
    "plain http to another host": lambda em, _: with_server(
        em, "http://juliahub.invalid", ["http://juliahub.invalid", "only allowed for loopback"]
    ),
    "wrong token (401)": lambda em, _: Case(
        jhfs_env(em, token="not-the-token"), [f"{em.url} refused the token", "(401: "]
    ),
    "wrong token (500)": a_500_for_the_token,
    "expired auth.toml": expired_auth_toml,
    "log file in a missing directory": lambda em, tmp: Case(
        jhfs_env(em),
        [f"cannot open the log file {tmp}/missing/jhfs.log", f"{tmp}/missing does not exist"],
        args=["--log-file", str(tmp / "missing" / "jhfs.log")],
    ),
}


def one_line_error(case: Case, tmp_path: Path) -> str:
    """The mount's one line of stderr, having checked the exit and that nothing is mounted."""
    mountpoint = tmp_path / "mnt"
    mountpoint.mkdir()
    try:
        result = jhfs("mount", str(mountpoint), "--cache-dir", str(tmp_path / "cache"),
                      *case.args, env=case.env)  # fmt: skip
        assert not is_mounted(mountpoint)
    finally:
        force_unmount(mountpoint)
        case.cleanup()
    assert result.returncode == 1, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert result.stderr.startswith("jhfs: error: ")
    return result.stderr.strip()


@pytest.mark.parametrize("name", list(CASES))
def test_a_mount_that_cannot_be_made_is_one_line_and_exit_1(
    emulator: Emulator, tmp_path: Path, name: str
) -> None:
    asked = emulator.stats()["requests"].get("api_v1", 0)
    case = CASES[name](emulator, tmp_path)
    line = one_line_error(case, tmp_path)
    for words in case.words:
        assert words in line
    if name == "expired auth.toml":  # said before any request
        assert emulator.stats()["requests"].get("api_v1", 0) == asked


def test_a_certificate_that_does_not_verify_is_one_line(
    emulator: Emulator, self_signed_server: str, tmp_path: Path
) -> None:
    case = Case({**jhfs_env(emulator), "JULIAHUB_SERVER": self_signed_server}, [])
    line = one_line_error(case, tmp_path)
    assert f"cannot reach {self_signed_server}: its TLS certificate does not verify" in line
    assert "self-signed certificate" in line
