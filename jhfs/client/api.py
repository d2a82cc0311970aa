"""The JuliaHub HTTP client: one requests.Session, timeouts, retries, error mapping.

Policy:
- Every request has a timeout (connect, read).
- Reads (GET of jobs, a job, logs, a file; the identity check, including the
  GraphQL query it POSTs to a server without /api/v1) are retried up to
  `retries` times on connection errors, timeouts and 429/502/503/504, with
  exponential backoff, honouring Retry-After (capped at RETRY_AFTER_CAP seconds).
  Each retry is a warning in the log. The identity check may be given a
  RetryPolicy of its own (the mount's check at the prompt: fewer, at debug).
- Actions (kill, a GET; extend, a POST) are retried only when the connection
  could not be made at all, so the server never saw them; never after a
  response or a broken connection, which may have taken effect.
- A 401 re-reads auth.toml once (TokenSource.reload) and, if the token
  changed, repeats the request once; otherwise AuthenticationError. The
  identity check also takes a 500 from /api/v1 as a refused token (JuliaHub
  answers some bad tokens so), and Hasura's `invalid-jwt` error from GraphQL.
- requests exceptions never escape: they become ServerUnreachableError
  (NotTLSError when an https:// server's port does not speak TLS), whose
  `failure` says the cause in words (jhfs.client.netfail).
- Pacing (jhfs.client.pacing): every request takes a token from the
  mount-wide rate limit, background ones waiting for theirs; inside a user
  operation's deadline the timeouts, retries and body reads all end by it
  (DeadlineExceeded).
- The token is only ever in the Authorization header of requests to the
  server's own host (requests drops it on redirects to another host); it is
  scrubbed from every message built from server text.
"""

from __future__ import annotations

import email.utils
import json
import logging
import math
import random
import re
import threading
import time
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar
from urllib.parse import quote, urlsplit

import requests
import requests.auth
import urllib3.exceptions
from requests.adapters import HTTPAdapter
from urllib3.exceptions import NewConnectionError

from jhfs import __version__
from jhfs.client.auth import TokenSource, discover, normalize_server
from jhfs.client.errors import (
    AuthenticationError,
    DeadlineExceeded,
    JuliaHubError,
    ListedButMissingError,
    NotFoundError,
    NotTLSError,
    PermissionDeniedError,
    ServerError,
    ServerUnreachableError,
    TransferCancelled,
)
from jhfs.client.models import (
    Job,
    JobFile,
    LogMessage,
    LogPage,
    parse_job_details,
    parse_jobs,
    parse_log_page,
    raise_for_failure,
)
from jhfs.client.netfail import describe, is_not_tls
from jhfs.client.pacing import RateLimiter, RecentCounts, background, in_background, remaining

logger = logging.getLogger(__name__)

LOG_PAGE_CAP = 10_000
DOWNLOAD_CHUNK = 1 << 20  # 1 MiB at most per socket read: near memory speed on loopback
BODY_CHUNK = 64 << 10  # a JSON body is read this much at a time, the deadline checked between
SNIPPET = 300  # characters of a server's answer quoted in an error message
REQUEST_WINDOW = 60  # seconds of requests counted for `jhfs status`
RETRY_STATUSES = frozenset({429, 502, 503, 504})
RETRY_AFTER_CAP = 10.0  # seconds; a filesystem call waits through the retries
BACKOFF_BASE = 0.25  # seconds; doubled per attempt
BACKOFF_CAP = 8.0
HASURA_HEADERS = {"X-Hasura-Role": "jhuser", "X-JuliaHub-Ensure-JS": "true"}
GRAPHQL_HEADERS = {"X-Hasura-Role": "jhuser"}  # the official client sends the role only
# Statuses that mean the server refused the token, and what they say.
TOKEN_REFUSED = {401: "invalid or expired"}
# JuliaHub sometimes answers the identity check of a bad token with a 500.
IDENTITY_TOKEN_REFUSED = {**TOKEN_REFUSED, 500: "JuliaHub's answer to some invalid tokens"}
# The official client's user query, word for word: one the service is known to allow.
USER_QUERY = """query UserInfo {
  users {
    name
    username
    firstname
    id
    info: emails {
      email
      features {
        app {
          featureid
          name: appspec(path: "name")
          appspec
        }
      }
    }
  }
}
"""

