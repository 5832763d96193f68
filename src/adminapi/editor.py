"""Saving the prompts from the panel: validate, write atomically and conditionally, record the revision.

The panel runs its own :class:`~promptwatch.HotPrompts` on the file.  Each reload it sees brings the
history up to date with the disk, so saves made outside the panel (``promptwatch write``, a hand
edit) become revisions with author ``file``.  A panel save holds one lock while it records the
content it replaces (if not yet recorded), writes, and records the new content, so the history
keeps the order of what happened on disk.

One save, one outcome: once the new prompts are on disk they are live, so a history that cannot be
written (a full state dir) does not turn the save into an error.  The save reports it as a warning,
and the history is repaired from the disk as soon as it can be written again (:meth:`repair_history`),
with the author, origin and message of the save when the disk still holds what that save wrote.
"""

from __future__ import annotations

import contextlib
import logging
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from promptwatch import (
    ConflictError,
    DocumentError,
    HotPrompts,
    Prompts,
    StartupError,
    UnsafeFileError,
    WriteError,
    parse_document,
    sha256_hex,
    write_document,
)
from promptwatch.atomic import file_lock, read_bytes, read_content
from promptwatch.labels import PRODUCTION, label_path
from promptwatch.promotion import Promotion, promote, promotion_message

from .cluster import Cluster
from .history import HistoryStore, Revision
from .settings import AdminSettings

__all__ = ["DiskState", "EditorBusyError", "EditorError", "PromptsEditor", "SaveResult"]

logger = logging.getLogger("adminapi.editor")

FILE_AUTHOR = "file"
_MISSING = object()


class EditorError(Exception):
    """A patch that cannot be applied to the file on disk (no file, not a JSON object): save the whole document."""


class EditorBusyError(EditorError):
    """The file kept changing while a patch was being applied."""


@dataclass(frozen=True)
class DiskState:
    """The prompts file as it is now: bytes and sha256, and the validated prompts or the error.

    ``readable`` is False when something is at the path that cannot be read (a FIFO, a directory, a
    symlink loop or one leaving the directory, EACCES): ``error`` says what.
    """

    data: bytes | None
    sha256: str | None
    prompts: Prompts | None
    error: str | None
    readable: bool = True


@dataclass(frozen=True)
class SaveResult:
    sha256: str
    size: int
    previous_sha256: str | None
    written_at: float
    revision: Revision | None
    warnings: tuple[str, ...] = ()
    """What went wrong after the prompts were written (they are live): the history could not record them."""


@dataclass(frozen=True)
class _Pending:
    """A save the history could not record yet: who made it, how and why."""

    author: str
    origin: str
    message: str


def _dump(obj: dict[str, Any]) -> bytes:
    """A patched document as written: 2-space indent, UTF-8, trailing newline (readable diffs).

    A whole document (PUT) is written as the operator sent it; only a patch needs serialising."""
    return orjson.dumps(obj, option=orjson.OPT_INDENT_2) + b"\n"


