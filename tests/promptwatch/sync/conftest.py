"""Fixtures of the Redis tests: real redis-server / redis-sentinel processes, simulated hosts."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from ..helpers import make_doc
from .cluster import SimHost
from .redis_servers import RedisServer, Sentinels

RedisFactory = Callable[..., RedisServer]


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisFactory]:
    """``redis_server(tcp=False, replica_of=None)``: a started redis-server, killed when the test ends."""
    made: list[RedisServer] = []

    def factory(**kwargs: object) -> RedisServer:
        server = RedisServer(tmp_path / f"redis-{len(made)}", **kwargs)  # type: ignore[arg-type]
        made.append(server)
        return server

    yield factory
    for server in made:
        server.stop()


SentinelFactory = Callable[..., Sentinels]


@pytest.fixture
def sentinels(tmp_path: Path) -> Iterator[SentinelFactory]:
    made: list[Sentinels] = []

    def factory(primary: RedisServer, **kwargs: object) -> Sentinels:
        s = Sentinels(tmp_path, primary, **kwargs)  # type: ignore[arg-type]
        made.append(s)
        return s

    yield factory
    for s in made:
        s.stop()


ClusterFactory = Callable[..., list[SimHost]]


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[ClusterFactory]:
    """``cluster(url, names="abc", consumers=True, agents=True, agent_env=None)``: hosts with the same first
    document, their agents and consumers started."""
    made: list[SimHost] = []

    def factory(
        url: str,
        names: str = "abc",
        *,
        consumers: bool = True,
        agents: bool = True,
        agent_env: dict[str, str] | None = None,
    ) -> list[SimHost]:
        hosts = [SimHost(tmp_path / "hosts", n, url, doc=make_doc(0)) for n in names]
        made.extend(hosts)
        # Every process starts at once (Python start-up dominates on a loaded machine), then each is awaited.
        for h in hosts:
            if agents:
                h.start_agent(wait=False, env=agent_env)
            if consumers:
                h.start_consumer(wait=False)
        for h in hosts:
            if agents:
                h.wait_agent()
            if consumers:
                h.wait_consumer()
        return hosts

    yield factory
    for h in made:
        h.stop()