_T = TypeVar("_T")
_CONTENT_RANGE = re.compile(r"bytes (\d+)-(\d+)/(\d+|\*)")
_BLANKS_AND_CONTROLS = re.compile(r"[\s\x00-\x1f\x7f-\x9f]+")  # \s: also U+2028, U+2029


@dataclass(frozen=True)
class Identity:
    """Who the server says the token belongs to."""

    username: str | None  # None: the server did not say
    api_version: str | None  # None: a server without /api/v1, asked over GraphQL


@dataclass(frozen=True)
class RetryPolicy:
    """How often a failed read is tried again, and how loudly each retry is logged."""

    retries: int
    level: int = logging.WARNING


class DownloadSink(Protocol):
    """Where download_range puts the bytes it receives."""

    def begin(self, start: int, end: int) -> None:
        """The answer now starting brings bytes [start, end) (the whole file: 0, size)."""

    def write(self, offset: int, data: bytes) -> None:
        """Store `data` at `offset` of the file."""

    def cancelled(self) -> bool:
        """True once the download should stop (checked between reads)."""


class _Retry(Exception):
    """A transient failure of a retryable request (internal)."""

    def __init__(self, reason: str, delay: float | None = None) -> None:
        super().__init__(reason)
        self.delay = delay


class _BearerAuth(requests.auth.AuthBase):
    """The bearer header, given as `auth` so requests never swaps in ~/.netrc credentials.

    (A plain Authorization header is replaced by a matching ~/.netrc entry.)
    On a redirect to another host requests removes the header again.
    """

    def __init__(self, token: str) -> None:
        self._token = token

    def __repr__(self) -> str:
        return "_BearerAuth(<hidden>)"

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        request.headers["Authorization"] = f"Bearer {self._token}"
        return request


def _never_connected(exc: requests.RequestException) -> bool:
    """True when the request cannot have reached the server (the connection never opened)."""
    if isinstance(exc, requests.ConnectTimeout):
        return True
    if isinstance(exc, requests.ConnectionError):
        cause: BaseException | None = exc.args[0] if exc.args else None
        reason = getattr(cause, "reason", None)
        return isinstance(cause, NewConnectionError) or isinstance(reason, NewConnectionError)
    return False


def _one_line(text: str) -> str:
    """Server text on one line: a text answer may hold newlines or terminal
    controls, which never belong in a log line."""
    return _BLANKS_AND_CONTROLS.sub(" ", text).strip()


def _retry_after(response: requests.Response) -> float | None:
    value = response.headers.get("Retry-After")
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        seconds = when.timestamp() - time.time()
    if math.isnan(seconds):
        return None  # "nan" parses as a float, and would make every wait fail
    return min(max(seconds, 0.0), RETRY_AFTER_CAP)


