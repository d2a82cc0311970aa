"""JobWaits directly: until a job is done, how many waits block, and how a wait ends early.

The registry is a stand-in whose job turns done after a number of get() calls;
a clock that jumps a minute at each reading ends a slice at its first check.
"""

from __future__ import annotations

import itertools
import threading
from dataclasses import replace

import pytest
from conftest import wait_for

from jhfs.client import Job, NotFoundError, TransferCancelled
from jhfs.client.errors import DeadlineExceeded
from jhfs.client.models import parse_job
from jhfs.client.pacing import operation_deadline, remaining
from jhfs.state.errors import WaitContinues
from jhfs.state.jobwait import JobWaits

RUNNING = parse_job({"jobname": "jr-run", "status": "Running", "outputs": ""})


class Registry:
    """Stands in for JobRegistry: jr-run is Running until the `done_at`-th get()."""

    def __init__(self, done_at: int | None) -> None:
        self.done_at = done_at
        self.gets = 0
        self.time_left: list[float | None] = []  # the deadline each get() had

    def get(self, jobname: str) -> Job:
        self.time_left.append(remaining())
        if jobname != RUNNING.jobname:
            raise NotFoundError(jobname)
        self.gets += 1
        if self.done_at is not None and self.gets >= self.done_at:
            return replace(RUNNING, status="Failed")
        return RUNNING


def jumping_clock() -> itertools.count[int]:
    return itertools.count(0, 60)


def test_a_done_job_is_answered_by_the_first_check() -> None:
    registry = Registry(done_at=1)
    waits = JobWaits(registry, lambda: False)  # type: ignore[arg-type]
    assert waits.until_done("jr-run").status == "Failed"
    assert registry.gets == 1


def test_a_running_job_is_asked_for_until_it_is_done() -> None:
    registry = Registry(done_at=3)
    waits = JobWaits(registry, lambda: False)  # type: ignore[arg-type]
    assert waits.until_done("jr-run").status == "Failed"
    assert registry.gets == 3


def test_a_wait_nobody_waits_for_any_more_is_cancelled() -> None:
    registry = Registry(done_at=None)
    waits = JobWaits(registry, lambda: True)  # type: ignore[arg-type]
    with pytest.raises(TransferCancelled):
        waits.until_done("jr-run")
    assert registry.gets == 1


def test_each_check_has_a_deadline_of_its_own_not_the_whole_wait() -> None:
    registry = Registry(done_at=2)
    waits = JobWaits(registry, lambda: False, check_timeout=30)  # type: ignore[arg-type]
    # The operation's own deadline has passed: the wait goes on regardless.
    with operation_deadline(0):
        with pytest.raises(DeadlineExceeded):
            remaining()
        assert waits.until_done("jr-run").status == "Failed"
    assert all(left is not None and 0 < left <= 30 for left in registry.time_left)


def test_beyond_the_holders_a_wait_gives_its_thread_back_after_a_slice() -> None:
    registry = Registry(done_at=None)
    holding = threading.Event()
    let_go = threading.Event()

    def abandoned() -> bool:
        holding.set()
        return let_go.is_set()

    waits = JobWaits(
        registry,  # type: ignore[arg-type]
        abandoned,
        holders=1,
        clock=jumping_clock().__next__,
    )
    outcome: list[BaseException] = []

    def hold() -> None:
        try:
            waits.until_done("jr-run")
        except BaseException as error:
            outcome.append(error)

    holder = threading.Thread(target=hold)
    holder.start()
    try:
        wait_for(holding.is_set, what="the first wait to block")
        # The clock jumps a minute at every reading: the slice is over at once.
        with pytest.raises(WaitContinues):
            waits.until_done("jr-run")
    finally:
        let_go.set()
        holder.join(timeout=30)
    assert len(outcome) == 1
    assert isinstance(outcome[0], TransferCancelled)  # the holder blocked until let go


def test_a_wait_that_fails_gives_its_place_back() -> None:
    registry = Registry(done_at=None)
    waits = JobWaits(
        registry,  # type: ignore[arg-type]
        lambda: True,
        holders=1,
        clock=jumping_clock().__next__,
    )
    with pytest.raises(NotFoundError):
        waits.until_done("jr-missing")
    # Still the one place free: this wait blocks (until abandoned), no slice.
    with pytest.raises(TransferCancelled):
        waits.until_done("jr-run")
