"""The reload loop: urgent hints at once, modify bursts coalesced, a write during a load never lost."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from promptwatch import Reloader
from promptwatch.watch import start_watcher
from tests.util import wait_until

from .helpers import make_doc


class Recorder(Reloader):
    """Records each load; the first one can be held open to let a write land in the middle of it."""

    def __init__(self, path: Path, **kwargs: Any) -> None:
        super().__init__(path, **kwargs)
        self.loads: list[tuple[str, bytes]] = []
        self.hold_first = threading.Event()
        self.hold_first.set()
        self.in_load = threading.Event()

    def start(self) -> None:
        self._start_watching()

    def _load(self, source: str, hint_at: float | None) -> bool:
        self.in_load.set()
        self.hold_first.wait(10)
        self.loads.append((source, self.path.read_bytes()))
        return True


@pytest.fixture
def recorder(tmp_path: Path) -> Iterator[Recorder]:
    path = tmp_path / "prompts.json"
    path.write_bytes(make_doc(1))
    r = Recorder(path, hot_reload=False, debounce=0.1, max_delay=0.3)
    r.start()  # hot_reload=False: no watcher, hints come from the test
    yield r
    r.hold_first.set()
    r.close()


@pytest.fixture
def worker(tmp_path: Path) -> Iterator[Recorder]:
    """A reloader whose worker runs but whose hints come from the test (no file watching)."""
    path = tmp_path / "prompts.json"
    path.write_bytes(make_doc(1))
    r = Recorder(path, debounce=0.1, max_delay=0.3, mode="poll", interval=3600)
    r.start()
    wait_until(lambda: len(r.loads) == 1, timeout=10)  # the re-read after the watch is in place
    yield r
    r.hold_first.set()
    r.close()


def test_urgent_hint_loads_at_once(worker: Recorder) -> None:
    start = time.monotonic()
    worker._request("inotify", True)
    wait_until(lambda: len(worker.loads) == 2, timeout=10)
    assert time.monotonic() - start < 0.09  # well under the debounce


def test_a_burst_of_modify_hints_is_coalesced(worker: Recorder) -> None:
    for _ in range(50):
        worker._request("inotify", False)
    wait_until(lambda: len(worker.loads) == 2, timeout=10)
    worker.in_load.clear()
    assert not worker.in_load.wait(0.4), "a second load for one burst"
    assert len(worker.loads) == 2


def test_close_after_write_cuts_the_debounce_short(worker: Recorder) -> None:
    worker._request("inotify", False)
    start = time.monotonic()
    worker._request("inotify", True)
    wait_until(lambda: len(worker.loads) == 2, timeout=10)
    assert time.monotonic() - start < 0.09


def test_a_write_during_a_load_is_read_again(worker: Recorder) -> None:
    worker.hold_first.clear()
    worker.in_load.clear()
    worker._request("inotify", True)
    assert worker.in_load.wait(10)
    worker.path.write_bytes(make_doc(2))  # lands while the load is running
    worker._request("inotify", True)
    worker.hold_first.set()
    wait_until(lambda: len(worker.loads) >= 3, timeout=10)
    assert worker.loads[-1][1] == make_doc(2)


def test_without_hot_reload_nothing_watches(recorder: Recorder) -> None:
    assert recorder.mode == "off"
    assert recorder.reload("signal") is True
    assert recorder.loads == [("signal", make_doc(1))]


def test_inotify_safety_check_catches_dropped_events(tmp_path: Path) -> None:
    """With the kernel's events lost (queue overflow), the slow stat check still hints."""

    class DeafObserver:
        def start(self) -> None: ...
        def schedule(self, *args: Any, **kwargs: Any) -> object:
            return object()

        def unschedule(self, watch: object) -> None: ...
        def stop(self) -> None: ...
        def is_alive(self) -> bool:
            return False

    target = tmp_path / "prompts.json"
    target.write_bytes(make_doc(1))
    hints: list[tuple[str, bool]] = []
    w = start_watcher(
        target, lambda s, u: hints.append((s, u)), mode="inotify", safety_interval=0.05, observer_factory=DeafObserver
    )
    try:
        assert w.mode == "inotify"
        target.write_bytes(make_doc(22))
        wait_until(lambda: ("poll", True) in hints, timeout=10)
    finally:
        w.stop()
