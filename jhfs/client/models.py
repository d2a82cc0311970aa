"""Typed models of the JuliaHub job objects, and their parsing with every quirk.

The parse_* functions turn decoded JSON into frozen dataclasses and raise
ServerError, with a message naming the field, for anything malformed. The
quirks of the real service are accepted: `inputs` null
or backslash-escaped JSON text, `size` null, hash members null, hash values as
base64 or hex, timestamps as ISO text, integer milliseconds or missing,
unknown status values, `proxy_link` that is not a bare https host, and a log
response that is a JSON string holding the JSON array.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import json
import logging
import re
import string
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from jhfs.client.errors import NotFoundError, ServerError
from jhfs.client.once import warn_once

logger = logging.getLogger(__name__)

# A file's size must fit a file's st_size (a signed 64-bit off_t): a larger one
# would show as another size (2**64 as 0, and cp would copy nothing).
MAX_FILE_SIZE = 2**63 - 1

KNOWN_STATUSES = frozenset({"Submitted", "Running", "Failed", "Stopped", "Completed"})
DONE_STATUSES = frozenset({"Failed", "Stopped", "Completed"})
_KNOWN_STATUSES_FOLDED = {status.lower(): status for status in KNOWN_STATUSES}

_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_HEX_DIGITS = frozenset(string.hexdigits)


@dataclass(frozen=True)
class FileHash:
    algorithm: str | None  # "sha2_256" once uploaded
    digest: bytes | None  # raw digest bytes (decoded from base64 or hex)

    @property
    def hex(self) -> str | None:
        return None if self.digest is None else self.digest.hex()


@dataclass(frozen=True)
class JobFile:
    jobname: str
    type: str  # input, source, project, result, or any other
    name: str
    size: int  # null on the wire -> 0
    hash: FileHash
    upload_timestamp: dt.datetime | None

    @property
    def is_uploaded(self) -> bool:
        """True once both hash members are known (the upload finished)."""
        return self.hash.algorithm is not None and self.hash.digest is not None


@dataclass(frozen=True)
class Job:
    jobname: str
    id: int | None
    alias: str | None
    status: str  # one of KNOWN_STATUSES, or an unknown value passed through
    inputs: dict[str, Any]  # parsed `inputs` (null -> {})
    outputs: str
    files: tuple[JobFile, ...]
    submitted: dt.datetime | None
    started: dt.datetime | None
    ended: dt.datetime | None
    hostname: str | None  # host of a valid https proxy_link, else None
    raw: dict[str, Any] = field(compare=False, repr=False)  # the object as the server sent it

    @property
    def is_done(self) -> bool:
        return self.status in DONE_STATUSES

    @property
    def is_final(self) -> bool:
        """Nothing about it will change: done, and every file uploaded (has its hash)."""
        return self.is_done and all(file.is_uploaded for file in self.files)


@dataclass(frozen=True, slots=True)
class LogMessage:
    # slots: a finished job's log can be a million of these in memory at once.
    message: str
    timestamp: dt.datetime | None
    event_id: str | None
    keywords: dict[str, Any]
    metadata: dict[str, Any]

    @property
    def timestamp_ms(self) -> int | None:
        """The timestamp in unix milliseconds, as the log endpoint's paging wants it."""
        if self.timestamp is None:
            return None
        return (self.timestamp - _EPOCH) // dt.timedelta(milliseconds=1)


@dataclass(frozen=True)
class LogPage:
    """One answer of get_logs: messages oldest first, and which ends it reached."""

    messages: list[LogMessage]
    has_top: bool  # the `top` marker was present: nothing older exists
    has_bottom: bool  # the `bottom` marker was present: the job is done and nothing newer exists


# --- small typed accessors -------------------------------------------------------------


def _describe(value: Any) -> str:
    return "null" if value is None else type(value).__name__


