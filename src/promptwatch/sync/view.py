"""One view of a document's consumers on every host, for ``promptwatch status`` and the panel alike.

This host's consumers come from its status directory (the freshest source); other hosts' from their
records in Redis, matched by document name (``prompts``, ``prompts.<label>``), never by local path.
Every consumer carries ``host`` and ``document``.  Each host is listed with its agent: ``connected``
False when the agent's record expired (the agent or the host is down) or it cannot reach Redis.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from ..status import ConsumerStatus
from .hosts import HostView

__all__ = ["ClusterView", "cluster_view"]

ClusterView = dict[str, Any]


def cluster_view(
    *,
    document: str,
    local_host: str,
    local: list[ConsumerStatus],
    local_agent: dict[str, Any] | None,
    hosts: list[HostView] | None,
    redis_error: str | None = None,
) -> ClusterView:
    """``hosts`` None: Redis is not configured (one host).  ``redis_error``: configured but unreachable."""
    consumers: list[dict[str, Any]] = [{**asdict(s), "host": local_host, "document": document} for s in local]
    agent = (local_agent or {}).get("agent")
    here: HostView = {
        "host": local_host,
        "connected": bool(agent and agent.get("connected")),
        "agent": agent,
        "consumers": list(consumers),
    }
    views: list[HostView] = [here]
    for h in hosts or []:
        if h["host"] == local_host:
            continue
        theirs = [c for c in h["consumers"] if c.get("document") == document]
        consumers.extend(theirs)
        views.append({**h, "consumers": theirs})
    distributing: bool | None = None
    reason: str | None = None
    if hosts is not None or redis_error is not None:
        distributing = redis_error is None and here["connected"]
        if redis_error is not None:
            reason = redis_error
        elif agent is None:
            reason = f"no sync agent runs on host {local_host} (promptwatch sync)"
        elif not agent.get("connected"):
            reason = agent.get("last_error") or "the sync agent is not connected to Redis"
    return {
        "host": local_host,
        "document": document,
        "distributing": distributing,
        "not_distributing_reason": reason,
        "hosts": sorted(views, key=lambda v: v["host"]) if hosts is not None or redis_error is not None else [here],
        "consumers": consumers,
    }
