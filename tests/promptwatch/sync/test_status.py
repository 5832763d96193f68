"""``promptwatch status`` with Redis: the consumers of every host, each host's agent, faults shown."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson

from tests.util import wait_until

from ..helpers import run_cli
from .cluster import SimHost, wait_converged
from .conftest import ClusterFactory, RedisFactory


def _status(h: SimHost, *args: str) -> Any:
    result = run_cli("status", *args, env={**h.env, "PROMPTS_SYNC_HEARTBEAT_MS": "200"})
    assert result.returncode == 0, result.stderr
    return orjson.loads(result.stdout) if "--json" in args else result.stdout


def _status_when(h: SimHost, predicate: Callable[[Any], bool], timeout: float = 10.0) -> Any:
    def check() -> Any:
        out = _status(h, "--json")
        return out if predicate(out) else None

    return wait_until(check, timeout=timeout, interval=0.05)


def test_status_lists_the_consumers_of_every_host(redis_server: RedisFactory, cluster: ClusterFactory) -> None:
    server = redis_server()
    hosts = cluster(server.url, agent_env={"PROMPTS_SYNC_HEARTBEAT_MS": "200"})
    a, b, c = hosts
    sha = wait_converged(hosts, a.write("status"))

    def everyone(out: Any) -> bool:
        return sorted((x["host"], x["service"], x["in_sync"]) for x in out["consumers"]) == [
            ("a", "bot-a", True),
            ("b", "bot-b", True),
            ("c", "bot-c", True),
        ]

    out = _status_when(a, everyone)
    assert out["sha256"] == sha and out["distributing"] is True and out["document"] == "prompts"
    assert [(x["host"], x["connected"]) for x in out["hosts"]] == [("a", True), ("b", True), ("c", True)]
    assert {x["document"] for x in out["consumers"]} == {"prompts"}

    # An agent killed -9: its record expires, the host shows as disconnected, its consumers vanish.
    c.kill_agent()
    out = _status_when(a, lambda o: not o["hosts"][2]["connected"])
    assert out["hosts"][2] == {"host": "c", "connected": False, "agent": None, "consumers": []}
    text = _status(a)
    assert "host c: agent DISCONNECTED (its record expired" in text

    # Redis down: this host says it is not distributing, and why.
    server.kill()
    wait_until(lambda: not a.agent_record().get("connected"), timeout=10)
    out = _status(a, "--json")
    assert out["distributing"] is False and "Redis unreachable" in out["not_distributing_reason"]
    assert [x["host"] for x in out["consumers"]] == ["a"]
    assert "NOT distributing" in _status(a)
