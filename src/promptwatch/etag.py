"""The sha256 a conditional write expects, as operators type it: full, a prefix, or an HTTP ETag.

``--if-match`` and ``If-Match`` accept the 64 hex digits, the quoted ETag that ``curl -i`` shows
(``"1f2b…"``, also ``W/"…"``), or any prefix of at least :data:`MIN_PREFIX` hex digits, like git.
The empty string means "the file must not exist yet".
"""

from __future__ import annotations

import re

__all__ = ["MIN_PREFIX", "normalize_sha", "sha_matches"]

MIN_PREFIX = 7
_HEX = re.compile(r"[0-9a-f]+")


def normalize_sha(spec: str) -> str:
    """The lower-case hex digits of ``spec`` (quotes and ``W/`` removed); ValueError naming the problem."""
    value = spec.strip()
    if value.startswith("W/"):
        value = value[2:]
    if len(value) >= 2 and value[0] == value[-1] == '"':
        value = value[1:-1]
    value = value.lower()
    if value == "":
        return ""
    if not _HEX.fullmatch(value):
        raise ValueError(f"{spec!r} is not a sha256 (hex digits, optionally as a quoted ETag)")
    if len(value) > 64:
        raise ValueError(f"{spec!r} is longer than a sha256 (64 hex digits)")
    if len(value) < MIN_PREFIX:
        raise ValueError(f"{spec!r} is too short: give at least {MIN_PREFIX} hex digits of the sha256")
    return value


def sha_matches(spec: str, current: str | None) -> bool:
    """True when ``current`` (None: no file) is the version ``spec`` names (see :func:`normalize_sha`).

    A ``spec`` that names no version at all (not hex) matches nothing: the write is refused as a conflict.
    """
    try:
        wanted = normalize_sha(spec)
    except ValueError:
        return False
    if wanted == "":
        return current is None or current == ""
    return current is not None and current.startswith(wanted)
