"""Comparing revisions of the prompts: per-prompt changes and a unified line diff.

The revision store itself is :mod:`promptwatch.history` (the ``promptwatch promote`` command records
into it too); it is re-exported here for the panel's modules.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from typing import Any

import orjson

from promptwatch.history import HistoryStore, Revision, history_file

__all__ = ["HistoryStore", "KeyChange", "Revision", "history_file", "key_changes", "unified_diff"]


@dataclass(frozen=True)
class KeyChange:
    """One prompt that differs between two revisions."""

    key: str
    kind: str  # added | removed | changed
    before: Any
    after: Any


def key_changes(old: bytes, new: bytes) -> list[KeyChange]:
    """Prompt-by-prompt differences between two documents (keys in the new document's order)."""
    a: dict[str, Any] = orjson.loads(old)
    b: dict[str, Any] = orjson.loads(new)
    out: list[KeyChange] = []
    for key in [*b, *(k for k in a if k not in b)]:
        if key not in a:
            out.append(KeyChange(key, "added", None, b[key]))
        elif key not in b:
            out.append(KeyChange(key, "removed", a[key], None))
        elif a[key] != b[key]:
            out.append(KeyChange(key, "changed", a[key], b[key]))
    return out


def unified_diff(old: bytes, new: bytes, old_name: str, new_name: str) -> str:
    """A line diff of the two documents as text."""
    return "".join(
        difflib.unified_diff(
            old.decode("utf-8", "replace").splitlines(keepends=True),
            new.decode("utf-8", "replace").splitlines(keepends=True),
            fromfile=old_name,
            tofile=new_name,
        )
    )
