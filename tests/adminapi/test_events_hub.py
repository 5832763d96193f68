"""The event hub on its own: what is published when, slow subscribers dropped, limits, closing."""

from __future__ import annotations

import asyncio
import itertools
from typing import Any

import pytest

from adminapi.events import Event, EventHub, HubClosed


async def next_event(queue: asyncio.Queue[Event | None], timeout: float = 5) -> Event | None:
    return await asyncio.wait_for(queue.get(), timeout)


def scripted(*states: dict[str, Any]) -> Any:
    """A probe answering with each state in turn, then the last one forever."""
    answers = iter(states)
    last: dict[str, Any] = {}

    def probe() -> dict[str, Any]:
        nonlocal last
        last = next(answers, last)
        return {"prompts": dict(last)}

    return probe


def prompts(sha: str, author: str | None, *, valid: bool = True) -> dict[str, Any]:
    return {"sha256": sha, "valid": valid, "author": author, "origin": author and "api"}


async def test_a_new_version_waits_briefly_for_its_author() -> None:
    probe = scripted(prompts("a", "file"), prompts("b", None), prompts("b", None), prompts("b", "alice"))
    hub = EventHub(probe, period=0.001, hold=5)
    async with hub.subscribe() as queue:
        first, second = await next_event(queue), await next_event(queue)
        assert first is not None and first.data["sha256"] == "a"
        assert second is not None and second.data == prompts("b", "alice")  # not the author-less one before it
        assert queue.empty()


async def test_an_author_that_never_comes_is_not_waited_for_long_and_a_broken_file_not_at_all() -> None:
    hub = EventHub(scripted(prompts("a", None)), period=0.001, hold=0.2)
    loop = asyncio.get_running_loop()
    started = loop.time()
    async with hub.subscribe() as queue:
        held = await next_event(queue)
        assert held is not None and held.data == prompts("a", None) and loop.time() - started >= 0.2
    hub = EventHub(scripted(prompts("b", None, valid=False)), period=0.001, hold=60)
    async with hub.subscribe() as queue:
        broken = await next_event(queue)
        assert broken is not None and broken.data["valid"] is False
    assert hub.subscribers == 0


async def test_a_slow_subscriber_is_dropped_and_the_others_keep_going() -> None:
    counter = itertools.count()
    hub = EventHub(lambda: {"consumers": {"n": next(counter)}}, period=0.001, queue_size=3)
    async with hub.subscribe() as slow, hub.subscribe() as fast:
        seen = [await next_event(fast) for _ in range(10)]
        assert all(e is not None for e in seen)
        drained = [slow.get_nowait() for _ in range(slow.qsize())]
        assert drained[-1] is None  # told it is dropped: its browser reconnects and gets the whole state
        assert hub.subscribers == 1


async def test_limits_and_closing() -> None:
    hub = EventHub(lambda: {"prompts": {"valid": True, "author": "x"}}, period=0.01, max_subscribers=1)
    async with hub.subscribe() as queue:
        with pytest.raises(HubClosed):
            async with hub.subscribe():
                pass
        assert await next_event(queue) is not None
        hub.close()
        assert await next_event(queue) is None
    with pytest.raises(HubClosed):
        async with hub.subscribe():
            pass


def test_an_event_is_one_server_sent_events_message() -> None:
    assert Event("prompts", {"sha256": "ab", "author": "Ольга"}).encode() == (
        'event: prompts\ndata: {"sha256":"ab","author":"Ольга"}\n\n'.encode()
    )