class JuliaHubClient:
    """Thread-safe client for the jobs API (requests.Session is shared)."""

    def __init__(
        self,
        server: str,
        tokens: TokenSource,
        *,
        timeout: float = 30.0,
        connect_timeout: float = 10.0,
        retries: int = 3,
        limiter: RateLimiter | None = None,
    ) -> None:
        if retries < 0:
            raise ValueError("retries must be >= 0")
        self._server = normalize_server(server)
        self._host = urlsplit(self._server).hostname
        self._tokens = tokens
        self._timeout = (min(connect_timeout, timeout), timeout)
        self._retries = RetryPolicy(retries)
        self._session = requests.Session()
        # Many FUSE threads share the session: keep enough pooled connections.
        adapter = HTTPAdapter(pool_connections=4, pool_maxsize=32)
        self._session.mount("https://", adapter)
        self._session.mount("http://", adapter)
        self._session.headers["User-Agent"] = f"jhfs/{__version__}"
        self._reload_lock = threading.Lock()
        self.limiter = limiter or RateLimiter()
        self.requests_sent = RecentCounts(REQUEST_WINDOW)  # every request, by take_turn
        self._closing = threading.Event()  # wakes background requests waiting their turn

    @classmethod
    def from_environment(
        cls, server: str | None = None, token: str | None = None, **kwargs: Any
    ) -> JuliaHubClient:
        """A client for the server and token that auth.discover finds."""
        url, tokens = discover(server, token)
        return cls(url, tokens, **kwargs)

    def __repr__(self) -> str:
        return f"JuliaHubClient({self._server!r})"

    @property
    def server(self) -> str:
        return self._server

    @staticmethod
    def background() -> AbstractContextManager[None]:
        """Requests made inside are background work: they wait their turn on the rate limit."""
        return background()

    def close(self) -> None:
        self._closing.set()
        self._session.close()

    def bearer_headers(self) -> dict[str, str]:
        """Headers for a request this client does not send itself (the log stream's
        websocket). They hold the token: send them to `server`'s own host only, and
        never log them."""
        token = self._tokens.token()
        return {"Authorization": f"Bearer {token}", "User-Agent": f"jhfs/{__version__}"}

    # --- the calls ------------------------------------------------------------------

    def whoami(self, retries: RetryPolicy | None = None) -> Identity:
        """The identity check: GET /api/v1, or, on a server without it (404), the
        GraphQL user query. AuthenticationError on a refused token (401; a 500 from
        /api/v1). `retries`: instead of the client's own policy."""
        what = "the identity check"
        try:
            answer = self._call(
                "GET", "/api/v1", what=what, refusals=IDENTITY_TOKEN_REFUSED, retries=retries
            )
        except NotFoundError:
            logger.info("%s has no /api/v1 (an older JuliaHub): asking GraphQL", self._server)
            return self._whoami_graphql(retries)
        body = self._json(answer, what)
        if not isinstance(body, dict):
            raise ServerError(f"malformed answer from the server to {what}: not a JSON object")
        # Neither field matters to jhfs beyond the log: a strange one is left out.
        username, version = body.get("username"), body.get("api_version")
        return Identity(
            username if isinstance(username, str) else None,
            version if isinstance(version, str) else None,
        )

    def _whoami_graphql(self, retries: RetryPolicy | None) -> Identity:
        """POST /v1/graphql with the user query: exactly one user, with a username."""
        what = "the identity check (GraphQL)"
        answer = self._call(
            "POST",
            "/v1/graphql",
            headers=GRAPHQL_HEADERS,
            json_body={"variables": {}, "operationName": None, "query": USER_QUERY},
            what=what,
            retries=retries,
        )
        body = self._json(answer, what)
        data = body.get("data") if isinstance(body, dict) else None
        if not isinstance(data, dict):
            raise self._graphql_error(body, what)
        users = data.get("users")
        if not isinstance(users, list) or len(users) != 1:
            count = len(users) if isinstance(users, list) else "no list of"
            raise ServerError(f"malformed answer from the server to {what}: {count} users")
        username = users[0].get("username") if isinstance(users[0], dict) else None
        if not isinstance(username, str):
            raise ServerError(f"malformed answer from the server to {what}: no username")
        return Identity(username, None)

    def _graphql_error(self, body: Any, what: str) -> JuliaHubError:
        """What a GraphQL answer without data says: Hasura's errors, in one line."""
        errors = body.get("errors") if isinstance(body, dict) else None
        if not isinstance(errors, list) or not errors:
            return ServerError(f"malformed answer from the server to {what}: no data")
        messages, codes = [], set()
        for error in errors:
            if isinstance(error, dict):
                messages.append(str(error.get("message")))
                extensions = error.get("extensions")
                if isinstance(extensions, dict):
                    codes.add(extensions.get("code"))
        text = self._one_line_of("; ".join(messages))
        if "invalid-jwt" in codes:
            # Hasura answers an expired or forged token so, with HTTP 200.
            return AuthenticationError(
                f"{what}: the server refused the token (invalid-jwt: {text}){self._token_hint()}"
            )
        return ServerError(f"{what}: the server answered with errors: {text}")

    def jobs(self, limit: int | None = None) -> list[Job]:
        """The latest jobs, newest first."""
        params: dict[str, Any] = {}
        if limit is not None:
            if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
                raise ValueError(f"limit must be a positive integer, not {limit!r}")
            params["limit"] = limit
        answer = self._call(
            "GET", "/juliaruncloud/get_jobs", params=params, what="job list", listed=True
        )
        return parse_jobs(self._json(answer, "the job list"))

    def job(self, jobname: str) -> Job | None:
        """One job, or None when the server says it does not exist."""
        path = f"/api/rest/jobs/{quote(jobname, safe='')}"
        answer = self._call("GET", path, headers=HASURA_HEADERS, what=f"job {jobname}")
        return parse_job_details(self._json(answer, f"job {jobname}"), jobname)

    def kill_job(self, jobname: str) -> None:
        """Stop a job (PermissionDeniedError for unknown jobs, as the server says 403)."""
        what = f"stopping job {jobname}"
        answer = self._call(
            "GET", "/juliaruncloud/kill_job", params={"jobname": jobname}, what=what, action=True
        )
        body = self._json(answer, what)
        if not isinstance(body, dict) or body.get("status") is not True:
            raise ServerError(f"{what} failed: {self._snippet(answer)}")
        logger.info("stopped job %s", jobname)

    def extend_job(self, jobname: str, hours: int) -> None:
        """Extend the time limit by whole hours >= 1 (ValueError otherwise). Never retried.

        Fractions are refused rather than rounded up (as the official client
        does): the caller decides whether 1.5 hours should cost two.
        """
        if isinstance(hours, bool) or not isinstance(hours, int):
            raise ValueError(f"extend by whole hours: {hours!r} is not an integer")
        if hours < 1:
            raise ValueError(f"extend by at least one hour, not {hours}")
        what = f"extending job {jobname} by {hours} h"
        answer = self._call(
            "POST",
            "/juliaruncloud/extend_job_time_limit",
            json_body={"jobname": jobname, "extendby": hours},
            what=what,
            action=True,
        )
        body = self._json(answer, what)
        if not isinstance(body, dict) or body.get("success") is not True:
            raise ServerError(f"{what} failed: {self._snippet(answer)}")
        logger.info("extended job %s by %d h", jobname, hours)

    def log_page(
        self,
        jobname: str,
        *,
        after: LogMessage | None = None,
        before: LogMessage | None = None,
        nentries: int | None = None,
    ) -> LogPage:
        """One page of logs: the newest, or those after / up to and before a reference."""
        if after is not None and before is not None:
            raise ValueError("give at most one of after and before")
        params: dict[str, Any] = {
            "log_output_type": "content",
            "log_out_type": "json",
            "jobname": jobname,
        }
        if nentries is not None:
            if isinstance(nentries, bool) or not 1 <= nentries <= LOG_PAGE_CAP:
                raise ValueError(f"nentries must be within 1..{LOG_PAGE_CAP}, not {nentries!r}")
            params["nentries"] = nentries
        reference = after or before
        if reference is not None:
            if reference.event_id is None or reference.timestamp_ms is None:
                raise ServerError(
                    f"cannot page the log of job {jobname}: the server sent a message "
                    "without eventId or timestamp"
                )
            params["event_id"] = reference.event_id
            params["start_time" if after is not None else "end_time"] = reference.timestamp_ms
        answer = self._call(
            "GET",
            "/juliaruncloud/get_logs",
            params=params,
            what=f"logs of job {jobname}",
            listed=True,
        )
        try:
            return parse_log_page(answer)
        except JuliaHubError as exc:
            raise type(exc)(self._redact(str(exc))) from None

    def download_range(self, file: JobFile, start: int, end: int, sink: DownloadSink) -> None:
        """Stream bytes [start, end) of a job file into `sink`; does not check the hash.

        Sends a Range request. A server that ignores it answers 200 with the
        whole file: then `sink.begin(0, file.size)` and the whole file follows,
        so the caller learns that ranges are not served. Bytes arrive as the
        socket delivers them (at most DOWNLOAD_CHUNK at a time), so a reader
        of a slow link sees progress at once. Retries on connection trouble,
        resuming where the bytes stopped (from 0 again if the server answers
        200 once more); raises TransferCancelled as soon as `sink.cancelled()`.
        """
        path = f"/jobs/{quote(file.jobname, safe='')}/files/{quote(file.name, safe='')}"
        what = f"file {file.type}/{file.name} of job {file.jobname}"
        position = start  # the next byte wanted
        if start >= end:
            return  # nothing to ask for (an empty file); a Range "bytes=0--1" is invalid

        def attempt() -> None:
            nonlocal position, end
            if sink.cancelled():
                raise TransferCancelled(what)
            # identity: Content-Length and Content-Range must count the bytes we write.
            headers = {"Accept-Encoding": "identity", "Range": f"bytes={position}-{end - 1}"}
            response = self._send(
                "GET", path, params={"filetype": file.type}, headers=headers, stream=True
            )
            with response:
                self._raise_for_status(response, what, retryable=True, listed=True)
                if response.status_code == 206:
                    match = _CONTENT_RANGE.fullmatch(self._content_range(response))
                    if match is None or int(match.group(1)) != position:
                        raise _Retry(
                            f"{what}: unexpected partial answer {self._content_range(response)}"
                        )
                else:  # 200: the whole file, from its first byte
                    if position:
                        logger.info("%s: Range %d- ignored; from 0 again", what, position)
                    position, end = 0, file.size
                sink.begin(position, end)
                try:
                    while position < end:
                        if sink.cancelled():
                            raise TransferCancelled(what)
                        data = response.raw.read1(min(DOWNLOAD_CHUNK, end - position))
                        if not data:
                            raise _Retry(f"{what}: the body ended at byte {position} of {end}")
                        sink.write(position, data)
                        position += len(data)
                except (requests.RequestException, urllib3.exceptions.HTTPError, OSError) as exc:
                    raise _Retry(f"{what}: connection lost at byte {position}: {exc}") from None

        self._with_retries(attempt, what, retryable=True)

    # --- machinery ---------------------------------------------------------------------

    @staticmethod
    def _content_range(response: requests.Response) -> str:
        return response.headers.get("Content-Range", "").strip()

    def _call(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
        json_body: Any = None,
        what: str,
        action: bool = False,
        listed: bool = False,
        refusals: Mapping[int, str] = TOKEN_REFUSED,
        retries: RetryPolicy | None = None,
    ) -> bytes:
        """A whole request's body, with retries (the client's policy unless
        `retries`) and status mapping (`listed`, `refusals`: see _raise_for_status)."""

        def attempt() -> bytes:
            response = self._send(
                method, path, params=params, headers=headers, json_body=json_body, stream=True
            )
            with response:
                self._raise_for_status(
                    response, what, retryable=not action, listed=listed, refusals=refusals
                )
                return self._read_body(response)

        return self._with_retries(attempt, what, retryable=not action, policy=retries)

    def _read_body(self, response: requests.Response) -> bytes:
        """The body, read piecewise so that a body dripping in ends at the deadline.

        (A socket timeout bounds each read, not the whole body.) A connection
        lost on the way raises requests.ConnectionError, as an unstreamed
        request would.
        """
        parts: list[bytes] = []
        try:
            while True:
                remaining()
                data = response.raw.read1(BODY_CHUNK, decode_content=True)
                if not data:
                    return b"".join(parts)
                parts.append(data)
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            raise requests.ConnectionError(f"the body was cut short: {exc}") from None

    def _with_retries(
        self,
        attempt: Callable[[], _T],
        what: str,
        *,
        retryable: bool,
        policy: RetryPolicy | None = None,
    ) -> _T:
        """Run `attempt`, retrying transient failures: all of them for reads, unsent ones always.

        `attempt` raises _Retry only where retrying is safe.
        """
        policy = policy or self._retries
        tries = 0
        while True:
            unreachable: type[ServerUnreachableError] = ServerUnreachableError
            try:
                remaining()  # no attempt once the operation's deadline has passed
                return attempt()
            except _Retry as exc:
                reason, delay = str(exc), exc.delay
                failure = reason.removeprefix(f"{what}: ")
            except requests.RequestException as exc:
                failure = self._redact(describe(exc, self._host))
                reason, delay = f"{what}: {failure}", None
                unreachable = NotTLSError if is_not_tls(exc) else ServerUnreachableError
                if not (retryable or _never_connected(exc)):
                    raise unreachable(
                        self._redact(f"{reason} (not retried: it may have taken effect)"), failure
                    ) from None
            if tries >= policy.retries:
                raise unreachable(
                    self._redact(f"{reason} (gave up after {tries + 1} attempts)"),
                    self._redact(failure),
                )
            if delay is None:
                delay = min(BACKOFF_CAP, BACKOFF_BASE * 2**tries) * random.uniform(0.8, 1.2)
            left = remaining()
            if left is not None and delay >= left:
                raise DeadlineExceeded(self._redact(f"{reason} (no time left to retry)"))
            if self._closing.is_set():
                raise ServerUnreachableError(self._redact(f"{reason} (the mount is ending)"))
            tries += 1
            logger.log(
                policy.level,
                "%s; retry %d of %d in %.2f s",
                self._redact(reason),
                tries,
                policy.retries,
                delay,
            )
            if self._closing.wait(delay):
                raise ServerUnreachableError(self._redact(f"{reason} (the mount is ending)"))

    def _send(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
        json_body: Any = None,
        stream: bool = False,
    ) -> requests.Response:
        """One request with the current token; on a 401, once more if auth.toml has a new one."""
        url = self._server + path
        for reloaded in (False, True):
            self._wait_turn()
            token = self._tokens.token()
            logger.debug("%s %s %s", method, path, params or "")
            response = self._session.request(
                method,
                url,
                params=params,
                headers=headers,
                auth=_BearerAuth(token),
                json=json_body,
                timeout=self._timeouts(),
                stream=stream,
                allow_redirects=True,
            )
            if response.status_code != 401 or reloaded:
                return response
            with self._reload_lock:
                changed = self._tokens.token() != token or self._tokens.reload()
            if not changed:
                return response
            response.close()
            logger.info("the server refused the token; retrying with the re-read one")
        raise AssertionError("unreachable")

    def take_turn(self, *, background: bool) -> float:
        """Count one request to the server and take its token from the rate limit; the
        seconds to wait before sending it. Every request goes through here (the log
        stream's websocket too), so `requests_sent` counts them all, retries included."""
        self.requests_sent.add()
        return self.limiter.reserve(background=background)

    def _wait_turn(self) -> None:
        """Take a token from the rate limit; in the background, wait for it."""
        wait = self.take_turn(background=in_background())
        if wait > 0 and self._closing.wait(wait):
            raise ServerUnreachableError("the mount is ending")

    def _timeouts(self) -> tuple[float, float]:
        """(connect, read) socket timeouts, within the operation's deadline."""
        left = remaining()
        if left is None:
            return self._timeout
        connect, read = self._timeout
        return min(connect, left), min(read, left)

    def _raise_for_status(
        self,
        response: requests.Response,
        what: str,
        *,
        retryable: bool,
        listed: bool = False,
        refusals: Mapping[int, str] = TOKEN_REFUSED,
    ) -> None:
        """Raise for an answer other than 200/206. `listed`: the request is about
        something the server has listed (the job list itself, a listed job's log or
        file), so a 404 is the server's error (EIO), not a name that does not
        exist (ENOENT). `refusals`: the statuses that mean a refused token."""
        status = response.status_code
        if status in (200, 206):
            return
        body = self._read_body(response)
        if status in RETRY_STATUSES and retryable:
            raise _Retry(f"{what}: the server answered {status}", _retry_after(response))
        if status in refusals:
            raise AuthenticationError(
                f"{what}: the server refused the token ({status}: {refusals[status]})"
                + self._token_hint()
            )
        if status == 403:
            raise PermissionDeniedError(
                f"{what}: not permitted (403; the server also says this for a job that "
                "does not exist)"
            )
        if status == 404:
            if listed:
                raise ListedButMissingError(f"{what}: the server answered 404 for what it listed")
            raise NotFoundError(f"{what}: not found (404)")
        raise ServerError(f"{what}: the server answered {status}: {self._snippet(body)}")

    def _token_hint(self) -> str:
        """How to get a token the server accepts, where this one came from."""
        if self._tokens.auth_toml is None:
            return "; check JULIAHUB_TOKEN"
        return f'; run `using JuliaHub; JuliaHub.authenticate("{self._host}")` in Julia'

    def _json(self, answer: bytes, what: str) -> Any:
        try:
            body = json.loads(answer)
        except (ValueError, RecursionError):  # RecursionError: nested too deep
            raise ServerError(f"{what}: the answer is not JSON: {self._snippet(answer)}") from None
        try:
            raise_for_failure(body, what)
        except JuliaHubError as exc:
            raise type(exc)(self._redact(str(exc))) from None
        return body

    def _snippet(self, body: bytes) -> str:
        """The start of a server's answer, for an error message of one line."""
        return self._one_line_of(body.decode("utf-8", "replace")) or "<empty body>"

    def _one_line_of(self, text: str) -> str:
        """At most SNIPPET characters of server text, on one line, without the token.

        Scrubbed before it is cut short, so that no piece of the token is left.
        """
        return self._redact(_one_line(text))[:SNIPPET]

    def _redact(self, text: str) -> str:
        """Scrub the token from text built from server answers or library messages."""
        try:
            token = self._tokens.token()
        except AuthenticationError:
            return text
        # Whatever its length: a short token is as secret as a long one.
        return text.replace(token, "<token>") if token else text
