"""Watching the prompts file's directory: inotify through watchdog, or stat polling.

A watcher never reads the file.  It only *hints* that the target may have changed by calling
``notify(source, urgent)``; the reloader re-reads, hashes and decides.  Events are hints, the
content is the truth.

* :class:`InotifyWatcher` watches the **directory** (a watch on the file would die with the inode
  an atomic rename replaces).  Moves into the target, creates, deletes and close-after-write are
  urgent; plain modify events (a writer still writing) are not, so the reloader can coalesce them.
  When the target is a symlink (a Kubernetes ConfigMap), every change in the directory is a hint.
  A slow stat check still runs, to catch events the kernel dropped, and the watch is re-established
  when the directory is removed and recreated.
* :class:`PollWatcher` compares ``(st_dev, st_ino, st_mtime_ns, st_size)`` of the resolved target
  every interval.

:func:`start_watcher` resolves ``auto`` to one of them: inotify, unless the directory is on a
network or FUSE filesystem or inotify cannot start (watch or instance limit), then polling.
"""

from __future__ import annotations

import enum
import logging
import os
import re
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from pathlib import Path
from typing import Any

from watchdog.events import (
    DirCreatedEvent,
    DirDeletedEvent,
    DirMovedEvent,
    FileClosedEvent,
    FileCreatedEvent,
    FileDeletedEvent,
    FileModifiedEvent,
    FileMovedEvent,
    FileSystemEvent,
    FileSystemEventHandler,
)
from watchdog.observers.inotify import InotifyEmitter, InotifyObserver

__all__ = [
    "NETWORK_FILESYSTEMS",
    "InotifyWatcher",
    "Notify",
    "PollWatcher",
    "WatchMode",
    "Watcher",
    "filesystem_type",
    "resolve_mode",
    "start_watcher",
]

logger = logging.getLogger("promptwatch.watch")

Notify = Callable[[str, bool], None]
"""``notify(source, urgent)``: the target may have changed; ``source`` is ``inotify`` or ``poll``."""

NETWORK_FILESYSTEMS = frozenset({"nfs", "nfs4", "cifs", "smb3", "smbfs", "9p", "fuse", "fuseblk", "ceph", "glusterfs"})

DIR_GONE_RECHECK_S = 0.05


class WatchMode(enum.StrEnum):
    AUTO = "auto"
    INOTIFY = "inotify"
    POLL = "poll"


def _unescape_mountinfo(field: str) -> str:
    """Undo the kernel's octal escapes (``\\040`` space, ``\\011`` tab…) byte-wise, keeping UTF-8 intact."""
    if "\\" not in field:
        return field
    raw = re.sub(rb"\\([0-7]{3})", lambda m: bytes([int(m.group(1), 8)]), os.fsencode(field))
    return os.fsdecode(raw)


def filesystem_type(path: Path, mountinfo: Path = Path("/proc/self/mountinfo")) -> str | None:
    """The filesystem type of the mount holding ``path`` (``ext4``, ``nfs4``, ``fuse.sshfs``…)."""
    real = os.path.realpath(path)
    best, best_type = "", None
    try:
        lines = mountinfo.read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        left, _, right = line.partition(" - ")
        fields = left.split()
        if len(fields) < 5 or not right:
            continue
        mount_point = _unescape_mountinfo(fields[4])
        inside = real == mount_point or real.startswith(mount_point.rstrip("/") + "/")
        if inside and len(mount_point) >= len(best):
            best, best_type = mount_point, right.split()[0]
    return best_type


def _is_network_fs(fstype: str | None) -> bool:
    return fstype is not None and (fstype in NETWORK_FILESYSTEMS or fstype.startswith("fuse."))


def _requested_mode(requested: WatchMode | str | None) -> WatchMode:
    """The mode asked for: the argument, else ``PROMPTS_WATCH_MODE``, else ``auto`` (any case, blank = auto)."""
    raw = requested if requested is not None else os.environ.get("PROMPTS_WATCH_MODE", "auto")
    return WatchMode(str(raw).strip().lower() or "auto")


