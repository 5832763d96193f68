"""What the browser is told as it happens: a new version on disk (and who made it), a broken or repaired
file, a consumer that loaded something or went away.

One :class:`EventHub` per app polls the disk off the event loop (only while someone listens) and
fans each change out to every subscriber's bounded queue; a subscriber too slow to keep up is
dropped (its browser reconnects and gets the whole state again).  ``EventSource`` cannot send an
``Authorization`` header, so a stream is opened with a :class:`TicketBook` ticket: random, bound to
the operator, valid for a few seconds, usable once.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import threading
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import orjson
from starlette.concurrency import run_in_threadpool

__all__ = ["Event", "EventHub", "EventHubs", "HubClosed", "TicketBook", "TooManyTickets"]

Topics = dict[str, dict[str, Any]]
"""The state the browser mirrors, by event name (``prompts``, ``consumers``)."""


@dataclass(frozen=True)
class Event:
    name: str
    data: dict[str, Any]

    def encode(self) -> bytes:
        """One Server-Sent Events message."""
        return b"event: " + self.name.encode() + b"\ndata: " + orjson.dumps(self.data) + b"\n\n"


class TooManyTickets(Exception):
    """More unredeemed tickets than the book holds."""


class TicketBook:
    """Short-lived single-use tickets that stand for an operator's token on ``GET /api/events``."""

    def __init__(self, *, ttl: float = 30.0, capacity: int = 1000) -> None:
        self.ttl = ttl
        self.capacity = capacity
        self._tickets: dict[str, tuple[str, float]] = {}
        self._lock = threading.Lock()

    def issue(self, operator: str) -> str:
        now = time.monotonic()
        ticket = secrets.token_urlsafe(32)
        with self._lock:
            if len(self._tickets) >= self.capacity:
                self._tickets = {t: v for t, v in self._tickets.items() if v[1] > now}
                if len(self._tickets) >= self.capacity:
                    raise TooManyTickets(f"{len(self._tickets)} tickets outstanding")
            self._tickets[ticket] = (operator, now + self.ttl)
        return ticket

    def redeem(self, ticket: str) -> str | None:
        """The operator the ticket was issued to, once; None when unknown, used or expired."""
        with self._lock:
            found = self._tickets.pop(ticket, None)
        if found is None or found[1] <= time.monotonic():
            return None
        return found[0]


class HubClosed(Exception):
    """The hub is closed (the panel is stopping) or full."""


class EventHub:
    """Polls ``probe`` every ``period`` seconds while anyone subscribes; publishes each topic that changed.

    ``probe`` runs in the thread pool (it reads the disk).  A ``prompts`` topic with a valid new sha256
    but no author yet (the panel's watcher has not recorded the revision) is held for up to ``hold``
    seconds, so the browser is told *who* changed it.
    """

    def __init__(
        self,
        probe: Callable[[], Topics],
        *,
        period: float = 0.2,
        hold: float = 1.5,
        max_subscribers: int = 64,
        queue_size: int = 64,
    ) -> None:
        self._probe = probe
        self.period = period
        self.hold = hold
        self.max_subscribers = max_subscribers
        self.queue_size = queue_size
        self._subscribers: set[asyncio.Queue[Event | None]] = set()
        self._last: Topics = {}
        self._task: asyncio.Task[None] | None = None
        self._wake: asyncio.Event | None = None
        self._closed = False

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def subscribers(self) -> int:
        return len(self._subscribers)

    async def current(self) -> list[Event]:
        """The whole state now, as events (what a new subscriber is told first)."""
        topics = await run_in_threadpool(self._probe)
        return [Event(name, value) for name, value in topics.items()]

    @contextlib.asynccontextmanager
    async def subscribe(self) -> AsyncIterator[asyncio.Queue[Event | None]]:
        """A queue of events; ``None`` in it means the hub closed."""
        if self._closed:
            raise HubClosed("the panel is stopping")
        if len(self._subscribers) >= self.max_subscribers:
            raise HubClosed(f"{len(self._subscribers)} event streams are open, the limit is {self.max_subscribers}")
        queue: asyncio.Queue[Event | None] = asyncio.Queue(self.queue_size)
        self._subscribers.add(queue)
        if self._task is None or self._task.done():
            self._wake = asyncio.Event()
            self._task = asyncio.create_task(self._run(), name="adminapi-events")
        try:
            yield queue
        finally:
            self._subscribers.discard(queue)

    def close(self) -> None:
        """End every stream (called when the server starts to stop, before it waits for open requests)."""
        self._closed = True
        for queue in list(self._subscribers):
            self._drop(queue)
        if self._wake is not None:
            self._wake.set()

    def _drop(self, queue: asyncio.Queue[Event | None]) -> None:
        self._subscribers.discard(queue)
        while True:  # make room for the end marker
            try:
                queue.put_nowait(None)
                return
            except asyncio.QueueFull:
                queue.get_nowait()

    def _broadcast(self, event: Event) -> None:
        for queue in list(self._subscribers):
            try:
                queue.put_nowait(event)
            except asyncio.QueueFull:
                self._drop(queue)  # too slow: its browser reconnects and gets the whole state

    async def _run(self) -> None:
        pending_since: float | None = None
        self._last = {}
        while self._subscribers and not self._closed:
            topics = await run_in_threadpool(self._probe)
            for name, value in topics.items():
                if value == self._last.get(name):
                    continue
                if name == "prompts" and value.get("valid") and value.get("author") is None:
                    pending_since = pending_since if pending_since is not None else time.monotonic()
                    if time.monotonic() - pending_since < self.hold:
                        continue
                if name == "prompts":
                    pending_since = None
                self._last[name] = value
                self._broadcast(Event(name, value))
            assert self._wake is not None
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.period)


class EventHubs:
    """One :class:`EventHub` per prompts label, made on its first subscriber; closed together."""

    def __init__(self, make: Callable[[str], EventHub]) -> None:
        self._make = make
        self._hubs: dict[str, EventHub] = {}
        self._closed = False

    @property
    def closed(self) -> bool:
        return self._closed

    def get(self, label: str) -> EventHub:
        hub = self._hubs.get(label)
        if hub is None:
            hub = self._hubs[label] = self._make(label)
            if self._closed:
                hub.close()
        return hub

    def close(self) -> None:
        """End every stream of every label (the server starts to stop)."""
        self._closed = True
        for hub in self._hubs.values():
            hub.close()
