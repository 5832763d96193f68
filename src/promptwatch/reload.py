"""The reload loop every hot value shares: hints in, one worker thread re-reading, no lost update.

A :class:`Reloader` owns a watcher and a worker thread.  Watcher hints only *request* a load;
the worker clears the request **before** it reads, so a write that lands while a load is running
raises a new request and is read again: whatever the timing, the last write is always applied.
Urgent hints (a rename into place, a close-after-write) are served at once; plain modify events
are coalesced for ``debounce`` seconds (never longer than ``max_delay`` in a continuous burst).

Subclasses implement one hook, :meth:`Reloader._load`, which reads and validates, then hands the
complete new snapshot to :meth:`Reloader._publish` (one reference assignment) and, once it has said
so in the log, to :meth:`Reloader._notify_reload` for the ``on_reload`` callbacks.
"""

from __future__ import annotations

import logging
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from pathlib import Path
from typing import Generic, TypeVar

from .watch import Watcher, WatchMode, start_watcher

__all__ = ["Reloader"]

logger = logging.getLogger("promptwatch.reload")

S = TypeVar("S")


class Reloader(ABC, Generic[S]):
    """Watches ``path`` (a file, or a directory with ``whole_directory``) and calls :meth:`_load`.

    Holds the current immutable snapshot of type ``S`` (set ``_snapshot`` before watching starts).
    """

    _snapshot: S

    def __init__(
        self,
        path: Path,
        *,
        hot_reload: bool = True,
        mode: WatchMode | str | None = None,
        interval: float = 1.5,
        safety_interval: float = 30.0,
        debounce: float = 0.025,
        max_delay: float = 0.25,
        whole_directory: bool = False,
    ) -> None:
        self.path = Path(path)
        self.hot_reload = hot_reload
        self._requested_mode = mode
        self._interval = interval
        self._safety_interval = safety_interval
        self._debounce = debounce
        self._max_delay = max_delay
        self._whole_directory = whole_directory
        self._cond = threading.Condition()
        self._due: float | None = None
        self._burst_start = 0.0
        self._hint_at: float | None = None
        self._hint_source = "inotify"
        self._pending_urgent = False
        self._settled = True
        self._closed = False
        self._load_lock = threading.Lock()
        self._watcher: Watcher | None = None
        self._worker: threading.Thread | None = None
        self._callbacks: list[Callable[[S, S], None]] = []
        self._published = threading.Condition()

    @property
    def current(self) -> S:
        """The current snapshot.  Lock-free; keep the object to pin one version."""
        return self._snapshot

    def on_reload(self, callback: Callable[[S, S], None]) -> Callable[[S, S], None]:
        """Call ``callback(old, new)`` (in the reload thread) after each new snapshot is published."""
        self._callbacks.append(callback)
        return callback

    def wait_for(self, predicate: Callable[[S], bool], timeout: float) -> S | None:
        """Block until the current snapshot satisfies ``predicate`` or ``timeout`` seconds pass."""
        with self._published:
            if self._published.wait_for(lambda: predicate(self._snapshot), timeout):
                return self._snapshot
        return None

    def _publish(self, new: S) -> S:
        """Make ``new`` the current snapshot (one reference assignment); return the previous one."""
        with self._published:
            old, self._snapshot = self._snapshot, new
            self._published.notify_all()
        return old

    def _notify_reload(self, old: S, new: S) -> None:
        for callback in list(self._callbacks):
            try:
                callback(old, new)
            except Exception:
                logger.exception("on_reload callback %r of %s failed", callback, self.path)

    @property
    def mode(self) -> str:
        """``inotify`` or ``poll`` while watching; ``off`` without hot reload or after close."""
        return str(self._watcher.mode) if self._watcher is not None else "off"

    def _start_watching(self) -> None:
        if not self.hot_reload:
            return
        self._worker = threading.Thread(target=self._run, name=f"promptwatch-reload:{self.path.name}", daemon=True)
        self._worker.start()
        try:
            self._watcher = start_watcher(
                self.path,
                self._request,
                mode=self._requested_mode,
                interval=self._interval,
                safety_interval=self._safety_interval,
                whole_directory=self._whole_directory,
            )
        except BaseException:
            self._shutdown_worker()
            raise
        # Anything written between the first read and the watch being in place is read again.
        self._request("inotify" if self._watcher.mode is WatchMode.INOTIFY else "poll", True)

    def _request(self, source: str, urgent: bool) -> None:
        now = time.monotonic()
        with self._cond:
            if self._closed:
                return
            self._pending_urgent = self._pending_urgent or urgent
            if self._due is None:
                self._burst_start = now
                self._due = now if urgent else now + self._debounce
                self._hint_at = now
                self._hint_source = source
            elif urgent:
                self._due = min(self._due, now)
            else:
                self._due = min(max(self._due, now + self._debounce), self._burst_start + self._max_delay)
            self._cond.notify()

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._closed:
                    now = time.monotonic()
                    if self._due is not None and self._due <= now:
                        break
                    self._cond.wait(None if self._due is None else self._due - now)
                if self._closed:
                    return
                source, hint_at = self._hint_source, self._hint_at
                self._settled = self._pending_urgent
                self._due = self._hint_at = None
                self._pending_urgent = False
            try:
                with self._load_lock:
                    self._load(source, hint_at)
            except Exception:
                logger.exception("reloading %s failed unexpectedly; keeping the current value", self.path)

    def _recheck_later(self, delay: float) -> None:
        """From :meth:`_load`: the content looked mid-write; read again, settled, after ``delay``."""
        now = time.monotonic()
        with self._cond:
            if self._closed or self._due is not None:
                return  # a newer hint is already pending: that load decides
            self._due = now + delay
            self._hint_at = now
            self._pending_urgent = True
            self._cond.notify()

    @property
    def settled(self) -> bool:
        """In :meth:`_load`: False when only plain modify events asked for this load, so the writer
        may still be writing; a failure then is better checked again than reported."""
        return self._settled

    def reload(self, source: str = "manual") -> bool:
        """Read now (SIGHUP, an API call); True when a new value was published."""
        with self._load_lock:
            self._settled = True
            return self._load(source, time.monotonic())

    @abstractmethod
    def _load(self, source: str, hint_at: float | None) -> bool:
        """Read, validate and publish; keep the current value on failure.  True when published."""

    def _shutdown_worker(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        if self._worker is not None and self._worker is not threading.current_thread():
            self._worker.join()
        self._worker = None

    def close(self) -> None:
        """Stop watching and join every thread.  Idempotent."""
        watcher, self._watcher = self._watcher, None
        if watcher is not None:
            watcher.stop()
        self._shutdown_worker()
