"""What the agent last agreed with Redis, per document: the version and the sha256 of that version.

Kept in ``STATE_DIR/sync-<namespace>.json`` so that a restarted agent knows which version its local
file is (to tell a local edit made while it was down from an old file, and to re-seed an emptied Redis
at the right version).  Written atomically after each applied or published version; a lost or stale
state is recovered from Redis's origin record of the file's sha256.  Local edits that lost to a newer
version are kept beside it, in ``sync-conflicts/``.
"""

from __future__ import annotations

import logging
import re
import time
from dataclasses import dataclass
from pathlib import Path

import orjson

from ..atomic import atomic_write, read_bytes
from ..errors import PromptwatchError

__all__ = ["Agreed", "SyncState"]

logger = logging.getLogger("promptwatch.sync")


@dataclass(frozen=True)
class Agreed:
    version: int
    sha256: str


class SyncState:
    """The agreed version of each document, persisted in one small JSON file."""

    def __init__(self, state_dir: Path, namespace: str) -> None:
        self.dir = state_dir
        self.path = state_dir / f"sync-{namespace}.json"
        self.conflicts_dir = state_dir / "sync-conflicts"
        self._agreed: dict[str, Agreed] = {}
        data = read_bytes(self.path)
        if data is not None:
            try:
                raw = orjson.loads(data)
                self._agreed = {k: Agreed(int(v["version"]), str(v["sha256"])) for k, v in raw.items()}
            except (orjson.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError) as e:
                logger.warning("sync state %s is unreadable (%s); recovering versions from Redis", self.path, e)

    def get(self, name: str) -> Agreed:
        return self._agreed.get(name, Agreed(0, ""))

    def set(self, name: str, version: int, sha: str) -> None:
        self._agreed = {**self._agreed, name: Agreed(version, sha)}
        body = {k: {"version": a.version, "sha256": a.sha256} for k, a in sorted(self._agreed.items())}
        self.dir.mkdir(parents=True, exist_ok=True)
        # Not fsynced: a state older than the file after a crash is recovered from Redis's origin record.
        atomic_write(self.path, orjson.dumps(body, option=orjson.OPT_INDENT_2), durable=False)

    def versions(self) -> dict[str, int]:
        return {k: a.version for k, a in self._agreed.items()}

    def keep_conflict(self, name: str, data: bytes, sha: str) -> Path:
        """Keep a losing local edit as ``sync-conflicts/<name>.<time>.<sha12>.json``; return its path."""
        safe = re.sub(r"[^A-Za-z0-9_.-]", "_", name)
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
        path = self.conflicts_dir / f"{safe}.{stamp}.{sha[:12]}.json"
        try:
            self.conflicts_dir.mkdir(parents=True, exist_ok=True)
            atomic_write(path, data)
        except (OSError, PromptwatchError) as e:
            logger.error("cannot keep the conflicting edit of %s in %s: %s", name, path, e)
        return path
