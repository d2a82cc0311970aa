"""The paging rules of `GET /juliaruncloud/get_logs`.

A log is the sequence: top marker (position 0), lines 1..N (position = line
number = eventId), bottom marker (position N+1, once the job is done). A page
is a run of at most `nentries` (<= 10,000) positions: the newest ones without
`event_id`; those after the reference with `start_time`; those before it
with `end_time` (both: a 400). The time must be the reference message's
timestamp in unix milliseconds. Markers count toward the cap, as on the real
service.
"""

from __future__ import annotations

from collections.abc import Mapping

from jhfs_emulator.logs import BOTTOM_MARKER, TOP_MARKER, JobLog

CAP = 10_000


class LogQueryError(ValueError):
    """A query the service answers with `{"success": false, "reason": ...}`."""


class LogQueryRefused(ValueError):
    """A query the service answers with a 400 and this plain text."""


def _whole(query: Mapping[str, str], name: str) -> int | None:
    text = query.get(name)
    if text is None:
        return None
    try:
        return int(text)
    except ValueError:
        raise LogQueryError(f"{name} must be an integer, got {text!r}") from None


def page_positions(log: JobLog, query: Mapping[str, str]) -> range:
    """The positions (0 = top marker, N+1 = bottom marker) a query selects."""
    nentries = _whole(query, "nentries")
    if nentries is not None and nentries < 1:
        raise LogQueryError("nentries must be at least 1")
    cap = CAP if nentries is None else min(nentries, CAP)
    if "start_time" in query and "end_time" in query:
        raise LogQueryRefused("both start_time and end_time provided")
    start_time, end_time = _whole(query, "start_time"), _whole(query, "end_time")
    count = len(log)
    end = count + 2 if log.finished else count + 1  # one past the last position
    event_text = query.get("event_id")
    if event_text is None:
        if start_time is not None or end_time is not None:
            raise LogQueryError("start_time and end_time need an event_id")
        return range(max(0, end - cap), end)
    reference = _whole(query, "event_id")
    assert reference is not None
    if not 1 <= reference <= count:
        raise LogQueryError(f"Invalid event_id {event_text!r}")
    if start_time is None and end_time is None:
        raise LogQueryError("event_id needs start_time or end_time")
    time = start_time if start_time is not None else end_time
    if time != log.timestamp_ms(reference):
        raise LogQueryError(
            f"the time {time} is not the timestamp of event {reference}"
            f" ({log.timestamp_ms(reference)} ms)"
        )
    if start_time is not None:
        return range(reference + 1, min(end, reference + 1 + cap))
    return range(max(0, reference - cap), reference)


def render_page(log: JobLog, positions: range) -> str:
    """The JSON array text of the messages at `positions`."""
    count = len(log)
    parts = []
    for position in positions:
        if position == 0:
            parts.append(TOP_MARKER)
        elif position > count:
            parts.append(BOTTOM_MARKER)
        else:
            parts.append(log.message_json(position))
    return "[" + ", ".join(parts) + "]"
