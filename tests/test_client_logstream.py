"""The live log stream against the emulator: frames, keep-alives, the bottom, refusals, drops."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TypeVar

import aiohttp
import pytest
from conftest import Emulator, wait_for

from jhfs.client import JuliaHubClient, LogMessage, ServerError, TokenSource
from jhfs.client.logstream import (
    LogStream,
    StreamBatch,
    StreamLost,
    StreamRefused,
    open_log_stream,
    parse_frame,
    stream_url,
)

T = TypeVar("T")
WAITING = "echo first; while [ ! -e go ]; do sleep 0.05; done; echo second; echo third"


def make_client(em: Emulator, token: str | None = None) -> JuliaHubClient:
    return JuliaHubClient(em.url, TokenSource(token=em.token if token is None else token))


def streamed(
    client: JuliaHubClient,
    jobname: str,
    after: LogMessage,
    body: Callable[[LogStream], Awaitable[T]],
) -> T:
    """Run `body` on the stream of `jobname` after `after`, in a loop of its own."""

    async def run() -> T:
        async with (
            aiohttp.ClientSession() as session,
            open_log_stream(session, client, jobname, after) as stream,
        ):
            return await body(stream)

    return asyncio.run(run())


def first_message(client: JuliaHubClient, jobname: str) -> LogMessage:
    page = wait_for(lambda: client.log_page(jobname).messages, what="the first line")
    return page[0]  # type: ignore[no-any-return]


def work_dir(em: Emulator, jobname: str) -> Path:
    return Path(em.admin("GET", f"jobs/{jobname}")["work_dir"])


def test_stream_url_follows_the_server_scheme_and_prefix() -> None:
    assert stream_url("https://juliahub.com") == "wss://juliahub.com/ws/stream_logs"
    assert stream_url("https://h.example/prefix") == "wss://h.example/prefix/ws/stream_logs"
    assert stream_url("http://127.0.0.1:8080") == "ws://127.0.0.1:8080/ws/stream_logs"


def test_frames_are_message_objects_and_markers() -> None:
    batch = parse_frame('{"message": "hi", "eventId": "7", "timestamp": 5}')
    assert [(m.message, m.event_id) for m in batch.messages] == [("hi", "7")]
    assert not batch.bottom
    assert parse_frame('{"_meta": true, "end": "bottom"}') == StreamBatch([], True)
    with pytest.raises(ServerError):
        parse_frame('{"message": "cut')
    with pytest.raises(ServerError):
        parse_frame('{"_meta": true, "end": "middle"}')


def test_stream_brings_newer_messages_keep_alives_and_the_bottom(emulator: Emulator) -> None:
    client = make_client(emulator)
    jobname = emulator.submit(WAITING)
    after = first_message(client, jobname)
    before = emulator.stats()["requests"].get("stream_logs", 0)

    async def body(stream: LogStream) -> list[StreamBatch]:
        batches = [await stream.next_batch()]  # caught up: a keep-alive, nothing new
        (work_dir(emulator, jobname) / "go").touch()
        while not batches[-1].bottom:
            batches.append(await stream.next_batch())
        return batches

    batches = streamed(client, jobname, after, body)
    assert batches[0] == StreamBatch([], False)
    messages = [m for batch in batches for m in batch.messages]
    assert [m.message for m in messages] == ["second", "third"]
    assert [m.event_id for m in messages] == ["2", "3"]
    assert batches[-1].bottom and all(not b.bottom for b in batches[:-1])
    assert emulator.stats()["requests"]["stream_logs"] == before + 1
    client.close()


def test_stream_after_an_older_message_sends_the_rest_first(emulator: Emulator) -> None:
    client = make_client(emulator)
    jobname = emulator.create_finished(status="Completed", log_lines=2_500)
    after = client.log_page(jobname, nentries=2_500).messages[0]

    async def body(stream: LogStream) -> list[StreamBatch]:
        batches = [await stream.next_batch()]
        while not batches[-1].bottom:
            batches.append(await stream.next_batch())
        return batches

    batches = streamed(client, jobname, after, body)
    messages = [m for batch in batches for m in batch.messages]
    assert after.event_id is not None
    assert [m.event_id for m in messages] == [str(n) for n in range(int(after.event_id) + 1, 2_501)]
    assert len(batches) >= 3  # a backlog comes in batches of at most 1,000
    client.close()


def refused(client: JuliaHubClient, jobname: str, after: LogMessage) -> StreamRefused:
    async def body(stream: LogStream) -> None:
        await stream.next_batch()

    with pytest.raises(StreamRefused) as caught:
        streamed(client, jobname, after, body)
    return caught.value


def test_a_refused_handshake_is_stream_refused(fresh_emulator: Emulator) -> None:
    em = fresh_emulator
    client = make_client(em)
    jobname = em.create_finished(status="Completed", log_lines=3)
    after = client.log_page(jobname).messages[0]
    em.fault(endpoint="stream_logs", mode="status", status=503)
    assert "503" in str(refused(client, jobname, after))
    assert "403" in str(refused(client, "jr-zzzzzzzzzz", after))  # unknown job
    bad_token = "wrong-token-0123456789"
    error = refused(make_client(em, bad_token), jobname, after)
    assert "401" in str(error) and bad_token not in str(error) and em.token not in str(error)
    assert em.stats()["requests"]["stream_logs"] == 3
    client.close()


@pytest.mark.parametrize(("mode", "error"), [("reset", StreamLost), ("truncate", StreamLost)])
def test_a_dropped_stream_is_stream_lost(
    fresh_emulator: Emulator, mode: str, error: type[Exception]
) -> None:
    em = fresh_emulator
    client = make_client(em)
    jobname = em.submit(WAITING)
    after = first_message(client, jobname)
    em.fault(endpoint="stream_logs", mode=mode)

    async def body(stream: LogStream) -> None:
        await stream.next_batch()

    with pytest.raises(error):
        streamed(client, jobname, after, body)
    (work_dir(em, jobname) / "go").touch()
    client.close()


def test_a_corrupt_frame_is_a_server_error(fresh_emulator: Emulator) -> None:
    em = fresh_emulator
    client = make_client(em)
    jobname = em.create_finished(status="Completed", log_lines=3)
    after = client.log_page(jobname).messages[0]
    em.fault(endpoint="stream_logs", mode="corrupt")

    async def body(stream: LogStream) -> None:
        await stream.next_batch()

    with pytest.raises(ServerError, match="malformed") as caught:
        streamed(client, jobname, after, body)
    assert not isinstance(caught.value, StreamLost)
    client.close()


def test_an_unreachable_server_is_stream_lost(emulator: Emulator) -> None:
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]
    client = JuliaHubClient(f"http://127.0.0.1:{port}", TokenSource(token=emulator.token))
    after = LogMessage("m", None, "1", {}, {})

    async def body(stream: LogStream) -> None:
        await stream.next_batch()

    with pytest.raises(StreamLost, match="cannot open"):
        streamed(client, "jr-aaaaaaaaaa", after, body)
    client.close()
