"""The history's ``host`` column: recorded per revision, added to a history made before it existed."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from adminapi.history import HistoryStore


def test_a_history_made_before_hosts_gets_the_column(tmp_path: Path) -> None:
    path = tmp_path / "history.sqlite3"
    db = sqlite3.connect(path)
    db.executescript(
        "CREATE TABLE contents (sha256 TEXT PRIMARY KEY, data BLOB NOT NULL);"
        "CREATE TABLE revisions (id INTEGER PRIMARY KEY AUTOINCREMENT, sha256 TEXT NOT NULL, created_at REAL NOT NULL,"
        " author TEXT NOT NULL, origin TEXT NOT NULL, message TEXT NOT NULL DEFAULT '', size INTEGER NOT NULL);"
        "INSERT INTO contents VALUES ('aa', x'7b7d');"
        "INSERT INTO revisions (sha256, created_at, author, origin, size) VALUES ('aa', 1.0, 'file', 'file', 2);"
    )
    db.commit()
    db.close()
    store = HistoryStore(path)
    try:
        old = store.latest()
        assert old is not None and old.host == ""
        new = store.add(b'{"a": 1}', author="admin", origin="api", host="b")
        assert store.latest() == new and new.host == "b"
    finally:
        store.close()


def test_a_conflict_revision_is_kept_once_and_never_the_latest(tmp_path: Path) -> None:
    store = HistoryStore(tmp_path / "h.sqlite3")
    try:
        current = store.add(b'{"v": 2}', author="file", origin="file", host="a")
        lost = store.add_conflict(b'{"v": "b"}', host="b", message="lost", created_at=2.0)
        assert lost is not None and lost.origin == "conflict" and lost.author == "b"
        assert store.add_conflict(b'{"v": "b"}', host="b", message="lost", created_at=2.0) is None
        assert store.latest() == current
        assert [r.origin for r in store.list()[0]] == ["conflict", "file"]
    finally:
        store.close()
