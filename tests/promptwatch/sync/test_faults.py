"""Faults: Redis down and back empty, an agent killed, a host far behind, a bad version in Redis."""

from __future__ import annotations

import orjson

from promptwatch import sha256_hex
from promptwatch.sync import Keys
from tests.util import wait_until

from ..helpers import make_doc
from .cluster import NAMESPACE, SimHost, wait_converged
from .conftest import ClusterFactory, RedisFactory

KEYS = Keys(NAMESPACE)


def _disconnected(h: SimHost) -> bool:
    record = h.agent_record()
    return record.get("connected") is False and "unreachable" in (record.get("last_error") or "")


def _version(server_client: object) -> int:
    raw = server_client.hget(KEYS.doc("prompts"), "version")  # type: ignore[attr-defined]
    return int(raw) if raw is not None else 0


def test_redis_down_then_back_empty(redis_server: RedisFactory, cluster: ClusterFactory) -> None:
    """Saves apply locally while Redis is down, the status says so; when Redis returns empty, the newest
    version re-seeds it, one offline edit wins and the other is kept as a conflict (error in the log)."""
    server = redis_server()
    a, b, c = cluster(server.url)
    wait_converged([a, b, c], a.write(1))
    server.kill()
    for h in (a, b, c):
        wait_until(lambda h=h: _disconnected(h), timeout=10, message=f"host {h.name} says it is not distributing")
    # Local saves still go live locally at once.
    sha_a = a.write("a offline")
    wait_until(lambda: a.consumer_shas() == [sha_a], timeout=5, message="a's consumer runs the offline save")
    sha_b = b.write("b offline")
    wait_until(lambda: b.consumer_shas() == [sha_b], timeout=5, message="b's consumer runs the offline save")
    assert c.sha() not in (sha_a, sha_b)

    server.start()  # empty: persistence is off
    final = wait_converged([a, b, c], timeout=20)
    assert final in (sha_a, sha_b)
    loser, loser_sha = (b, sha_b) if final == sha_a else (a, sha_a)
    r = server.client()
    assert _version(r) == 3  # v2 re-seeded, then the winning offline edit as v3: nobody rolled back to v1
    kept = [p for p in (loser.state_dir / "sync-conflicts").glob("*.json")]
    assert [sha256_hex(p.read_bytes()) for p in kept] == [loser_sha]
    conflicts = [orjson.loads(x) for x in r.lrange(KEYS.conflicts, 0, -1)]
    assert [(x["host"], x["sha256"], x["base_version"]) for x in conflicts] == [(loser.name, loser_sha, 2)]
    assert "ERROR" in loser.log() and "conflict" in loser.log()
    wait_until(lambda: all(h.agent_record().get("connected") for h in (a, b, c)), timeout=10)
    wait_until(lambda: [x["sha256"] for x in loser.agent_record().get("conflicts", [])] == [loser_sha], timeout=5)


def test_an_older_host_never_rolls_the_others_back(redis_server: RedisFactory, cluster: ClusterFactory) -> None:
    server = redis_server()
    a, b, c = cluster(server.url)
    wait_converged([a, b, c])
    c.kill_agent()
    newest = a.write("newest")
    wait_converged([a, b], newest)
    old = c.sha()
    a.kill_agent()
    b.kill_agent()
    server.kill()
    server.start()  # empty
    c.start_agent()  # the host that is behind comes back first and re-seeds its old version…
    wait_until(lambda: _version(server.client()) == 1, timeout=10, message="c re-seeded v1")
    for h in (a, b):
        h.start_agent(wait=False)
    wait_converged([a, b, c], newest, timeout=20)  # …and the newer hosts win
    for h in (a, b):
        loaded = [line["sha256"] for line in h.consumer_lines() if line["ok"]]
        assert old not in loaded[loaded.index(newest) :], f"host {h.name} went back to the old version: {loaded}"
    assert _version(server.client()) == 2