def _require_dict(value: Any, what: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ServerError(
            f"malformed answer from the server: {what} is {_describe(value)}, not an object"
        )
    return value


def _required_str(obj: dict[str, Any], key: str, what: str) -> str:
    value = obj.get(key)
    if not isinstance(value, str):
        raise ServerError(
            f"malformed answer from the server: {what}.{key} is {_describe(value)}, not a string"
        )
    return value


def _optional_str(obj: dict[str, Any], key: str, what: str) -> str | None:
    value = obj.get(key)
    if value is not None and not isinstance(value, str):
        raise ServerError(
            f"malformed answer from the server: {what}.{key} is {_describe(value)}, not a string"
        )
    return value


def _optional_dict(obj: dict[str, Any], key: str, what: str) -> dict[str, Any]:
    value = obj.get(key)
    if value is None:
        return {}
    return _require_dict(value, f"{what}.{key}")


# --- timestamps ------------------------------------------------------------------------


def format_timestamp(timestamp: dt.datetime | None) -> str | None:
    """ISO 8601 in UTC with milliseconds and a `Z`, as JuliaHub writes its times:
    one form whatever the server sent (offsets, or integer milliseconds)."""
    if timestamp is None:
        return None
    utc = timestamp.astimezone(dt.UTC)  # parse_timestamp gives UTC already
    return utc.replace(tzinfo=None).isoformat(timespec="milliseconds") + "Z"


def parse_timestamp(value: Any, what: str = "timestamp") -> dt.datetime | None:
    """An ISO 8601 string (offset, `Z`, or none meaning UTC), integer unix ms, or null.

    Returns an aware datetime in UTC.
    """
    if isinstance(value, str):  # the common case first: a log has a million of these
        try:
            parsed = dt.datetime.fromisoformat(value)
        except ValueError:
            raise ServerError(
                f"malformed answer from the server: {what} {value!r} is not an ISO 8601 time"
            ) from None
        if parsed.tzinfo is None:
            return parsed.replace(tzinfo=dt.UTC)
        try:
            return parsed if parsed.tzinfo is dt.UTC else parsed.astimezone(dt.UTC)
        except OverflowError:  # 0001-01-01T00:00:00+01:00 is before year 1 in UTC
            raise ServerError(
                f"malformed answer from the server: {what} {value!r} is out of range"
            ) from None
    if value is None:
        return None
    if isinstance(value, int) and not isinstance(value, bool):
        try:
            return _EPOCH + dt.timedelta(milliseconds=value)
        except OverflowError:
            raise ServerError(
                f"malformed answer from the server: {what} {value} is out of range"
            ) from None
    raise ServerError(f"malformed answer from the server: {what} is {_describe(value)}, not a time")


# --- jobs and files ----------------------------------------------------------------------


def _decode_digest(value: str, what: str) -> bytes:
    # A sha2_256 digest is 32 bytes: 44 characters of base64, or 64 hex digits. 64
    # characters that are all hex digits cannot be that base64, so they are hex.
    if len(value) == 64 and all(c in _HEX_DIGITS for c in value):
        return bytes.fromhex(value)
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise ServerError(
            f"malformed answer from the server: {what} {value!r} is neither base64 nor hex"
        ) from None


def parse_file_hash(obj: Any, what: str = "hash") -> FileHash:
    """`{"algorithm", "value"}`, either member null while the upload is unfinished."""
    if obj is None:
        return FileHash(None, None)
    obj = _require_dict(obj, what)
    algorithm = _optional_str(obj, "algorithm", what)
    value = _optional_str(obj, "value", what)
    digest = None if value is None else _decode_digest(value, f"{what}.value")
    if algorithm == "sha2_256" and digest is not None and len(digest) != 32:
        raise ServerError(
            f"malformed answer from the server: {what} is a sha2_256 hash of {len(digest)} bytes"
        )
    return FileHash(algorithm, digest)


def parse_job_file(jobname: str, obj: Any) -> JobFile:
    what = f"job {jobname} file"
    obj = _require_dict(obj, what)
    name = _required_str(obj, "name", what)
    what = f"job {jobname} file {name!r}"
    file_type = _required_str(obj, "type", what)
    size = obj.get("size")
    if size is None:
        size = 0  # not uploaded yet
    elif isinstance(size, bool) or not isinstance(size, int) or not 0 <= size <= MAX_FILE_SIZE:
        raise ServerError(f"malformed answer from the server: {what} has size {size!r}")
    try:
        uploaded = parse_timestamp(obj.get("upload_timestamp"), f"{what} upload_timestamp")
    except ServerError as exc:
        # Informational only (the official client keeps it as unparsed text).
        logger.debug("ignoring %s", exc)
        uploaded = None
    return JobFile(
        jobname=jobname,
        type=file_type,
        name=name,
        size=size,
        hash=parse_file_hash(obj.get("hash"), f"{what} hash"),
        upload_timestamp=uploaded,
    )


_ESCAPE = re.compile(r"\\(u[0-9a-fA-F]{4}|x[0-9a-fA-F]{2}|.)", re.DOTALL)
_SIMPLE_ESCAPES = {
    "n": "\n",
    "t": "\t",
    "r": "\r",
    "b": "\b",
    "f": "\f",
    "v": "\v",
    "a": "\a",
    "e": "\x1b",
    "0": "\0",
}


def _unescape(text: str) -> str:
    """Undo backslash escapes (as Julia's unescape_string does for the common ones)."""

    def replace(match: re.Match[str]) -> str:
        escape = match.group(1)
        if escape[0] in "ux" and len(escape) > 1:
            return chr(int(escape[1:], 16))
        return _SIMPLE_ESCAPES.get(escape, escape)

    return _ESCAPE.sub(replace, text)


def parse_inputs(text: Any, what: str = "inputs") -> dict[str, Any]:
    """The job's environment: null, JSON object text, or that text backslash-escaped.

    Plain JSON is tried first (undoing escapes in valid JSON would corrupt the
    escapes inside its strings), then the unescaped text; JSON text that
    decodes to a string holding JSON (doubly encoded) is decoded once more.
    """
    if text is None:
        return {}
    if not isinstance(text, str):
        raise ServerError(
            f"malformed answer from the server: {what} is {_describe(text)}, not text"
        )
    if not text.strip():
        return {}
    for candidate in (text, _unescape(text)):
        try:
            value = json.loads(candidate)
            if isinstance(value, str):
                value = json.loads(value)
        except (ValueError, RecursionError):  # RecursionError: nested too deep
            continue
        if isinstance(value, dict):
            return value
        if value is None:
            return {}
    raise ServerError(
        f"malformed answer from the server: {what} is not a JSON object: {text[:200]!r}"
    )


def parse_status(value: Any, what: str = "status") -> str:
    """A known status, or an unknown one passed through; a mis-cased known one is an error."""
    if not isinstance(value, str):
        raise ServerError(f"malformed answer from the server: {what} is {_describe(value)}")
    if value in KNOWN_STATUSES:
        return value
    known = _KNOWN_STATUSES_FOLDED.get(value.strip().lower())
    if known is not None:
        raise ServerError(
            f"malformed answer from the server: {what} {value!r} (expected {known!r})"
        )
    logger.debug("unknown job status %r passed through", value)
    return value


# A DNS host name: labels of letters, digits and inner hyphens, 253 characters
# at most (not spaces, NUL or 5,000 characters from a broken server).
_HOST_NAME = re.compile(
    r"(?=.{1,253}\Z)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
    r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*"
)


def parse_proxy_hostname(value: Any) -> str | None:
    """The host of `https://host/` or `https://host`; anything else is ignored (None)."""
    if not isinstance(value, str) or not value:
        return None
    try:
        parts = urlsplit(value)
        hostname = parts.hostname
    except ValueError:
        return None
    if (
        parts.scheme != "https"
        or not hostname
        or parts.path not in ("", "/")
        or parts.query
        or parts.fragment
        or parts.username is not None
        or parts.password is not None
        or not _HOST_NAME.fullmatch(hostname)
    ):
        logger.debug("ignoring proxy_link %r: not a bare https host", value)
        return None
    return hostname


def parse_job(obj: Any) -> Job:
    """One job object, as in get_jobs and the /api/rest/jobs details."""
    raw = _require_dict(obj, "job")
    jobname = _required_str(raw, "jobname", "job")
    if not jobname:
        raise ServerError("malformed answer from the server: a job has an empty jobname")
    what = f"job {jobname}"
    job_id = raw.get("id")
    if isinstance(job_id, bool) or not isinstance(job_id, int):
        job_id = None  # informational only; never the job's identity
    files = raw.get("files")
    if files is None:
        files = []
    elif not isinstance(files, list):
        raise ServerError(f"malformed answer from the server: {what} files is {_describe(files)}")
    return Job(
        jobname=jobname,
        id=job_id,
        alias=_optional_str(raw, "jobname_alias", what),
        status=parse_status(raw.get("status"), f"{what} status"),
        inputs=parse_inputs(raw.get("inputs"), f"{what} inputs"),
        outputs=_optional_str(raw, "outputs", what) or "",
        files=tuple(parse_job_file(jobname, entry) for entry in files),
        submitted=parse_timestamp(raw.get("submittimestamp"), f"{what} submittimestamp"),
        started=parse_timestamp(raw.get("starttimestamp"), f"{what} starttimestamp"),
        ended=parse_timestamp(raw.get("endtimestamp"), f"{what} endtimestamp"),
        hostname=parse_proxy_hostname(raw.get("proxy_link")),
        raw=raw,
    )


def parse_jobs(obj: Any) -> list[Job]:
    """The get_jobs answer: a JSON array of job objects.

    A malformed entry is left out with a warning instead of failing the whole
    list: one bad job must not hide all the others (looking that job up by
    name still fails with its ServerError).
    """
    if not isinstance(obj, list):
        raise ServerError(f"malformed answer from the server: the job list is {_describe(obj)}")
    jobs = []
    for entry in obj:
        try:
            jobs.append(parse_job(entry))
        except ServerError as exc:
            warn_once(logger, f"left out of the job list: {exc}")
    return jobs


def parse_job_details(obj: Any, jobname: str) -> Job | None:
    """The /api/rest/jobs answer: `{"details": [job]}`, or `[]` for an unknown job."""
    details = _require_dict(obj, f"the answer for job {jobname}").get("details")
    if not isinstance(details, list):
        raise ServerError(
            f"malformed answer from the server: details of job {jobname} is {_describe(details)}"
        )
    if not details:
        return None
    if len(details) > 1:
        raise ServerError(
            f"malformed answer from the server: {len(details)} jobs returned for {jobname}"
        )
    job = parse_job(details[0])
    if job.jobname != jobname:
        raise ServerError(
            f"malformed answer from the server: asked for job {jobname}, got {job.jobname}"
        )
    return job


def raise_for_failure(body: Any, what: str) -> None:
    """The 200 `success: false` quirk: NotFoundError for `Invalid jobname`, else ServerError."""
    if not isinstance(body, dict) or body.get("success") is not False:
        return
    reason = body.get("reason", body.get("message"))
    text = str(reason) if reason else "unknown error"
    if text.startswith("Invalid jobname"):
        raise NotFoundError(f"{what}: the server says {text!r}")
    raise ServerError(f"{what} failed on the server: {text}")


# --- logs ---------------------------------------------------------------------------------


def parse_log_message(obj: Any) -> LogMessage:
    """One log message object (not a `_meta` marker)."""
    # Written for speed (a finished job's log can be a million of these): the
    # common shapes are tested first, anything else goes through the slow checks.
    if not isinstance(obj, dict):
        _require_dict(obj, "log message")
    message = obj.get("message")
    if not isinstance(message, str):
        if message is not None:
            raise ServerError(
                f"malformed answer from the server: log message is {_describe(message)}"
            )
        message = ""  # some server versions omit it
    event_id = obj.get("eventId")
    if event_id is not None and not isinstance(event_id, str):
        if not isinstance(event_id, int) or isinstance(event_id, bool):
            raise ServerError(
                f"malformed answer from the server: log eventId is {_describe(event_id)}"
            )
        event_id = str(event_id)
    keywords = obj.get("keywords")
    if not isinstance(keywords, dict):
        keywords = _optional_dict(obj, "keywords", "log message")
    metadata = obj.get("metadata")
    if not isinstance(metadata, dict):
        metadata = _optional_dict(obj, "metadata", "log message")
    return LogMessage(
        message,
        parse_timestamp(obj.get("timestamp"), "log timestamp"),
        event_id,
        keywords,
        metadata,
    )


def _meta_end(obj: dict[str, Any]) -> str | None:
    """The end a `_meta` marker names, None for an ordinary message; bad markers raise."""
    if "_meta" not in obj:
        return None
    if obj["_meta"] is not True:
        raise ServerError(f"malformed log marker: _meta is {obj['_meta']!r}, not true")
    end = obj.get("end")
    if end not in ("top", "bottom"):
        raise ServerError(f"malformed log marker: end is {end!r}, not 'top' or 'bottom'")
    return str(end)


def parse_log_page(body: str | bytes) -> LogPage:
    """The get_logs body: a JSON string holding the JSON array (or an error object)."""
    try:
        decoded = json.loads(body)
        # The quirk: the array arrives as a JSON string; tolerate a bare array too.
        if isinstance(decoded, str):
            decoded = json.loads(decoded)
    except (ValueError, RecursionError) as exc:  # RecursionError: nested too deep
        raise ServerError(f"malformed log answer from the server: {exc}") from None
    if isinstance(decoded, dict):
        raise_for_failure(decoded, "reading the log")
        raise ServerError("malformed log answer from the server: an object, not an array")
    if not isinstance(decoded, list):
        raise ServerError(f"malformed log answer from the server: {_describe(decoded)}")
    messages: list[LogMessage] = []
    has_top = has_bottom = False
    last = len(decoded) - 1
    for position, entry in enumerate(decoded):
        entry = _require_dict(entry, "log message")
        end = _meta_end(entry)
        if end is None:
            try:
                messages.append(parse_log_message(entry))
            except ServerError as exc:
                # As JuliaHub.jl does: one bad message is dropped, not the page.
                warn_once(logger, f"left out of the log: {exc}")
            continue
        if (end == "top" and position != 0) or (end == "bottom" and position != last):
            logger.warning("log marker %r at unexpected position %d of %d", end, position, last + 1)
        if end == "top":
            has_top = True
        else:
            has_bottom = True
    return LogPage(messages, has_top, has_bottom)
