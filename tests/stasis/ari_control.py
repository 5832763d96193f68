"""A channel's control queue in the ARI double, run the way Asterisk's ``res_stasis`` runs it.

Asterisk executes what an application asks of a channel in Stasis (answer, play, record, continue)
as *commands* on that channel's control queue, one at a time and in order: a second
``POST /channels/{id}/play`` answers 201 at once, but its PlaybackStarted comes only when the first
playback has finished, and a recording requested while a sound plays starts after it.  A hangup is
not a command: it interrupts the command that runs, and the commands still queued never run.

:class:`Control` is that queue; :class:`PlayRecord` and :class:`LiveRecording` are the states of the
two media operations the bot uses (ids, timings and outcome, for tests to inspect).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

__all__ = ["Command", "Control", "LiveRecording", "PlayRecord", "first"]


def _nothing() -> None:
    return None


@dataclass(eq=False)
class Command:
    """One entry of a control queue.  ``interrupt`` is called when the channel hangs up while it
    runs; ``drop`` when the channel left Stasis before its turn (it never runs)."""

    kind: str
    run: Callable[[], Awaitable[None]]
    interrupt: Callable[[], None] = _nothing
    drop: Callable[[], None] = _nothing
    done: asyncio.Event = field(default_factory=asyncio.Event)
    ran: bool = False


class Control:
    """The control queue of one channel; its worker runs until :meth:`close`."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.commands: deque[Command] = deque()
        self.current: Command | None = None
        self.closed = False
        self._wake = asyncio.Event()
        self.task = asyncio.ensure_future(self._run())

    @property
    def idle(self) -> bool:
        """Nothing runs and nothing waits: a new command starts at once."""
        return self.current is None and not self.commands

    def submit(self, command: Command) -> None:
        if self.closed:
            command.drop()
            command.done.set()
            return
        self.commands.append(command)
        self._wake.set()

    async def _run(self) -> None:
        try:
            while not self.closed:
                if not self.commands:
                    self._wake.clear()
                    await self._wake.wait()
                    continue
                command = self.commands.popleft()
                self.current = command
                command.ran = True
                try:
                    await command.run()
                finally:
                    self.current = None
                    command.done.set()
        finally:
            self._drop_queued()

    def _drop_queued(self) -> None:
        while self.commands:
            command = self.commands.popleft()
            command.drop()
            command.done.set()

    async def close(self, *, timeout: float = 5.0) -> None:
        """The channel leaves Stasis: the running command is interrupted and finishes (its final
        events go out first), the queued ones never run."""
        self.closed = True
        current = self.current
        if current is not None:
            current.interrupt()
        self._wake.set()
        if self.task is not asyncio.current_task():
            await asyncio.wait({self.task}, timeout=timeout)

    def cancel(self) -> None:
        """Asterisk itself goes away (server stop): nothing more runs, no events."""
        self.closed = True
        self.task.cancel()


@dataclass(eq=False)
class PlayRecord:
    """A playback: ``state`` is ``queued``, ``playing``, then ``done`` or ``failed``.

    ``seconds`` is the media's length (``inf`` for a tone, None when Asterisk cannot play it);
    times are ``time.monotonic()``.  ``stopped`` when ``DELETE /playbacks/{id}`` ended it while it
    played, ``canceled`` when that came while it was still queued (it then never starts)."""

    id: str
    media: str
    seconds: float | None = None
    state: str = "queued"
    stopped: bool = False
    canceled: bool = False
    requested_at: float = field(default_factory=time.monotonic)
    started_at: float | None = None
    finished_at: float | None = None
    stop: asyncio.Event = field(default_factory=asyncio.Event, repr=False)
    started: asyncio.Event = field(default_factory=asyncio.Event, repr=False)

    @property
    def played_seconds(self) -> float | None:
        """Wall-clock seconds between PlaybackStarted and PlaybackFinished."""
        if self.started_at is None or self.finished_at is None:
            return None
        return self.finished_at - self.started_at


@dataclass(eq=False)
class LiveRecording:
    """A recording (``POST /channels/{id}/record``) until it is finished and stored."""

    name: str
    channel_id: str
    format: str
    max_duration: float
    max_silence: float
    terminate_on: str
    state: str = "queued"
    terminated: bool = False  # ended by a terminateOn key, or by POST …/stop
    canceled: bool = False  # DELETE /recordings/live/{name}: ended and discarded
    wake: asyncio.Event = field(default_factory=asyncio.Event, repr=False)

    def end(self, *, cancel: bool = False) -> None:
        self.terminated = True
        self.canceled = self.canceled or cancel
        self.wake.set()


async def first(*events: asyncio.Event, timeout: float | None = None) -> None:
    """Wait until any of ``events`` is set (or ``timeout`` passes)."""
    waiters = [asyncio.ensure_future(e.wait()) for e in events]
    try:
        await asyncio.wait(waiters, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await waiter
