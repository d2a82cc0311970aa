"""Single flight with a Waiter: callers who give up, and the call that goes on."""

from __future__ import annotations

import threading

import pytest
from conftest import wait_for

from jhfs.client import TransferCancelled
from jhfs.client.errors import DeadlineExceeded
from jhfs.client.pacing import operation_deadline, remaining
from jhfs.state.flight import SingleFlight
from jhfs.state.waiting import Waiter


def test_a_caller_that_gives_up_leaves_the_call_going_for_the_others() -> None:
    gave_up = threading.Event()
    waiter = Waiter(gave_up.is_set)
    release = threading.Event()
    calls: list[int] = []
    flight: SingleFlight[str, int] = SingleFlight()

    def slow() -> int:
        calls.append(1)
        release.wait()
        return 42

    errors: list[BaseException] = []

    def first() -> None:
        try:
            flight.do("key", slow, waiter)
        except BaseException as error:
            errors.append(error)

    caller = threading.Thread(target=first)
    caller.start()
    wait_for(lambda: calls == [1], what="the call to start")
    gave_up.set()  # the first caller's process got Ctrl-C
    caller.join(timeout=10)
    assert not caller.is_alive()
    assert len(errors) == 1 and isinstance(errors[0], TransferCancelled)
    # The call itself goes on; a later caller joins it instead of starting another.
    gave_up.clear()
    result: list[int] = []
    joiner = threading.Thread(target=lambda: result.append(flight.do("key", slow, waiter)))
    joiner.start()
    wait_for(lambda: flight.waiting("key") == 1, what="the second caller to join")
    release.set()
    joiner.join(timeout=10)
    assert result == [42] and calls == [1]
    waiter.close()


def test_the_call_runs_with_the_callers_deadline() -> None:
    def abandoned() -> bool:
        remaining()  # raises once the deadline has passed, as the mount's check does
        return False

    waiter = Waiter(abandoned)
    flight: SingleFlight[str, float | None] = SingleFlight()
    never = threading.Event()
    with operation_deadline(30):
        left = flight.do("deadline", remaining, waiter)
    assert left is not None and 0 < left <= 30
    with operation_deadline(0.2), pytest.raises(DeadlineExceeded):
        flight.do("stuck", lambda: never.wait(30) and None, waiter)
    never.set()
    waiter.close()
