"""Saving the prompts from the panel: validate, write atomically and conditionally, record the revision.

The panel runs its own :class:`~promptwatch.HotPrompts` on the file.  Each reload it sees brings the
history up to date with the disk, so saves made outside the panel (``promptwatch write``, a hand
edit) become revisions with author ``file``.  A panel save holds one lock while it records the
content it replaces (if not yet recorded), writes, and records the new content, so the history
keeps the order of what happened on disk.
"""

from __future__ import annotations

import logging
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
    parse_document,
    sha256_hex,
    write_document,
)
from promptwatch.atomic import read_bytes, read_content

from .cluster import Cluster
from .history import HistoryStore, Revision
from .settings import AdminSettings

__all__ = ["DiskState", "EditorError", "PromptsEditor", "SaveResult", "normalize"]

logger = logging.getLogger("adminapi.editor")

FILE_AUTHOR = "file"
_MISSING = object()


class EditorError(Exception):
    """A save that cannot be done for a reason other than the document (409)."""


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


def normalize(data: bytes, *, limit: int) -> bytes:
    """Validate a document and re-serialise it (2-space indent, UTF-8, trailing newline) for readable diffs."""
    parse_document(data, source="request body", limit=limit)
    return orjson.dumps(orjson.loads(data), option=orjson.OPT_INDENT_2) + b"\n"


def _dump(obj: dict[str, Any]) -> bytes:
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
    ) -> None:
        self.settings = settings
        self.cluster = cluster
        """With Redis: where each content was made, and the edits that lost on other hosts."""
        self.path: Path = settings.prompts_file
        self.history = history
        self.limit = limit if limit is not None else settings.prompts_max_bytes
        self.hot: HotPrompts | None = None
        self._lock = threading.RLock()
        self._closed = False
        self._last_read: DiskState | None = None

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
                hot = HotPrompts.from_settings(self.settings, service=self.settings.admin_service_name, path=self.path)
            except StartupError as e:
                logger.error("not watching the prompts yet: %s", e)
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
        """Record the content on disk as a revision (author ``file``) unless it is already the newest one."""
        with self._lock:
            state = self.read()
            if state.data is None or state.prompts is None:
                return None
            host = self._host_of(state.sha256)
            rev = self.history.add_if_changed(state.data, author=FILE_AUTHOR, origin="file", message=message, host=host)
        if rev is not None:
            logger.info("history: recorded sha=%s from the file (%s)", rev.sha256[:12], message)
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
            rev = self.history.add_conflict(
                c["data"].encode(), host=str(c["host"]), message=message, created_at=float(c["at"])
            )
            if rev is not None:
                logger.error(
                    "history: kept the edit sha=%s made on host %s as a conflict revision (it lost to version %s)",
                    rev.sha256[:12],
                    rev.host,
                    c["winner_version"],
                )

    # -- writing ---------------------------------------------------------------------------------

    def save(
        self, data: bytes, *, if_match: str | None, author: str, origin: str = "api", message: str = ""
    ) -> SaveResult:
        """Validate and write ``data`` (when the file still has ``if_match``), then record it.

        Raises :class:`DocumentError` (invalid, too large) or :class:`ConflictError` (stale ``if_match``);
        the file is untouched in both cases.
        """
        with self._lock:
            self.sync_history()
            before = read_bytes(self.path, limit=self.limit)
            written_at = time.time()
            sha, _ = write_document(self.path, data, if_match=if_match, limit=self.limit, source=str(self.path))
            rev = self.history.add_if_changed(
                data, author=author, origin=origin, message=message, host=self.settings.prompts_host
            )
        self._ensure_watching()
        logger.info("saved sha=%s bytes=%d by %s (%s)", sha[:12], len(data), author, origin)
        previous = sha256_hex(before) if before is not None else None
        return SaveResult(sha, len(data), previous, written_at, rev)

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
        raise EditorError(f"{self.path}: changing too often to patch {key!r}; try again")

    def rollback(self, sha: str, *, if_match: str | None, author: str) -> SaveResult | None:
        """Write the content of revision ``sha`` as a new revision; None when there is no such revision."""
        found = self.history.find(sha)
        if found is None:
            return None
        rev, data = found
        return self.save(
            data, if_match=if_match, author=author, origin="rollback", message=f"откат к {rev.sha256[:12]}"
        )
