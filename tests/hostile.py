"""A hostile server for tests: the emulator's answers, except where a test says otherwise.

`HostileServer` listens on a free loopback port in the test process and
forwards every request to the emulator behind it, unless one of the test's
rules answers instead. A rule sees the request (method, path, query) and can
ask the emulator for the real answer first, so a test can change one field of
a job, repeat a log page, send a body longer than its file, or answer 404
where the emulator would not: what a broken or hostile server may send, and
the emulator, being faithful, never does. The websocket log stream is not
forwarded (404): jhfs falls back to polling.
"""

from __future__ import annotations

import json
import threading
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import requests
from conftest import Emulator

HOP_BY_HOP = frozenset({"connection", "keep-alive", "transfer-encoding", "content-length", "host"})


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes
    upstream: Callable[[], requests.Response]

    def upstream_json(self) -> Any:
        """The emulator's answer to this request, decoded."""
        response = self.upstream()
        response.raise_for_status()
        return response.json()


@dataclass
class Answer:
    status: int = 200
    body: bytes | Iterable[bytes] = b""
    headers: dict[str, str] = field(default_factory=dict)

    @classmethod
    def json(cls, value: Any, status: int = 200) -> Answer:
        return cls(status, json.dumps(value).encode(), {"Content-Type": "application/json"})


Rule = Callable[[Request], Answer | None]


class HostileServer:
    def __init__(self, emulator: Emulator) -> None:
        self.emulator = emulator
        self.rules: list[Rule] = []
        self.counts: Counter[str] = Counter()
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def as_emulator(self) -> Emulator:
        """The emulator as jhfs should see it: at this server's address."""
        return replace(self.emulator, url=self.url)

    @contextmanager
    def rule(self, rule: Rule) -> Iterator[None]:
        """Answer with `rule` (where it returns an Answer) until the block ends."""
        with self._lock:
            self.rules.append(rule)
        try:
            yield
        finally:
            with self._lock:
                self.rules.remove(rule)

    def count(self, path: str) -> int:
        with self._lock:
            return self.counts[path]

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _answer(self, request: Request) -> Answer | None:
        with self._lock:
            self.counts[request.path] += 1
            rules = list(self.rules)
        for rule in rules:
            answer = rule(request)
            if answer is not None:
                return answer
        return None

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True  # headers and body are two writes: no 40 ms wait

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                self._serve()

            def do_POST(self) -> None:
                self._serve()

            def _serve(self) -> None:
                parts = urlsplit(self.path)
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP}

                def upstream() -> requests.Response:
                    return requests.request(
                        self.command,
                        server.emulator.url + self.path,
                        headers=headers,
                        data=body,
                        timeout=30,
                        allow_redirects=False,
                        stream=True,
                    )

                query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
                request = Request(self.command, parts.path, query, headers, body, upstream)
                if parts.path == "/ws/stream_logs":
                    answer: Answer | None = Answer(404, b"no stream here")
                else:
                    answer = server._answer(request)
                if answer is None:
                    self._forward(upstream())
                else:
                    self._send(answer)

            def _forward(self, response: requests.Response) -> None:
                with response:
                    self.send_response(response.status_code)
                    for key, value in response.headers.items():
                        if key.lower() not in HOP_BY_HOP:
                            self.send_header(key, value)
                    content = response.raw.read()
                    self.send_header("Content-Length", str(len(content)))
                    self.end_headers()
                    self.wfile.write(content)

            def _send(self, answer: Answer) -> None:
                self.send_response(answer.status)
                for key, value in answer.headers.items():
                    self.send_header(key, value)
                if isinstance(answer.body, bytes):
                    self.send_header("Content-Length", str(len(answer.body)))
                    self.end_headers()
                    self.wfile.write(answer.body)
                    return
                # A body of unknown length: sent as it comes, then the connection closes.
                self.send_header("Connection", "close")
                self.end_headers()
                self.close_connection = True
                try:
                    for piece in answer.body:
                        self.wfile.write(piece)
                        self.wfile.flush()
                except OSError:
                    pass  # the client hung up: what a hostile body wants

        return Handler
