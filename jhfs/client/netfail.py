"""What a failed connection to the server means, in words; whether a port speaks plain HTTP.

requests wraps the cause of a failed connection a few layers deep
("HTTPSConnectionPool(...): Max retries exceeded ... (Caused by ...)"). A log
line or an error message says the cause itself: the host name does not
resolve, the connection was refused, the certificate does not verify, the
port does not speak TLS.
"""

from __future__ import annotations

import socket
import ssl

import requests
from urllib3.exceptions import NameResolutionError

MAX_CAUSES = 10  # how deep the chain of causes is followed


def causes(exc: BaseException) -> list[BaseException]:
    """`exc` and what it wraps (urllib3's `reason`, exception arguments, __cause__)."""
    found: list[BaseException] = []
    pending = [exc]
    while pending and len(found) < MAX_CAUSES:
        current = pending.pop(0)
        if any(current is seen for seen in found):
            continue
        found.append(current)
        reason = getattr(current, "reason", None)
        inner = [reason, *current.args, current.__cause__, current.__context__]
        pending += [e for e in inner if isinstance(e, BaseException)]
    return found


def _first(exc: BaseException, kind: type[BaseException]) -> BaseException | None:
    return next((cause for cause in causes(exc) if isinstance(cause, kind)), None)


def is_not_tls(exc: requests.RequestException) -> bool:
    """A TLS handshake that failed for another reason than the certificate
    (most often: the port speaks plain HTTP)."""
    return isinstance(exc, requests.exceptions.SSLError) and not _first(
        exc, ssl.SSLCertVerificationError
    )


def describe(exc: requests.RequestException, host: str | None) -> str:
    """What went wrong with a request that got no answer, in one line."""
    certificate = _first(exc, ssl.SSLCertVerificationError)
    if isinstance(certificate, ssl.SSLCertVerificationError):
        return f"its TLS certificate does not verify ({certificate.verify_message})"
    if isinstance(exc, requests.exceptions.SSLError):
        tls = _first(exc, ssl.SSLError)
        return f"the TLS handshake failed ({tls.args[-1] if tls and tls.args else exc})"
    if _first(exc, NameResolutionError):
        lookup = _first(exc, socket.gaierror)
        why = f" ({lookup.strerror})" if isinstance(lookup, socket.gaierror) else ""
        return f"the host name {host} does not resolve{why}"
    if _first(exc, ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, requests.ConnectTimeout):
        return "no connection within the timeout"
    if isinstance(exc, requests.ReadTimeout):
        return "no answer within the timeout"
    if _first(exc, ConnectionResetError):
        return "the connection was reset"
    return f"{type(exc).__name__}: {exc}"


def answers_plain_http(host: str, port: int, timeout: float) -> bool:
    """Whether host:port answers a plain HTTP request (one HEAD /, without the token)."""
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            sock.sendall(f"HEAD / HTTP/1.0\r\nHost: {host}\r\n\r\n".encode())
            return sock.recv(5) == b"HTTP/"
    except OSError:
        return False
