"""The other hosts, as their sync agents keep them in Redis (``PROMPTS_REDIS_URL``); absent without Redis.

The panel reads, never writes, the distribution's records: every host's agent and consumers (through
``redis.asyncio`` on the event loop), the recent conflicts, and, for the history, the host where a
content was made (a blocking lookup, from the watcher's thread).  The local agent's record lives in
the status directory and is read in the thread pool.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import orjson
import redis
import redis.asyncio
from starlette.concurrency import run_in_threadpool

from promptwatch import read_statuses
from promptwatch.labels import document_name, label_of
from promptwatch.sync import MAIN, Keys, SyncStore, async_client, client, parse_url, read_hosts_async, read_local_agent
from promptwatch.sync.view import ClusterView, cluster_view

from .settings import AdminSettings

__all__ = ["Cluster", "ClusterState"]

logger = logging.getLogger("adminapi.cluster")

CONFLICTS_SHOWN = 20


@dataclass(frozen=True)
class ClusterState:
    view: ClusterView
    conflicts: list[dict[str, Any]]


class Cluster:
    """Read access to the namespace's host records, conflicts and origins."""

    def __init__(self, settings: AdminSettings) -> None:
        assert settings.prompts_redis_url is not None
        target = parse_url(settings.prompts_redis_url)
        self.settings = settings
        self.host = settings.prompts_host
        self.keys = Keys(settings.prompts_namespace)
        self.redis: redis.asyncio.Redis = async_client(target)
        self._store = SyncStore(client(target), settings.prompts_namespace)

    async def state(self, path: Path | None = None) -> ClusterState:
        """Every host (this one from its status directory), the not-distributing reason, recent conflicts;
        the consumers are those of the prompts at ``path`` (a label's file; default production's)."""
        path = path if path is not None else self.settings.prompts_file
        label = label_of(self.settings.prompts_file, path)
        document = document_name(label) if label is not None else MAIN
        hosts = None
        error = None
        conflicts: list[dict[str, Any]] = []
        try:
            hosts = await read_hosts_async(self.redis, self.keys)
            raw = cast(list[bytes], await self.redis.lrange(self.keys.conflicts, 0, CONFLICTS_SHOWN - 1))
            for item in raw:
                record = orjson.loads(item)
                record.pop("data", None)
                conflicts.append(record)
        except redis.RedisError as e:
            error = f"Redis unreachable: {e}"
        local, agent = await run_in_threadpool(self._local, path)
        view = cluster_view(
            document=document, local_host=self.host, local=local, local_agent=agent, hosts=hosts, redis_error=error
        )
        return ClusterState(view, conflicts)

    def _local(self, path: Path) -> tuple[list[Any], dict[str, Any] | None]:
        status_dir = self.settings.prompts_status_dir
        return read_statuses(status_dir, path=path), read_local_agent(status_dir)

    async def remote_consumers(self, document: str = MAIN) -> list[dict[str, Any]]:
        """The consumers of ``document`` (``prompts``, ``prompts.staging``…) on the other hosts; none while
        Redis is unreachable."""
        try:
            hosts = await read_hosts_async(self.redis, self.keys)
        except redis.RedisError:
            return []
        return [c for h in hosts if h["host"] != self.host for c in h["consumers"] if c.get("document") == document]

    def origin_host(self, sha: str) -> str | None:
        """The host where the content ``sha`` was made (blocking; from a worker thread), or None."""
        try:
            found = self._store.origin(MAIN, sha)
        except redis.RedisError as e:
            logger.warning("cannot look up where sha=%s was made: %s", sha[:12], e)
            return None
        return found[1] if found is not None else None

    def conflicts(self) -> list[dict[str, Any]]:
        """The recent conflicts of the main document, with the losing content (blocking; from a worker thread)."""
        try:
            raw = cast(list[bytes], self._store.client.lrange(self.keys.conflicts, 0, CONFLICTS_SHOWN - 1))
        except redis.RedisError as e:
            logger.warning("cannot read the conflicts: %s", e)
            return []
        return [c for c in map(orjson.loads, raw) if c.get("name") == MAIN and isinstance(c.get("data"), str)]

    async def close(self) -> None:
        await self.redis.aclose()
        self._store.client.close()