def resolve_mode(requested: WatchMode | str | None, directory: Path) -> tuple[WatchMode, str | None]:
    """Resolve the watch mode: argument → ``PROMPTS_WATCH_MODE`` → auto-detection.

    Returns the mode to try and, when auto-detection chose polling, the reason.  ``inotify`` may
    still fall back to polling in :func:`start_watcher` when the observer cannot start in ``auto``.
    """
    mode = _requested_mode(requested)
    if mode is not WatchMode.AUTO:
        return mode, None
    fstype = filesystem_type(directory)
    if _is_network_fs(fstype):
        return WatchMode.POLL, f"{directory} is on {fstype}, where inotify does not see other hosts' writes"
    return WatchMode.INOTIFY, None


Signature = tuple[int, int, int, int] | None


def _signature(path: Path) -> Signature:
    try:
        st = os.stat(path)
    except OSError:  # missing, a symlink loop, a directory on the way gone: no file to compare
        return None
    return (st.st_dev, st.st_ino, st.st_mtime_ns, st.st_size)


class Watcher(ABC):
    """Hints ``notify`` whenever ``target`` may resolve to different content."""

    mode: WatchMode

    def __init__(self, target: Path, notify: Notify, *, whole_directory: bool = False) -> None:
        self.target = Path(os.path.abspath(target))
        self.directory = self.target if whole_directory else self.target.parent
        self.whole_directory = whole_directory
        self.notify = notify
        self._stop = threading.Event()
        self._wake = threading.Event()  # cut the current wait short: stopping, or the directory is gone
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._start()
        # The baseline is taken before start() returns: a change made any time after that differs
        # from it, however late the thread gets to run.
        baseline = self._stat_signature()
        self._thread = threading.Thread(
            target=self._poll_loop, args=(baseline, time.time()), name=f"promptwatch-{self.mode}", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join()
        self._stop_backend()

    def __enter__(self) -> Watcher:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # The stat check both backends share: the whole job of polling, inotify's safety net.

    def _stat_signature(self) -> tuple[Signature, ...]:
        if self.whole_directory:
            entries: list[Signature] = [_signature(self.directory)]
            try:
                names = sorted(os.listdir(self.directory))
            except OSError:
                names = []
            entries.extend(_signature(self.directory / n) for n in names if not n.startswith(".pw-tmp-"))
            return tuple(entries)
        return (_signature(self.target),)

    def _poll_loop(self, last: tuple[Signature, ...], last_check: float) -> None:
        while True:
            self._wake.wait(self._poll_interval())
            self._wake.clear()
            if self._stop.is_set():
                return
            try:
                current = self._stat_signature()
                now = time.time()
                # A write within the timestamp granularity of the last check may leave the
                # signature unchanged ("racily clean", as git calls it): hint anyway, the
                # reloader compares hashes.
                racy = any(s is not None and s[2] / 1e9 >= last_check - 2.0 for s in current)
                if current != last or racy:
                    self.notify("poll", True)
                last, last_check = current, now
                self._maintain()
            except Exception:
                logger.exception("watch check of %s failed; will retry", self.target)

    @abstractmethod
    def _poll_interval(self) -> float: ...

    def _start(self) -> None:  # noqa: B027 - optional hook
        pass

    def _stop_backend(self) -> None:  # noqa: B027 - optional hook
        pass

    def _maintain(self) -> None:  # noqa: B027 - optional hook
        pass


class PollWatcher(Watcher):
    """Stat polling: for NFS, CIFS, FUSE, or when inotify is exhausted."""

    mode = WatchMode.POLL

    def __init__(self, target: Path, notify: Notify, *, interval: float = 1.5, whole_directory: bool = False) -> None:
        super().__init__(target, notify, whole_directory=whole_directory)
        self.interval = interval

    def _poll_interval(self) -> float:
        return self.interval


_EVENTS: list[type[FileSystemEvent]] = [
    FileMovedEvent,
    DirMovedEvent,
    FileCreatedEvent,
    DirCreatedEvent,
    FileDeletedEvent,
    DirDeletedEvent,
    FileModifiedEvent,
    FileClosedEvent,
]


class _PromptsEmitter(InotifyEmitter):
    """watchdog's inotify emitter, without holding IN_MOVED_FROM back.

    watchdog holds every IN_MOVED_FROM for up to 0.5 s to pair it with its IN_MOVED_TO, and the
    emitter thread *sleeps* on such an event when it heads the queue.  When the emitter reaches the
    MOVED_FROM of an atomic save (temp file → prompts.json) before the MOVED_TO is queued (the
    reading thread preempted between the two, as on a busy machine), the rename and everything
    behind it wait the full 0.5 s.  We react to the target's path as source *or* destination of
    any event, so pairing buys nothing here: an unpaired rename still arrives at once, as the
    deletion of the temp file and the creation of the target.  Should watchdog's internals change,
    this quietly keeps its default.
    """

    def on_thread_start(self) -> None:
        super().on_thread_start()
        grouper = getattr(self._inotify, "_move_event_grouper", None)
        queue = getattr(grouper, "_queue", None)
        if queue is not None and isinstance(getattr(queue, "delay", None), int | float):
            queue.delay = 0.0


class PromptsObserver(InotifyObserver):
    """The inotify observer with :class:`_PromptsEmitter`: renames are never held back."""

    def __init__(self) -> None:
        super().__init__()
        self._emitter_class = _PromptsEmitter


class _Handler(FileSystemEventHandler):
    def __init__(self, watcher: InotifyWatcher) -> None:
        self.watcher = watcher

    def dispatch(self, event: FileSystemEvent) -> None:
        self.watcher._on_event(event)


_PARENT_EVENTS: list[type[FileSystemEvent]] = [
    DirMovedEvent,
    FileMovedEvent,
    DirCreatedEvent,
    FileCreatedEvent,
    DirDeletedEvent,
    FileDeletedEvent,
]


class _ParentHandler(FileSystemEventHandler):
    def __init__(self, watcher: InotifyWatcher) -> None:
        self.watcher = watcher

    def dispatch(self, event: FileSystemEvent) -> None:
        self.watcher._on_parent_event(event)


class InotifyWatcher(Watcher):
    """inotify on the directory, with a slow stat check against dropped events."""

    mode = WatchMode.INOTIFY

    def __init__(
        self,
        target: Path,
        notify: Notify,
        *,
        safety_interval: float = 30.0,
        whole_directory: bool = False,
        observer_factory: Callable[[], Any] = PromptsObserver,
    ) -> None:
        super().__init__(target, notify, whole_directory=whole_directory)
        self.safety_interval = safety_interval
        self._observer_factory = observer_factory
        self._observer: Any = None
        self._watch: Any = None
        self._dir_identity: tuple[int, int] | None = None
        self._dir_gone = threading.Event()
        self._lock = threading.Lock()

    def _poll_interval(self) -> float:
        return DIR_GONE_RECHECK_S if self._dir_gone.is_set() else self.safety_interval

    def _start(self) -> None:
        self._observer = self._observer_factory()
        self._observer.start()  # raises OSError on ENOSPC/EMFILE (watch or instance limit)
        try:
            self._schedule()
        except BaseException:
            self._stop_backend()
            raise
        self._schedule_parent()

    def _schedule_parent(self) -> None:
        """Also watch the parent for the directory itself being renamed away, replaced or removed.

        A directory moved away (``mv conf conf.old && mv conf.new conf``) takes its inotify watch with
        it and says nothing on its own; its parent sees both renames.  Without this watch, only the
        slow safety check would notice.
        """
        parent = self.directory.parent
        if parent == self.directory:
            return
        try:
            self._observer.schedule(_ParentHandler(self), str(parent), event_filter=_PARENT_EVENTS)
        except OSError as e:
            logger.warning("cannot watch %s (%s); a replaced %s waits for the safety check", parent, e, self.directory)

    def _schedule(self) -> None:
        st = os.stat(self.directory)
        self._watch = self._observer.schedule(_Handler(self), str(self.directory), event_filter=_EVENTS)
        self._dir_identity = (st.st_dev, st.st_ino)
        self._dir_gone.clear()

    def _stop_backend(self) -> None:
        if self._observer is not None:
            self._observer.stop()
            if self._observer.is_alive():
                self._observer.join()
            self._observer = None

    def _relevant(self, path: str | bytes) -> bool:
        if not path:
            return False
        path = os.fsdecode(path)
        if self.whole_directory or self._target_is_link:
            return os.path.basename(path).startswith(".pw-tmp-") is False
        return path == str(self.target)

    @property
    def _target_is_link(self) -> bool:
        return os.path.islink(self.target)

    def _on_event(self, event: FileSystemEvent) -> None:
        if isinstance(event, DirDeletedEvent) and os.fsdecode(event.src_path) == str(self.directory):
            logger.warning("watched directory %s was removed; waiting for it to come back", self.directory)
            self._dir_gone.set()
            self._wake.set()  # the check loop may be in its 30 s wait: recheck every 50 ms from now on
            self.notify("inotify", True)
            return
        if isinstance(event, FileModifiedEvent):
            if self._relevant(event.src_path):
                self.notify("inotify", False)
            return
        dest = getattr(event, "dest_path", "")
        if self._relevant(event.src_path) or self._relevant(dest):
            self.notify("inotify", True)

    def _on_parent_event(self, event: FileSystemEvent) -> None:
        paths = {os.fsdecode(event.src_path), os.fsdecode(getattr(event, "dest_path", "") or "")}
        if str(self.directory) in paths:
            logger.info("watched directory %s was moved, replaced or removed", self.directory)
            self._dir_gone.set()
            self._wake.set()  # re-establish the watch on the next 50 ms check
            self.notify("inotify", True)

    def _maintain(self) -> None:
        """Re-establish the watch when the directory was removed, replaced or recreated."""
        try:
            st = os.stat(self.directory)
        except (FileNotFoundError, NotADirectoryError):
            self._dir_gone.set()
            return
        if self._dir_identity == (st.st_dev, st.st_ino) and not self._dir_gone.is_set():
            return
        with self._lock:
            if self._watch is not None:
                try:
                    self._observer.unschedule(self._watch)
                except KeyError:
                    pass
                self._watch = None
            self._schedule()
        logger.info("watching %s again (directory recreated)", self.directory)
        self.notify("inotify", True)


def start_watcher(
    target: Path,
    notify: Notify,
    *,
    mode: WatchMode | str | None = None,
    interval: float = 1.5,
    safety_interval: float = 30.0,
    whole_directory: bool = False,
    observer_factory: Callable[[], Any] = PromptsObserver,
) -> Watcher:
    """Start the watcher ``mode`` asks for; ``auto`` falls back to polling (and logs why)."""
    directory = Path(target) if whole_directory else Path(target).parent
    resolved, reason = resolve_mode(mode, directory)
    if resolved is WatchMode.POLL:
        if reason:
            logger.warning("watching %s by polling every %.0f ms: %s", target, interval * 1000, reason)
        watcher: Watcher = PollWatcher(target, notify, interval=interval, whole_directory=whole_directory)
        watcher.start()
        return watcher
    inotify = InotifyWatcher(
        target,
        notify,
        safety_interval=safety_interval,
        whole_directory=whole_directory,
        observer_factory=observer_factory,
    )
    try:
        inotify.start()
        return inotify
    except OSError as e:
        if _requested_mode(mode) is WatchMode.INOTIFY:  # demanded, not auto-detected: an error
            raise
        logger.warning(
            "inotify cannot watch %s (%s); falling back to polling every %.0f ms",
            directory,
            e.strerror or e,
            interval * 1000,
        )
    watcher = PollWatcher(target, notify, interval=interval, whole_directory=whole_directory)
    watcher.start()
    return watcher
