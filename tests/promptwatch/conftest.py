"""Factories shared by the promptwatch tests: documents, hot prompts, watchers, subprocesses."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from promptwatch import HotPrompts
from promptwatch.watch import Watcher, start_watcher

from .helpers import BACKENDS, Child, Hints


@pytest.fixture(params=sorted(BACKENDS))
def backend(request: pytest.FixtureRequest) -> dict[str, Any]:
    """Keyword arguments selecting one watch backend: real inotify, or polling every 50 ms."""
    return dict(BACKENDS[request.param])


HotPromptsFactory = Callable[..., HotPrompts]


@pytest.fixture
def hot_prompts() -> Iterator[HotPromptsFactory]:
    """``hot_prompts(path, **kwargs)``: a HotPrompts closed when the test ends."""
    made: list[HotPrompts] = []

    def factory(path: Path, **kwargs: Any) -> HotPrompts:
        hp = HotPrompts(path, **kwargs)
        made.append(hp)
        return hp

    yield factory
    for hp in made:
        hp.close()


WatcherFactory = Callable[..., tuple[Watcher, Hints]]


@pytest.fixture
def watcher() -> Iterator[WatcherFactory]:
    """``watcher(target, **kwargs)``: a started watcher and its collected hints, stopped at the end."""
    made: list[Watcher] = []

    def factory(target: Path, **kwargs: Any) -> tuple[Watcher, Hints]:
        hints = Hints()
        w = start_watcher(target, hints, **kwargs)
        made.append(w)
        return w, hints

    yield factory
    for w in made:
        w.stop()


ProcessFactory = Callable[..., Child]


@pytest.fixture
def spawn() -> Iterator[ProcessFactory]:
    """``spawn(*argv, **popen_kwargs)``: a child process, killed and reaped when the test ends."""
    children: list[Child] = []

    def factory(*argv: str | os.PathLike[str], **kwargs: Any) -> Child:
        child = Child([os.fspath(a) for a in argv], **kwargs)
        children.append(child)
        return child

    yield factory
    for child in children:
        child.stop()
