"""The revision store on its own: dedup of the newest, sha prefixes, retention, per-key diffs."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from adminapi.history import HistoryStore, key_changes, unified_diff
from promptwatch import sha256_hex


def test_add_find_prefix_and_retention(tmp_path: Path) -> None:
    store = HistoryStore(tmp_path / "h.sqlite3", retention=3)
    try:
        first = store.add(b'{"a": "1"}', author="file", origin="file")
        assert store.add_if_changed(b'{"a": "1"}', author="x", origin="api") is None
        for i in range(2, 6):
            store.add(f'{{"a": "{i}"}}'.encode(), author="admin", origin="api", message=f"v{i}")
        items, total = store.list()
        assert total == 3 and [r.message for r in items] == ["v5", "v4", "v3"]
        assert store.find(first.sha256) is None  # pruned, and its content with it
        with sqlite3.connect(tmp_path / "h.sqlite3") as db:
            assert db.execute("SELECT COUNT(*) FROM contents").fetchone()[0] == 3
        latest = items[0]
        found = store.find(latest.sha256[:7].upper())
        assert found is not None and found[1] == b'{"a": "5"}'
        assert store.find(latest.sha256[:6]) is None and store.find("zzzzzzzz") is None
        # The same content saved again later is a new revision (a rollback), stored once.
        again = store.add(b'{"a": "3"}', author="admin", origin="rollback")
        assert again.sha256 == sha256_hex(b'{"a": "3"}') and store.list()[1] == 3
    finally:
        store.close()


def test_key_changes_and_unified_diff() -> None:
    old = '{"greeting": "Привет", "goodbye": "Пока", "x": "1"}'.encode()
    new = '{"greeting": "Здравствуйте", "x": "1", "operator": "Соединяю"}'.encode()
    changes = [(c.key, c.kind, c.before, c.after) for c in key_changes(old, new)]
    assert changes == [
        ("greeting", "changed", "Привет", "Здравствуйте"),
        ("operator", "added", None, "Соединяю"),
        ("goodbye", "removed", "Пока", None),
    ]
    assert unified_diff(b"a\nb\n", b"a\nc\n", "old", "new").splitlines()[-2:] == ["-b", "+c"]