class PromptsEditor:
    """The panel's view of one prompts file: reads, saves, patches, rollbacks, and the history they leave."""

    def __init__(
        self,
        settings: AdminSettings,
        history: HistoryStore,
        *,
        limit: int | None = None,
        cluster: Cluster | None = None,
        label: str = PRODUCTION,
    ) -> None:
        self.settings = settings
        self.cluster = cluster
        """With Redis: where each content was made, and the edits that lost on other hosts."""
        self.label = label
        self.path: Path = label_path(settings.prompts_file, label)
        self.history = history
        self.limit = limit if limit is not None else settings.prompts_max_bytes
        self.hot: HotPrompts | None = None
        self._lock = threading.RLock()
        self._closed = False
        self._last_read: DiskState | None = None
        self._pending: dict[str, _Pending] = {}
        """sha256 → the saves written to disk whose revision is still missing from the history."""
        self.history_broken: str | None = None
        """Why the history could not be written, until it is repaired."""

    # -- lifecycle -------------------------------------------------------------------------------

    def start(self) -> None:
        """Start watching (when the file is valid) and record what is on disk as the first revision."""
        self._ensure_watching()
        self.sync_history(message="на диске при запуске панели")
        self.record_conflicts()

    def _ensure_watching(self) -> None:
        if self.hot is not None or self._closed or not self.settings.prompts_hot_reload:
            return
        with self._lock:
            if self.hot is not None or self._closed:
                return
            try:
                hot = HotPrompts.from_settings(
                    self.settings, service=self.settings.admin_service_name, path=self.path, label=self.label
                )
            except StartupError as e:
                if self.path.exists():
                    logger.error("not watching the prompts yet: %s", e)
                else:  # a label being created: watched once its first save has written it
                    logger.info("not watching %s yet: no such file", self.path)
                return
            hot.on_reload(lambda old, new: self._on_reload())
            self.hot = hot

    def _on_reload(self) -> None:
        self.sync_history()
        self.record_conflicts()

    def close(self) -> None:
        with self._lock:
            self._closed = True
            hot, self.hot = self.hot, None
        if hot is not None:
            hot.close()

    # -- reading ---------------------------------------------------------------------------------

    def read(self) -> DiskState:
        """The file as it is on disk right now: read and hashed on every call, never a cached copy.

        Only the validation is remembered, for the last content seen (same sha256, same verdict).
        """
        try:
            content = read_content(self.path, limit=self.limit)  # never blocks, at most limit + 1 bytes
        except UnsafeFileError as e:
            return DiskState(None, None, None, str(e), readable=False)
        except OSError as e:
            return DiskState(None, None, None, f"{self.path}: cannot read: {e.strerror or e}", readable=False)
        if content is None:
            return DiskState(None, None, None, f"{self.path}: no such file")
        data = content.data
        sha = sha256_hex(data)
        last = self._last_read
        if last is not None and last.sha256 == sha:
            return last
        try:
            prompts = parse_document(data, source=str(self.path), limit=self.limit, size=content.size)
        except DocumentError as e:
            state = DiskState(data, sha, None, str(e))
        else:
            state = DiskState(data, sha, prompts, None)
        self._last_read = state  # one reference assignment: safe to share between threads
        return state

    def last_good(self) -> bytes | None:
        """The newest valid content known (the history's latest revision)."""
        latest = self.history.latest()
        if latest is None:
            return None
        found = self.history.find(latest.sha256)
        return found[1] if found else None

    def sync_history(self, *, message: str = "изменено вне панели") -> Revision | None:
        """Record the content on disk as a revision unless it is already the newest one.

        The author is ``file``, or the operator whose save wrote that content when the history could
        not record it then.  A history that cannot be written is logged (once per reason) and left for
        :meth:`repair_history`; this never raises for it (it runs on the watcher's reloads too).

        Under the file's write lock: a writer that records its own revision under that lock
        (``promptwatch promote``) has done so before this looks, so its change is not recorded twice.
        """
        with self._lock, contextlib.ExitStack() as locked:
            try:
                locked.enter_context(file_lock(self.path))
            except WriteError as e:  # no directory (yet), or not ours to write: read without the lock
                logger.debug("history sync without the write lock: %s", e)
            state = self.read()
            if state.data is None or state.sha256 is None or state.prompts is None:
                return None
            pending = self._pending.get(state.sha256)
            author, origin = (pending.author, pending.origin) if pending else (FILE_AUTHOR, "file")
            note = pending.message if pending else message
            host = self.settings.prompts_host if pending else self._host_of(state.sha256)
            try:
                rev = self.history.add_if_changed(state.data, author=author, origin=origin, message=note, host=host)
            except sqlite3.Error as e:
                self._history_failed(e)
                return None
            if self.history_broken is not None:
                logger.warning("history: writable again (%s), repaired from the file on disk", self.history.path)
            self.history_broken = None
            self._pending.clear()
        if rev is not None:
            logger.info("history: recorded sha=%s from the file (%s)", rev.sha256[:12], note)
        return rev

    def _host_of(self, sha: str | None) -> str:
        """Where the content on disk was made: another host when the sync agent brought it, else this one."""
        found = self.cluster.origin_host(sha) if self.cluster is not None and sha else None
        return found or self.settings.prompts_host

    def record_conflicts(self) -> None:
        """Keep every recent conflict of the prompts (from any host) as a revision of origin ``conflict``."""
        if self.cluster is None:
            return
        for c in reversed(self.cluster.conflicts()):  # oldest first
            message = f"конфликт: уступила версии {c['winner_version']} с хоста {c['winner_host']}"
            try:
                rev = self.history.add_conflict(
                    c["data"].encode(), host=str(c["host"]), message=message, created_at=float(c["at"])
                )
            except sqlite3.Error as e:
                self._history_failed(e)
                return
            if rev is not None:
                logger.error(
                    "history: kept the edit sha=%s made on host %s as a conflict revision (it lost to version %s)",
                    rev.sha256[:12],
                    rev.host,
                    c["winner_version"],
                )

    def repair_history(self) -> None:
        """Bring the history up to date with the disk when an earlier write of it failed."""
        if self.history_broken is not None:
            self.sync_history()

    def _history_failed(self, e: sqlite3.Error) -> str:
        reason = f"the history ({self.history.path}) cannot be written: {e}"
        if reason != self.history_broken:
            logger.error("%s; it will be repaired from the prompts file when it can be written again", reason)
        self.history_broken = reason
        return reason

    # -- writing ---------------------------------------------------------------------------------

    def save(
        self, data: bytes, *, if_match: str | None, author: str, origin: str = "api", message: str = ""
    ) -> SaveResult:
        """Validate and write ``data`` (when the file still has ``if_match``), then record it.

        Raises :class:`DocumentError` (invalid, too large) or :class:`ConflictError` (stale ``if_match``);
        the file is untouched in both cases.
        """
        warnings: list[str] = []
        with self._lock:
            self.sync_history()
            before = read_bytes(self.path, limit=self.limit)
            written_at = time.time()
            sha, _ = write_document(self.path, data, if_match=if_match, limit=self.limit, source=str(self.path))
            try:
                rev = self.history.add_if_changed(
                    data, author=author, origin=origin, message=message, host=self.settings.prompts_host
                )
            except sqlite3.Error as e:
                rev = None
                self._pending[sha] = _Pending(author, origin, message)
                reason = self._history_failed(e)
                warnings.append(f"the prompts are saved and live, but {reason}; it will be repaired from the file")
        self._ensure_watching()
        logger.info("saved sha=%s bytes=%d by %s (%s)", sha[:12], len(data), author, origin)
        previous = sha256_hex(before) if before is not None else None
        return SaveResult(sha, len(data), previous, written_at, rev, tuple(warnings))

    def patch(
        self, key: str, value: Any, *, remove: bool, if_match: str | None, author: str, message: str = ""
    ) -> SaveResult:
        """Change (or remove) one prompt.  With ``if_match``, conflict only when *that key* changed since."""
        for _attempt in range(10):
            state = self.read()
            if state.data is None or state.sha256 is None:
                raise EditorError(f"{self.path}: no such file; save the whole document first")
            try:
                current = orjson.loads(state.data)
            except orjson.JSONDecodeError:
                current = None
            if not isinstance(current, dict):
                raise EditorError(f"{self.path}: the file on disk is not a JSON object; save the whole document")
            if if_match is not None and if_match != state.sha256:
                found = self.history.find(if_match) if len(if_match) == 64 else None
                base = orjson.loads(found[1]) if found else None
                if not isinstance(base, dict) or base.get(key, _MISSING) != current.get(key, _MISSING):
                    raise ConflictError(str(self.path), expected=if_match, current=state.sha256)
            updated = dict(current)
            if remove:
                updated.pop(key, None)
            else:
                updated[key] = value
            data = _dump(updated)
            try:
                return self.save(data, if_match=state.sha256, author=author, origin="patch", message=message)
            except ConflictError:
                continue  # written meanwhile: decide again against the new content
        raise EditorBusyError(f"{self.path}: changing too often to patch {key!r}; try again")

    def promote_from(
        self, src: str, *, if_match: str | None, author: str, origin: str = "promote", message: str | None = None
    ) -> SaveResult:
        """Write the label ``src``'s exact bytes here (conditionally on ``if_match``), recorded in this
        label's history as a promotion from ``src`` at its sha256 (see :func:`promptwatch.promote`)."""
        recorded: list[Revision] = []
        warnings: list[str] = []

        def record(p: Promotion) -> None:  # under the file's lock, the bytes in place: must not raise
            note = message if message is not None else promotion_message(p.src, p.sha256)
            try:
                recorded.append(self.history.add(p.data, author=author, origin=origin, message=note))
            except sqlite3.Error as e:
                self._pending[p.sha256] = _Pending(author, origin, note)
                reason = self._history_failed(e)
                warnings.append(f"the prompts are promoted and live, but {reason}; it will be repaired from the file")

        with self._lock:
            self.sync_history()
            written_at = time.time()
            done = promote(
                self.settings.prompts_file, src, self.label, if_match=if_match, limit=self.limit, record=record
            )
        self._ensure_watching()
        logger.info("promoted %s sha=%s to %s by %s", src, done.sha256[:12], self.label, author)
        rev = recorded[0] if recorded else None
        return SaveResult(done.sha256, done.size, done.previous_sha256, written_at, rev, tuple(warnings))

    def rollback(self, sha: str, *, if_match: str | None, author: str) -> SaveResult | None:
        """Write the content of revision ``sha`` as a new revision; None when there is no such revision."""
        found = self.history.find(sha)
        if found is None:
            return None
        rev, data = found
        return self.save(
            data, if_match=if_match, author=author, origin="rollback", message=f"откат к {rev.sha256[:12]}"
        )
