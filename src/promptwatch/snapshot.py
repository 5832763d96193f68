"""Hot prompts: an immutable snapshot, published with one reference assignment, last known good.

prompts = HotPrompts("/etc/metrotech/prompts.json", service="metrotech-bot")
snap = prompts.current          # lock-free; pin it for a whole call
snap.prompts.greeting, snap.sha256, snap.source
prompts.on_reload(lambda old, new: ...)
prompts.reload("signal")        # SIGHUP
prompts.close()
"""

from __future__ import annotations

import logging
import os
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from .atomic import read_content
from .errors import DocumentError, PromptwatchError, StartupError, UnsafeFileError
from .reload import Reloader
from .schema import MAX_DOCUMENT_BYTES, Prompts, parse_document, sha256_hex
from .status import (
    ConsumerStatus,
    default_status_dir,
    process_start_ticks,
    remove_status,
    software_version,
    write_status,
)
from .watch import WatchMode

if TYPE_CHECKING:
    from .settings import PromptsSettings

__all__ = ["ErrorCallback", "HotPrompts", "ReloadCallback", "Snapshot", "Source"]

logger = logging.getLogger("promptwatch")

SETTLE_SECONDS = 0.5
"""How long a file that only modify events announced may stay invalid before it is reported."""

Source = Literal["startup", "inotify", "poll", "signal", "manual"]


@dataclass(frozen=True, slots=True)
class Snapshot:
    """One validated version of the prompts.  Never mutated: a reload makes a new one."""

    prompts: Prompts
    sha256: str
    size: int
    mtime: float
    loaded_at: float
    source: str
    path: Path

    @property
    def short(self) -> str:
        return self.sha256[:8]


ReloadCallback = Callable[[Snapshot, Snapshot], None]
ErrorCallback = Callable[[str, str | None, str], None]
"""``on_error(message, rejected_sha256 or None, source)``"""


