"""1,000 saves spread over three hosts at once: one sha everywhere, and every acknowledged save accounted for."""

from __future__ import annotations

import threading
from dataclasses import dataclass

import orjson

from promptwatch import ConflictError, sha256_hex, write_document
from promptwatch.atomic import read_bytes
from promptwatch.sync import Keys
from tests.util import wait_until

from ..helpers import make_doc
from .cluster import NAMESPACE, SimHost, wait_converged
from .conftest import ClusterFactory, RedisFactory

WRITES = 1000


@dataclass(frozen=True)
class Ack:
    host: str
    sha: str
    base: str


def _writer(host: SimHost, count: int, acks: list[Ack], errors: list[BaseException]) -> None:
    """Conditional saves, as the panel makes them: read, edit, write if unchanged (else read again)."""
    try:
        done = 0
        while done < count:
            base = read_bytes(host.path) or b""
            data = make_doc(f"{host.name}-{done}")
            try:
                write_document(host.path, data, if_match=sha256_hex(base))
            except ConflictError:
                continue  # not acknowledged: the writer saw the 412 and tries again on the new content
            acks.append(Ack(host.name, sha256_hex(data), sha256_hex(base)))
            done += 1
    except BaseException as e:  # pragma: no cover - reported by the test
        errors.append(e)


def test_1000_concurrent_saves_converge_and_none_is_silently_lost(
    redis_server: RedisFactory, cluster: ClusterFactory
) -> None:
    server = redis_server()
    hosts = cluster(server.url)
    wait_converged(hosts)
    acks: list[Ack] = []
    errors: list[BaseException] = []
    per_host = [WRITES // 3 + (1 if i < WRITES % 3 else 0) for i in range(3)]
    threads = [
        threading.Thread(target=_writer, args=(h, n, acks, errors)) for h, n in zip(hosts, per_host, strict=True)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors, errors
    assert len(acks) == WRITES
    final = wait_converged(hosts, timeout=30)

    r = server.client()
    keys = Keys(NAMESPACE)
    assert r.hget(keys.doc("prompts"), "sha256").decode() == final
    published = {k.decode() for k in r.hkeys(keys.origin("prompts"))}
    # Redis keeps the newest conflicts; each host keeps all of its own in STATE_DIR/sync-conflicts/.
    conflicts = {orjson.loads(c)["sha256"] for c in r.lrange(keys.conflicts, 0, -1)}
    kept = {sha256_hex(p.read_bytes()) for h in hosts for p in (h.state_dir / "sync-conflicts").glob("*.json")}
    assert conflicts <= kept
    conflicts |= kept
    # Replaced knowingly: a later save on the same host read it and was based on it.
    bases = {(a.host, a.base) for a in acks}
    lost = [a for a in acks if a.sha not in published | conflicts and (a.host, a.sha) not in bases]
    print(f"published {len(published)}, conflicts {len(conflicts)}, replaced locally {len(bases)}")
    assert lost == [], f"{len(lost)} acknowledged saves neither published, nor kept as conflicts: {lost[:5]}"
    # Every host agreed on the version number too, and the stream holds one entry per version.
    version = int(r.hget(keys.doc("prompts"), "version"))
    wait_until(lambda: all(h.agent_record().get("versions", {}).get("prompts") == version for h in hosts), timeout=5)
    assert r.xlen(keys.changes) == version