def test_agent_killed_and_restarted(redis_server: RedisFactory, cluster: ClusterFactory) -> None:
    server = redis_server()
    a, b, c = cluster(server.url)
    wait_converged([a, b, c])
    a.kill_agent()
    sha = b.write("while a's agent is dead")
    wait_converged([b, c], sha)
    assert a.sha() != sha
    a.start_agent()
    wait_converged([a, b, c], sha)
    # An edit made on a while its agent is dead is published when it comes back (nobody moved on).
    a.kill_agent()
    local = a.write("made on a, agent dead")
    a.start_agent()
    wait_converged([a, b, c], local)


def test_host_down_for_100_versions_catches_up_before_ready(
    redis_server: RedisFactory, cluster: ClusterFactory
) -> None:
    server = redis_server()
    a, b, c = cluster(server.url)
    wait_converged([a, b, c])
    c.kill_agent()
    r = server.client()
    start = _version(r)
    for i in range(100):
        b.write(f"v{i}")
        wait_until(lambda i=i: _version(r) == start + i + 1, timeout=5, message=f"version {start + i + 1}")
    final = r.hget(KEYS.doc("prompts"), "sha256").decode()
    c.start_agent()  # returns once the agent has written its first record: after its catch-up
    assert c.sha() == final
    assert c.agent_record()["versions"]["prompts"] == start + 100
    wait_converged([a, b, c], final)


def test_an_invalid_document_in_redis_is_refused_by_every_host(
    redis_server: RedisFactory, cluster: ClusterFactory
) -> None:
    server = redis_server()
    a, b, c = cluster(server.url)
    good = wait_converged([a, b, c])
    r = server.client()
    bad = b'{\n  "system_prompt": "x",\n  "greeting": \n}\n'
    version = _version(r) + 1
    r.hset(KEYS.doc("prompts"), mapping={"version": version, "sha256": sha256_hex(bad), "data": bad, "host": "x"})
    r.xadd(KEYS.changes, {"name": "prompts", "version": version, "sha256": sha256_hex(bad), "host": "x"})
    for h in (a, b, c):
        wait_until(
            lambda h=h: "refused" in (h.agent_record().get("last_error") or ""),
            timeout=10,
            message=f"host {h.name} reports the refusal",
        )
        error = h.agent_record()["last_error"]
        assert error.endswith(f"{KEYS.doc('prompts')}@v{version}:4:1: Expecting value"), error
        assert h.sha() == good and h.consumer_shas() == [good]
        assert h.agent_record()["distributing"] is False
    # A valid save anywhere replaces the refused version everywhere.
    fixed = b.write("fixed")
    wait_converged([a, b, c], fixed)
    wait_until(lambda: all(not h.agent_record().get("last_error") for h in (a, b, c)), timeout=10)
    assert _version(r) == version + 1


def test_a_broken_hand_edit_is_not_published(redis_server: RedisFactory, cluster: ClusterFactory) -> None:
    server = redis_server()
    a, b, c = cluster(server.url)
    good = wait_converged([a, b, c])
    a.path.write_bytes(b'{"greeting": ')
    wait_until(lambda: "not published" in (a.agent_record().get("last_error") or ""), timeout=10)
    assert "prompts.json:1:14" in a.agent_record()["last_error"]
    assert b.sha() == good and c.sha() == good
    fixed = sha256_hex(make_doc("fixed by hand"))
    a.path.write_bytes(make_doc("fixed by hand"))
    wait_converged([a, b, c], fixed)


def test_an_oversized_version_in_redis_is_not_even_read(redis_server: RedisFactory, cluster: ClusterFactory) -> None:
    server = redis_server()
    a, b = cluster(server.url, "ab", consumers=False)
    good = wait_converged([a, b])
    r = server.client()
    huge = b'{"system_prompt": "' + b"x" * (2 * 1024 * 1024) + b'", "greeting": "hi"}'
    version = _version(r) + 1
    r.hset(KEYS.doc("prompts"), mapping={"version": version, "sha256": sha256_hex(huge), "data": huge, "host": "x"})
    r.xadd(KEYS.changes, {"name": "prompts", "version": version, "sha256": sha256_hex(huge), "host": "x"})
    for h in (a, b):
        wait_until(lambda h=h: "the limit is" in (h.agent_record().get("last_error") or ""), timeout=10)
        assert f"{len(huge)} bytes, the limit is {1024 * 1024}" in h.agent_record()["last_error"]
        assert h.sha() == good
