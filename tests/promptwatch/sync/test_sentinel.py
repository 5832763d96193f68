"""A Sentinel-managed Redis (primary, replica, three sentinels): the primary dies during writes, the
agents follow the failover to the replica and every host converges."""

from __future__ import annotations

import threading
import time

import orjson

from promptwatch import sha256_hex
from promptwatch.sync import Keys

from .cluster import NAMESPACE, wait_converged
from .conftest import ClusterFactory, RedisFactory, SentinelFactory
from .redis_servers import wait_replicated
from .test_concurrent import Ack, _writer

KEYS = Keys(NAMESPACE)


def test_failover_during_writes(
    redis_server: RedisFactory, sentinels: SentinelFactory, cluster: ClusterFactory
) -> None:
    primary = redis_server(tcp=True)
    replica = redis_server(replica_of=primary)
    wait_replicated(replica)
    watchers = sentinels(primary)
    hosts = cluster(watchers.url)
    wait_converged(hosts)
    acks: list[Ack] = []
    errors: list[BaseException] = []
    stop = threading.Event()

    def write_until_stopped(h: object) -> None:
        while not stop.is_set():
            _writer(h, 5, acks, errors)  # type: ignore[arg-type]
            stop.wait(0.01)

    threads = [threading.Thread(target=write_until_stopped, args=(h,)) for h in hosts]
    for t in threads:
        t.start()
    try:
        deadline = time.monotonic() + 20
        while len(acks) < 30:  # writes flowing through the first primary
            assert time.monotonic() < deadline and not errors, errors
            stop.wait(0.01)
        primary.kill()
        deadline = time.monotonic() + 20
        while watchers.primary_port() != replica.port:
            assert time.monotonic() < deadline, "no failover within 20 s"
            stop.wait(0.05)
        after_failover = len(acks)
        deadline = time.monotonic() + 20
        while len(acks) < after_failover + 30:  # writes keep going through the new primary
            assert time.monotonic() < deadline and not errors, errors
            stop.wait(0.02)
    finally:
        stop.set()
        for t in threads:
            t.join(30)
    assert not errors, errors
    final = wait_converged(hosts, timeout=30)
    r = replica.client()
    assert r.hget(KEYS.doc("prompts"), "sha256").decode() == final
    published = {k.decode() for k in r.hkeys(KEYS.origin("prompts"))}
    conflicts = {orjson.loads(c)["sha256"] for c in r.lrange(KEYS.conflicts, 0, -1)}
    conflicts |= {sha256_hex(p.read_bytes()) for h in hosts for p in (h.state_dir / "sync-conflicts").glob("*.json")}
    bases = {(a.host, a.base) for a in acks}
    late = acks[after_failover:]
    lost = [a for a in late if a.sha not in published | conflicts and (a.host, a.sha) not in bases]
    assert lost == [], lost[:5]
