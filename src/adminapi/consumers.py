"""Which live consumer runs which prompts, and waiting until every one of them runs a given sha256."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

from promptwatch import ConsumerStatus, read_statuses

__all__ = ["ConsumerView", "WaitResult", "consumer_views", "missing_services", "wait_for_consumers"]


_STATUS_FIELDS = tuple(f.name for f in fields(ConsumerStatus))


@dataclass(frozen=True)
class ConsumerView:
    """One consumer as the panel shows it, relative to a ``target`` sha256."""

    service: str
    pid: int
    hostname: str
    sha256: str | None
    loaded_at: float | None
    source: str | None
    mode: str
    last_error: str | None
    in_sync: bool
    latency_ms: float | None
    """From ``since`` (the save) to the consumer loading ``target``; 0 when it already ran it."""
    started_at: float | None = None
    updated_at: float | None = None
    """When the process last published its status (last seen)."""
    version: str = ""
    host: str = ""
    """``PROMPTS_HOST`` of the consumer's host (with Redis, consumers of every host are listed)."""

    @classmethod
    def from_record(cls, record: dict[str, Any], target: str | None, since: float | None) -> ConsumerView:
        """A consumer of another host, from its agent's record in Redis."""
        known: dict[str, Any] = {k: record[k] for k in _STATUS_FIELDS if k in record}
        status = ConsumerStatus(**known)
        return replace(cls.of(status, target, since), host=str(record.get("host") or ""))

    @classmethod
    def of(cls, status: ConsumerStatus, target: str | None, since: float | None) -> ConsumerView:
        in_sync = target is not None and status.sha256 == target
        latency: float | None = None
        if in_sync and since is not None and status.loaded_at is not None:
            latency = max(0.0, (status.loaded_at - since) * 1000)
        return cls(
            service=status.service,
            pid=status.pid,
            hostname=status.hostname,
            sha256=status.sha256,
            loaded_at=status.loaded_at,
            source=status.source,
            mode=status.mode,
            last_error=status.last_error,
            in_sync=in_sync,
            latency_ms=latency,
            started_at=status.started_at,
            updated_at=status.updated_at,
            version=status.version,
        )


def consumer_views(
    status_dir: Path, path: Path, target: str | None, since: float | None = None, *, host: str = ""
) -> list[ConsumerView]:
    """Every live consumer of the prompts at ``path``, compared with ``target``."""
    return [replace(ConsumerView.of(s, target, since), host=host) for s in read_statuses(status_dir, path=path)]


RemoteConsumers = Callable[[], Awaitable[list[dict[str, Any]]]]
"""The consumers of the other hosts (:meth:`adminapi.cluster.Cluster.remote_consumers`)."""


def missing_services(expected: tuple[str, ...], views: list[ConsumerView]) -> list[str]:
    """The expected services (``ADMIN_EXPECTED_CONSUMERS``) with no live consumer: never "all in sync"."""
    running = {v.service for v in views}
    return [name for name in expected if name not in running]


@dataclass(frozen=True)
class WaitResult:
    consumers: list[ConsumerView]
    all_applied: bool
    waited_ms: float


async def wait_for_consumers(
    status_dir: Path,
    path: Path,
    target: str,
    *,
    since: float,
    timeout: float,
    host: str = "",
    remote: RemoteConsumers | None = None,
) -> WaitResult:
    """Poll the status directory (and with ``remote`` the other hosts' records) until every live consumer
    reports ``target`` or ``timeout`` seconds pass.

    Polls every 2 ms for the first 100 ms (a consumer on inotify applies within a few ms), then every 20 ms.
    """
    start = time.monotonic()
    deadline = start + timeout
    while True:
        views = await asyncio.to_thread(consumer_views, status_dir, path, target, since, host=host)
        if remote is not None:
            views += [ConsumerView.from_record(r, target, since) for r in await remote()]
        done = all(v.in_sync for v in views)
        now = time.monotonic()
        if done or now >= deadline:
            return WaitResult(views, done, (now - start) * 1000)
        await asyncio.sleep(min(0.002 if now - start < 0.1 else 0.02, max(0.0, deadline - now)))
