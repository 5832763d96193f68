"""Which live consumer runs which prompts, and waiting until every one of them runs a given sha256."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from pathlib import Path

from promptwatch import ConsumerStatus, read_statuses

__all__ = ["ConsumerView", "WaitResult", "consumer_views", "missing_services", "wait_for_consumers"]


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
        )


def consumer_views(status_dir: Path, path: Path, target: str | None, since: float | None = None) -> list[ConsumerView]:
    """Every live consumer of the prompts at ``path``, compared with ``target``."""
    return [ConsumerView.of(s, target, since) for s in read_statuses(status_dir, path=path)]


def missing_services(expected: tuple[str, ...], views: list[ConsumerView]) -> list[str]:
    """The expected services (``ADMIN_EXPECTED_CONSUMERS``) with no live consumer: never "all in sync"."""
    running = {v.service for v in views}
    return [name for name in expected if name not in running]


@dataclass(frozen=True)
class WaitResult:
    consumers: list[ConsumerView]
    all_applied: bool
    waited_ms: float


async def wait_for_consumers(status_dir: Path, path: Path, target: str, *, since: float, timeout: float) -> WaitResult:
    """Poll the status directory until every live consumer reports ``target`` or ``timeout`` seconds pass.

    Polls every 2 ms for the first 100 ms (a consumer on inotify applies within a few ms), then every 20 ms.
    """
    start = time.monotonic()
    deadline = start + timeout
    while True:
        views = consumer_views(status_dir, path, target, since)
        done = all(v.in_sync for v in views)
        now = time.monotonic()
        if done or now >= deadline:
            return WaitResult(views, done, (now - start) * 1000)
        await asyncio.sleep(min(0.002 if now - start < 0.1 else 0.02, max(0.0, deadline - now)))
