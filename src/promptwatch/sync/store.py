"""The Redis layout of one namespace, and its two atomic operations (Lua scripts).

Keys (``N`` is ``PROMPTS_NAMESPACE``; a document name is ``prompts``, ``prompts.<label>`` for a label):

``N:doc:<name>``     hash ``version`` (1, 2, …), ``sha256``, ``data`` (the exact bytes), ``host``, ``at``
``N:origin:<name>``  hash sha256 → ``"<version> <host>"``: which version a content was, and where it was made
``N:docs``           set of the document names
``N:changes``        stream, one entry per new version: ``name``, ``version``, ``sha256``, ``host``
``N:hosts``          set of every host that ever ran an agent (a host whose ``N:host:`` expired is down)
``N:host:<host>``    JSON, expiring: the agent's state and every local consumer's status
``N:conflicts``      list of JSON, newest first (capped): local edits that lost to a newer version

A new version is written by :data:`PUBLISH` only: compare-and-set on the version the writer based its
edit on (``next``), or the re-seeding of a version a host holds when Redis has less (``seed``); the
hash, the origin, the set and the stream entry change in one script, so no reader ever sees a version
without its stream entry or the reverse.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Literal, cast

import orjson
import redis

__all__ = ["CONFLICTS_KEPT", "STREAM_MAXLEN", "Keys", "Published", "Remote", "SyncStore"]

STREAM_MAXLEN = 10_000
"""Stream entries kept (approximately); an agent further behind catches up from the snapshot."""
CONFLICTS_KEPT = 50

PUBLISH = """
local cur = tonumber(redis.call('HGET', KEYS[1], 'version') or '0')
local cursha = redis.call('HGET', KEYS[1], 'sha256') or ''
local v = tonumber(ARGV[2])
local new
if ARGV[1] == 'next' then
  if cursha == ARGV[3] and cur >= v then return {2, cur, cursha} end
  if cur > v then return {0, cur, cursha} end
  new = v + 1
else
  if cur >= v then return {0, cur, cursha} end
  new = v
end
redis.call('HSET', KEYS[1], 'version', new, 'sha256', ARGV[3], 'data', ARGV[4], 'host', ARGV[5], 'at', ARGV[6])
redis.call('HSET', KEYS[2], ARGV[3], new .. ' ' .. ARGV[5])
redis.call('SADD', KEYS[3], ARGV[7])
local id = redis.call('XADD', KEYS[4], 'MAXLEN', '~', ARGV[8], '*',
  'name', ARGV[7], 'version', new, 'sha256', ARGV[3], 'host', ARGV[5])
return {1, new, id}
"""


GET = """
local meta = redis.call('HMGET', KEYS[1], 'version', 'sha256', 'host', 'at')
local size = redis.call('HSTRLEN', KEYS[1], 'data')
local origin = false
if ARGV[2] ~= '' then origin = redis.call('HGET', KEYS[2], ARGV[2]) end
if size > tonumber(ARGV[1]) then return {meta, size, false, origin} end
return {meta, size, redis.call('HGET', KEYS[1], 'data'), origin}
"""
"""One document's version, its bytes only when they are within the reader's limit (reads are bounded),
and optionally the origin record of a sha256: one round trip."""


class Keys:
    """Every key of one namespace, built in one place."""

    def __init__(self, namespace: str) -> None:
        self.namespace = namespace
        self.docs = f"{namespace}:docs"
        self.changes = f"{namespace}:changes"
        self.hosts = f"{namespace}:hosts"
        self.conflicts = f"{namespace}:conflicts"

    def doc(self, name: str) -> str:
        return f"{self.namespace}:doc:{name}"

    def origin(self, name: str) -> str:
        return f"{self.namespace}:origin:{name}"

    def host(self, host: str) -> str:
        return f"{self.namespace}:host:{host}"


@dataclass(frozen=True)
class Remote:
    """One document's current version in Redis."""

    name: str
    version: int
    sha256: str
    data: bytes
    host: str
    at: float
    size: int = 0
    """The size of the content in Redis; ``data`` is empty when it is over the reader's limit."""