class HotPrompts(Reloader[Snapshot]):
    """Keeps the current :class:`Snapshot` of a prompts file, reloading it on every change."""

    def __init__(
        self,
        path: Path | str,
        *,
        service: str | None = None,
        status_dir: Path | None = None,
        hot_reload: bool = True,
        mode: WatchMode | str | None = None,
        interval: float = 1.5,
        safety_interval: float = 30.0,
        limit: int = MAX_DOCUMENT_BYTES,
        on_reload: ReloadCallback | None = None,
    ) -> None:
        super().__init__(
            Path(os.path.abspath(path)),
            hot_reload=hot_reload,
            mode=mode,
            interval=interval,
            safety_interval=safety_interval,
        )
        self.service = service
        self.status_dir = (status_dir or default_status_dir()) if service else None
        self.limit = limit
        self.last_error: str | None = None
        self._bad_sha: str | None = None
        self._missing_warned = False
        if on_reload is not None:
            self._callbacks.append(on_reload)
        self._error_callbacks: list[ErrorCallback] = []
        self._started_at = time.time()
        self._proc_start = process_start_ticks(os.getpid())
        try:
            data, mtime, size = self._read()
            if data is None:
                raise StartupError(f"{self.path}: prompts file not found")
            prompts = parse_document(data, source=str(self.path), limit=limit, size=size)
        except DocumentError as e:
            raise StartupError(f"invalid prompts at startup: {e}") from e
        except UnsafeFileError as e:
            raise StartupError(f"cannot read prompts: {e}") from e
        except OSError as e:
            raise StartupError(f"{self.path}: cannot read prompts: {e.strerror}") from e
        self._snapshot = Snapshot(prompts, sha256_hex(data), len(data), mtime, time.time(), "startup", self.path)
        logger.info("prompts loaded sha=%s source=startup bytes=%d path=%s", self._snapshot.short, len(data), self.path)
        try:
            self._start_watching()
        except OSError as e:
            raise StartupError(f"cannot watch {self.path.parent}: {e.strerror or e}") from e
        except ValueError as e:  # an unknown watch mode (argument or PROMPTS_WATCH_MODE)
            raise StartupError(f"cannot watch {self.path.parent}: {e}") from e
        self._publish_status()

    @classmethod
    def from_settings(
        cls,
        settings: PromptsSettings,
        *,
        service: str | None,
        path: Path | str | None = None,
        mode: WatchMode | str | None = None,
        interval: float | None = None,
        on_reload: ReloadCallback | None = None,
    ) -> HotPrompts:
        """The watcher every process builds from the shared settings (``path``/``mode``/``interval`` override)."""
        return cls(
            settings.prompts_path if path is None else path,
            service=service,
            status_dir=settings.prompts_status_dir,
            hot_reload=settings.prompts_hot_reload,
            mode=settings.prompts_watch_mode if mode is None else mode,
            interval=settings.reload_interval if interval is None else interval,
            safety_interval=settings.prompts_safety_interval_ms / 1000,
            limit=settings.prompts_max_bytes,
            on_reload=on_reload,
        )

    def on_error(self, callback: ErrorCallback) -> ErrorCallback:
        """Call ``callback(message, sha, source)`` when a changed file is rejected (once per content)."""
        self._error_callbacks.append(callback)
        return callback

    def _read(self) -> tuple[bytes | None, float, int]:
        """The content (at most ``limit + 1`` bytes), its mtime and the file's size; never blocks."""
        content = read_content(self.path, limit=self.limit)
        if content is None:
            return None, 0.0, 0
        return content.data, content.stat.st_mtime, content.size

    def _load(self, source: str, hint_at: float | None) -> bool:
        try:
            data, mtime, size = self._read()
        except UnsafeFileError as e:  # a FIFO, directory, device, symlink loop: reported once, like bad content
            self._fail(str(e), None, source)
            return False
        except OSError as e:
            self._fail(f"{self.path}: cannot read: {e.strerror}", None, source)
            return False
        if data is None:
            if not self._missing_warned:
                self._missing_warned = True
                self.last_error = f"{self.path}: file is missing; running on the last good prompts"
                logger.warning("prompts file %s is missing; keeping sha=%s", self.path, self._snapshot.short)
                self._publish_status()
            return False
        self._missing_warned = False
        sha = sha256_hex(data)
        if sha == self._snapshot.sha256:
            if self.last_error is not None:
                self._clear_error()
            return False
        try:
            prompts = parse_document(data, source=str(self.path), limit=self.limit, size=size)
        except DocumentError as e:
            if not self.settled and sha != self._bad_sha:
                # Only modify events so far: an editor may still be writing.  Look again once it
                # has had time to close the file; report only what is still broken then.
                logger.debug("prompts file %s looks mid-write (%s); checking again", self.path, e)
                self._recheck_later(SETTLE_SECONDS)
                return False
            self._fail(str(e), sha, source)
            return False
        new = Snapshot(prompts, sha, len(data), mtime, time.time(), source, self.path)
        self.last_error = self._bad_sha = None  # before publishing: whoever sees the new snapshot sees no error
        old = self._publish(new)
        latency_ms = (time.monotonic() - hint_at) * 1000 if hint_at is not None else 0.0
        logger.info(
            "prompts reloaded sha=%s source=%s bytes=%d latency_ms=%.1f previous=%s",
            new.short,
            source,
            len(data),
            latency_ms,
            old.short,
        )
        self._publish_status()
        self._notify_reload(old, new)
        return True

    def _fail(self, message: str, sha: str | None, source: str) -> None:
        key = sha if sha is not None else message  # a read error has no content: its message stands in
        if key == self._bad_sha:
            return  # already reported this content (or this read error)
        self._bad_sha = key
        self.last_error = message
        logger.error("prompts rejected, keeping sha=%s source=%s: %s", self._snapshot.short, source, message)
        self._publish_status()
        for callback in list(self._error_callbacks):
            try:
                callback(message, sha, source)
            except Exception:
                logger.exception("on_error callback %r failed", callback)

    def _clear_error(self) -> None:
        self.last_error = self._bad_sha = None
        logger.info("prompts file is valid again sha=%s", self._snapshot.short)
        self._publish_status()

    def status(self) -> ConsumerStatus:
        snap = self._snapshot
        return ConsumerStatus(
            service=self.service or "promptwatch",
            pid=os.getpid(),
            path=str(self.path),
            sha256=snap.sha256,
            loaded_at=snap.loaded_at,
            source=snap.source,
            mode=self.mode,
            last_error=self.last_error,
            updated_at=time.time(),
            started_at=self._started_at,
            hostname=socket.gethostname(),
            proc_start=self._proc_start,
            version=software_version(),
        )

    def _publish_status(self) -> None:
        if self.status_dir is None:
            return
        try:
            write_status(self.status_dir, self.status())
        except (OSError, PromptwatchError) as e:
            logger.warning("cannot publish status to %s: %s", self.status_dir, e)

    def close(self) -> None:
        super().close()
        if self.status_dir is not None and self.service:
            remove_status(self.status_dir, self.service, os.getpid())

    def __enter__(self) -> HotPrompts:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
