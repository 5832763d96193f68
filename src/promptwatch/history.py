"""Revisions of a prompts document in SQLite: who saved what, when, and the exact bytes.

A revision is appended for every save through the panel, every rollback and promotion, and every
change made outside the panel (``promptwatch write``, a hand edit) once the panel's watcher sees it;
the content found on disk when the panel starts is recorded too, so the very first save can be
undone.  Only the newest ``retention`` revisions are kept; contents are stored once per sha256.
Each label keeps its own history (:func:`history_file`), so a label's rollback never sees another
label's versions.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from .labels import PRODUCTION, check_label
from .schema import sha256_hex

__all__ = ["HistoryStore", "Revision", "history_file"]


def history_file(state_dir: Path, label: str = PRODUCTION) -> Path:
    """The history database of ``label``: ``history.sqlite3`` for production, ``history.LABEL.sqlite3``."""
    check_label(label)
    return state_dir / ("history.sqlite3" if label == PRODUCTION else f"history.{label}.sqlite3")


_SCHEMA = """
CREATE TABLE IF NOT EXISTS contents (
    sha256 TEXT PRIMARY KEY,
    data   BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS revisions (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    sha256     TEXT NOT NULL REFERENCES contents (sha256),
    created_at REAL NOT NULL,
    author     TEXT NOT NULL,
    origin     TEXT NOT NULL,
    message    TEXT NOT NULL DEFAULT '',
    size       INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS revisions_sha ON revisions (sha256);
"""


@dataclass(frozen=True)
class Revision:
    """One recorded version.  ``origin``: ``api``, ``patch``, ``rollback``, ``promote``, ``copy``, ``file``
    (outside the panel) or ``conflict`` (an edit on some host that lost to a newer version: kept, never the
    current one)."""

    id: int
    sha256: str
    created_at: float
    author: str
    origin: str
    message: str
    size: int
    host: str = ""
    """``PROMPTS_HOST`` of the host where the edit was made (empty: recorded before hosts were kept)."""


class HistoryStore:
    """The revision history of one prompts file; safe to share between threads."""

    def __init__(self, path: Path, *, retention: int = 100) -> None:
        self.path = path
        self.retention = retention
        path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None, timeout=10.0)
        self._db.row_factory = sqlite3.Row
        self._db.execute("PRAGMA journal_mode = WAL")
        self._db.execute("PRAGMA synchronous = NORMAL")
        self._db.executescript(_SCHEMA)
        columns = {row[1] for row in self._db.execute("PRAGMA table_info(revisions)")}
        if "host" not in columns:  # a history made before several hosts: its revisions have no host
            self._db.execute("ALTER TABLE revisions ADD COLUMN host TEXT NOT NULL DEFAULT ''")

    @staticmethod
    def _revision(row: sqlite3.Row) -> Revision:
        return Revision(**{k: row[k] for k in row.keys()})

    def latest(self) -> Revision | None:
        """The newest revision that was on disk (a conflict revision never was, on this host at least)."""
        with self._lock:
            row = self._db.execute(
                "SELECT * FROM revisions WHERE origin != 'conflict' ORDER BY id DESC LIMIT 1"
            ).fetchone()
        return self._revision(row) if row else None

    def add_conflict(self, data: bytes, *, host: str, message: str, created_at: float) -> Revision | None:
        """Keep an edit that lost to a newer version on another host (origin ``conflict``), once."""
        with self._lock:
            seen = self._db.execute(
                "SELECT 1 FROM revisions WHERE sha256 = ? AND origin = 'conflict'", (sha256_hex(data),)
            ).fetchone()
        if seen:
            return None
        return self.add(data, author=host, origin="conflict", message=message, created_at=created_at, host=host)

    def add(
        self,
        data: bytes,
        *,
        author: str,
        origin: str,
        message: str = "",
        created_at: float | None = None,
        host: str = "",
    ) -> Revision:
        """Append a revision with ``data`` and prune beyond the retention."""
        sha = sha256_hex(data)
        now = time.time() if created_at is None else created_at
        with self._lock, self._db:
            self._db.execute("BEGIN IMMEDIATE")
            self._db.execute("INSERT OR IGNORE INTO contents (sha256, data) VALUES (?, ?)", (sha, data))
            cur = self._db.execute(
                "INSERT INTO revisions (sha256, created_at, author, origin, message, size, host)"
                " VALUES (?, ?, ?, ?, ?, ?, ?)",
                (sha, now, author, origin, message, len(data), host),
            )
            rev_id = cur.lastrowid
            assert rev_id is not None
            self._db.execute(
                "DELETE FROM revisions WHERE id NOT IN (SELECT id FROM revisions ORDER BY id DESC LIMIT ?)",
                (self.retention,),
            )
            self._db.execute("DELETE FROM contents WHERE sha256 NOT IN (SELECT sha256 FROM revisions)")
        return Revision(rev_id, sha, now, author, origin, message, len(data), host)

    def add_if_changed(
        self, data: bytes, *, author: str, origin: str, message: str = "", host: str = ""
    ) -> Revision | None:
        """Append ``data`` unless it is already the newest revision."""
        latest = self.latest()
        if latest is not None and latest.sha256 == sha256_hex(data):
            return None
        return self.add(data, author=author, origin=origin, message=message, host=host)

    def list(self, *, limit: int = 50, offset: int = 0) -> tuple[list[Revision], int]:
        """Revisions newest first, and how many there are."""
        with self._lock:
            total = self._db.execute("SELECT COUNT(*) FROM revisions").fetchone()[0]
            rows = self._db.execute(
                "SELECT * FROM revisions ORDER BY id DESC LIMIT ? OFFSET ?", (limit, offset)
            ).fetchall()
        return [self._revision(r) for r in rows], int(total)

    def find(self, sha: str) -> tuple[Revision, bytes] | None:
        """The newest revision whose sha256 is ``sha`` (or starts with it, 7+ hex digits) and its content."""
        sha = sha.lower()
        if len(sha) < 7 or any(c not in "0123456789abcdef" for c in sha):
            return None
        with self._lock:
            row = self._db.execute(
                "SELECT r.*, c.data FROM revisions r JOIN contents c USING (sha256)"
                " WHERE r.sha256 >= ? AND r.sha256 < ? ORDER BY r.id DESC LIMIT 1",
                (sha, sha + "g"),
            ).fetchone()
        if row is None:
            return None
        data = bytes(row["data"])
        return Revision(**{k: row[k] for k in row.keys() if k != "data"}), data

    def close(self) -> None:
        with self._lock:
            self._db.close()