@dataclass(frozen=True)
class Published:
    """The outcome of :meth:`SyncStore.publish`: ``ok`` (a new version), ``same`` (Redis already has this
    content) or ``conflict`` (Redis has a newer version: ``version``/``sha256`` are Redis's)."""

    outcome: Literal["ok", "same", "conflict"]
    version: int
    sha256: str
    stream_id: str | None = None


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _origin(raw: Any) -> tuple[int, str] | None:
    if raw is None:
        return None
    version, _, host = _text(raw).partition(" ")
    return int(version), host


class SyncStore:
    """The namespace's documents, stream and host records, over one blocking client."""

    def __init__(self, client: redis.Redis, namespace: str) -> None:
        self.client = client
        self.keys = Keys(namespace)
        self._publish = client.register_script(PUBLISH)
        self._get = client.register_script(GET)

    def publish(
        self, name: str, data: bytes, sha: str, *, host: str, version: int, mode: Literal["next", "seed"] = "next"
    ) -> Published:
        """``next``: version ``version + 1`` if Redis is at most at ``version``; ``seed``: exactly ``version``
        if Redis has less (it lost data)."""
        k = self.keys
        raw = self._publish(
            keys=[k.doc(name), k.origin(name), k.docs, k.changes],
            args=[mode, version, sha, data, host, f"{time.time():.6f}", name, STREAM_MAXLEN],
        )
        code, ver, third = int(raw[0]), int(raw[1]), _text(raw[2])
        if code == 1:
            return Published("ok", ver, sha, third)
        return Published("same" if code == 2 else "conflict", ver, third)

    def get(self, name: str, limit: int, *, origin_of: str = "") -> tuple[Remote | None, tuple[int, str] | None]:
        """The document's current version (its bytes only when at most ``limit``: else ``size`` says why),
        and with ``origin_of`` the :meth:`origin` of that sha256, in one round trip."""
        reply = self._get(keys=[self.keys.doc(name), self.keys.origin(name)], args=[limit, origin_of])
        (version, sha, host, at), size, data, raw_origin = reply
        origin = _origin(raw_origin)
        if version is None:
            return None, origin
        remote = Remote(
            name=name,
            version=int(version),
            sha256=_text(sha or b""),
            data=bytes(data) if data else b"",
            host=_text(host or b""),
            at=float(at or 0),
            size=int(size),
        )
        return remote, origin

    def versions(self, names: list[str]) -> dict[str, int]:
        """The current version of each of ``names`` (0: not in Redis), in one round trip."""
        pipe = self.client.pipeline(transaction=False)
        for name in names:
            pipe.hget(self.keys.doc(name), "version")
        return {name: int(v) if v is not None else 0 for name, v in zip(names, pipe.execute(), strict=True)}

    def names(self) -> set[str]:
        return {_text(n) for n in self.client.smembers(self.keys.docs)}

    def origin(self, name: str, sha: str) -> tuple[int, str] | None:
        """The version ``sha`` was published as, and the host it was made on; None if never published."""
        return _origin(self.client.hget(self.keys.origin(name), sha))

    def last_id(self) -> str:
        """The id of the newest stream entry (``0-0`` for an empty stream)."""
        entries = cast(list[Any], self.client.xrevrange(self.keys.changes, count=1))
        return _text(entries[0][0]) if entries else "0-0"

    def read_changes(self, after: str, block_ms: int) -> tuple[str, dict[str, int]]:
        """Block up to ``block_ms`` for stream entries after ``after``: the last id read, and for each
        document changed the highest version announced."""
        reply = cast(list[Any], self.client.xread({self.keys.changes: after}, block=block_ms, count=1000))
        names: dict[str, int] = {}
        last = after
        for _stream, entries in reply or []:
            for entry_id, fields in entries:
                last = _text(entry_id)
                if b"name" in fields:
                    name = _text(fields[b"name"])
                    names[name] = max(names.get(name, 0), int(fields.get(b"version", b"0") or 0))
        return last, names

    def put_host(self, host: str, record: dict[str, Any], ttl: float) -> None:
        pipe = self.client.pipeline(transaction=False)
        pipe.sadd(self.keys.hosts, host)
        pipe.set(self.keys.host(host), orjson.dumps(record), px=int(ttl * 1000))
        pipe.execute()

    def add_conflict(self, record: dict[str, Any]) -> None:
        pipe = self.client.pipeline(transaction=True)
        pipe.lpush(self.keys.conflicts, orjson.dumps(record))
        pipe.ltrim(self.keys.conflicts, 0, CONFLICTS_KEPT - 1)
        pipe.execute()
