"""jobs/<jobname>/ctl: the control file (`kill`, `extend N`).

A command runs inside the write call, so the writer sees its error (errors
from close are lost). Every line of the write must parse, and the job must
still be running (or waiting to), before anything is sent: a bad write, or
one for a job that is over, sends nothing. After the commands the job is
fetched again (after a kill, until the server says it stopped), and the
kernel forgets what it cached of the job's files, so that `status` read
next says what the server says. Truncation is accepted and does nothing,
because the shell's `>` opens with O_TRUNC.

Reading ctl gives its grammar and the outcome of the last write to it in
this mount, so that copying a job directory (cp -r, rsync -a, tar) reads it
like any file.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass

from jhfs.client import Job, JuliaHubError
from jhfs.client.errors import DeadlineExceeded
from jhfs.client.pacing import remaining
from jhfs.nodes.base import FILE_MODE, Attrs, Handle, Node, job_path
from jhfs.nodes.context import MountContext
from jhfs.nodes.errors import InvalidInput, JobIsOver
from jhfs.state.errors import ShuttingDownError
from jhfs.state.freshness import KILL_SETTLE_PAUSES
from jhfs.state.waiting import pause

logger = logging.getLogger(__name__)

MAX_WRITE = 1024
HOURS = re.compile(r"[0-9]+")
LINE_END = re.compile(r"\r?\n")
BLANKS = re.compile(r"[ \t]+")
GRAMMAR = (
    "kill            stop the job\n"
    "extend HOURS    extend its time limit by HOURS whole hours (1 or more)\n"
)
NOT_YET_STOPPED = frozenset({"Submitted", "Running"})


class CtlSyntaxError(InvalidInput):
    """A write to ctl that is not a list of valid commands."""


@dataclass(frozen=True)
class Kill:
    def __str__(self) -> str:
        return "kill"


@dataclass(frozen=True)
class Extend:
    hours: int

    def __str__(self) -> str:
        return f"extend {self.hours}"


Command = Kill | Extend


def parse_commands(data: bytes) -> list[Command]:
    """The commands of one write, one per line; CtlSyntaxError unless every line is valid."""
    if len(data) > MAX_WRITE:
        raise CtlSyntaxError(f"a ctl write is at most {MAX_WRITE} bytes, got {len(data)}")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise CtlSyntaxError("a ctl write must be UTF-8 text") from None
    if not text:
        raise CtlSyntaxError("empty ctl write: expected `kill` or `extend HOURS`")
    # Lines end with \n (or \r\n) only: str.splitlines would also split at
    # vertical tab, form feed, \x1c-\x1e, NEL and U+2028/9, so that
    # `printf 'kill\x0bkill'` would send two kills.
    lines = LINE_END.split(text)
    if lines[-1] == "":
        lines.pop()  # the write's final newline
    return [parse_line(line) for line in lines]


def parse_line(line: str) -> Command:
    # Words are separated by spaces and tabs only (str.split also takes NBSP
    # and the other Unicode spaces).
    words = [word for word in BLANKS.split(line) if word]
    match words:
        case ["kill"]:
            return Kill()
        case ["extend", hours] if HOURS.fullmatch(hours) and int(hours) >= 1:
            return Extend(int(hours))
        case ["extend", *_]:
            raise CtlSyntaxError(f"{line!r}: expected `extend HOURS`, whole hours >= 1")
    raise CtlSyntaxError(f"{line!r}: unknown command (expected `kill` or `extend HOURS`)")


class CtlHandle(Handle):
    """An open ctl: reads give the text as it was at open; every write is a batch
    of commands sent before the write returns."""

    direct_io = True  # each write must reach us whole, never through the page cache

    def __init__(self, ctx: MountContext, jobname: str, content: bytes) -> None:
        self.ctx = ctx
        self.jobname = jobname
        self.content = content

    def read(self, size: int, offset: int) -> bytes:
        return self.content[offset : offset + size]

    def write(self, data: bytes, offset: int) -> int:
        outcome: list[str] = []  # one entry per command answered, then the failure
        about = ""  # what a failure is about, once the write has parsed
        sent: list[Command] = []
        try:
            commands = parse_commands(data)
            about = ", ".join(map(str, commands)) + ": "
            job = self.ctx.registry.get(self.jobname)
            if job.is_done:
                # The server would answer success and change nothing.
                raise JobIsOver(
                    f"job {self.jobname} is over ({job.status}): no process to stop or "
                    "extend; nothing was sent"
                )
            try:
                for command in commands:
                    about = f"{command}: "
                    self._send(command)
                    sent.append(command)
                    outcome.append(f"{command}: ok")
            finally:
                if sent:
                    self._settle(killed=Kill() in sent)
        except Exception as exc:
            outcome.append(f"{about}failed: {exc}")
            raise
        finally:
            self.ctx.ctl_outcomes.record(self.jobname, "; ".join(outcome))
            self.ctx.forget(job_path(self.jobname, "ctl"))  # its size changed
        return len(data)

    def _send(self, command: Command) -> None:
        logger.info("%s: %s", self.jobname, command)
        if isinstance(command, Kill):
            self.ctx.client.kill_job(self.jobname)
        else:
            self.ctx.client.extend_job(self.jobname, command.hours)

    def _settle(self, killed: bool) -> None:
        """Fetch the job again, so that its files show what the server says now
        (the registry has the kernel forget their old sizes when the job
        changed); after a kill, until it says the job left Submitted/Running (a
        bounded number of requests, within the operation's deadline)."""
        pauses = iter(KILL_SETTLE_PAUSES if killed else ())
        try:
            while True:
                job = self.ctx.registry.refresh(self.jobname)
                pause = next(pauses, None)
                if job.status not in NOT_YET_STOPPED or pause is None or not self._pause(pause):
                    break
        except JuliaHubError as exc:
            # The command itself was answered; the status catches up within its ttl.
            logger.warning("%s: refreshing after ctl failed: %s", self.jobname, exc)

    def _pause(self, seconds: float) -> bool:
        """Wait `seconds` before asking again; False if the wait was cut short
        (Ctrl-C, the operation's deadline, the mount ending)."""
        try:
            left = remaining()
            if left is not None and left <= seconds:
                return False
            return pause(seconds, self.ctx.abandoned)
        except (DeadlineExceeded, ShuttingDownError):
            # The commands were carried out: their answer stands, only the wait ends.
            return False


class CtlFile(Node):
    """jobs/<jobname>/ctl: written, it runs commands; read, it tells what they are."""

    def __init__(self, ctx: MountContext, job: Job) -> None:
        super().__init__(ctx)
        self.job = job

    def render(self) -> bytes:
        """The grammar, and the outcome of the last write in this mount."""
        last = self.ctx.ctl_outcomes.last(self.job.jobname) or "none"
        return f"{GRAMMAR}last: {last}\n".encode("utf-8", "replace")

    def getattr(self) -> Attrs:
        mtime = self.ctx.submit_time(self.job)
        return self._attrs(FILE_MODE, len(self.render()), mtime)

    def open(self, flags: int) -> Handle:
        return CtlHandle(self.ctx, self.job.jobname, self.render())

    def truncate(self, length: int) -> None:
        if length != 0:
            raise CtlSyntaxError("ctl can only be truncated to 0 (the shell's `>`)")
