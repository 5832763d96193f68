"""The status of every host: its agent and its consumers, as kept in Redis (and locally, for this host).

Each agent keeps ``N:host:<host>`` (JSON, expiring after three heartbeats) and its own record in the
local status directory as ``.sync.json`` (hidden, so never mistaken for a consumer).  A host in
``N:hosts`` whose record expired is shown as disconnected.  Readers: ``promptwatch status`` (blocking
client) and the panel (``redis.asyncio``); both go through :func:`hosts_from_replies`.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any, cast

import orjson
import redis
import redis.asyncio

from ..atomic import atomic_write
from ..errors import PromptwatchError
from ..safeio import read_file
from ..status import process_start_ticks
from .store import Keys

__all__ = [
    "AGENT_FILE",
    "HostView",
    "hosts_from_replies",
    "read_hosts",
    "read_hosts_async",
    "read_local_agent",
    "write_local_agent",
]

AGENT_FILE = ".sync.json"

HostView = dict[str, Any]
"""``{"host", "connected", "agent": {...} | None, "consumers": [...]}``"""


def write_local_agent(status_dir: Path, record: dict[str, Any]) -> None:
    record = {**record, "proc_start": process_start_ticks(record["agent"]["pid"])}
    with contextlib.suppress(OSError):
        status_dir.mkdir(parents=True, exist_ok=True)
    atomic_write(status_dir / AGENT_FILE, orjson.dumps(record), durable=False)


AGENT_RECORD_MAX_BYTES = 4 * 1024 * 1024
"""A bigger agent record in the status directory is not ours: it is ignored, never read whole."""


def read_local_agent(status_dir: Path) -> dict[str, Any] | None:
    """This host's agent record, or None when no agent runs (the file is left by a dead process)."""
    try:
        content = read_file(status_dir / AGENT_FILE, limit=AGENT_RECORD_MAX_BYTES, symlinks="never")
        if len(content.data) > AGENT_RECORD_MAX_BYTES:
            return None
        record: dict[str, Any] = orjson.loads(content.data)
        pid = int(record["agent"]["pid"])
    except (PromptwatchError, OSError, orjson.JSONDecodeError, KeyError, TypeError, ValueError):
        return None
    ticks = process_start_ticks(pid)
    if ticks is None or (record.get("proc_start") is not None and ticks != record["proc_start"]):
        return None
    return record


def hosts_from_replies(names: list[Any], records: list[Any]) -> list[HostView]:
    """Turn ``SMEMBERS N:hosts`` and the ``MGET`` of their records into one view per host, sorted."""
    out: list[HostView] = []
    for name, raw in zip(names, records, strict=True):
        host = name.decode() if isinstance(name, bytes) else str(name)
        record: dict[str, Any] | None = None
        if raw is not None:
            with contextlib.suppress(orjson.JSONDecodeError):
                record = orjson.loads(raw)
        if record is None:
            out.append({"host": host, "connected": False, "agent": None, "consumers": []})
        else:
            agent = record.get("agent") or {}
            out.append(
                {
                    "host": host,
                    "connected": bool(agent.get("connected")),
                    "agent": agent,
                    "consumers": list(record.get("consumers") or []),
                }
            )
    return sorted(out, key=lambda h: h["host"])


def read_hosts(client: redis.Redis, keys: Keys) -> list[HostView]:
    names = sorted(cast(set[bytes], client.smembers(keys.hosts)))
    records = client.mget([keys.host(n.decode()) for n in names]) if names else []
    return hosts_from_replies(names, records)


async def read_hosts_async(client: redis.asyncio.Redis, keys: Keys) -> list[HostView]:
    names = sorted(cast(set[bytes], await client.smembers(keys.hosts)))
    records = await client.mget([keys.host(n.decode()) for n in names]) if names else []
    return hosts_from_replies(names, records)
