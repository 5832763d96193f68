"""Three hosts on one machine, a real redis-server: saves on any host reach every host's consumers."""

from __future__ import annotations

import contextlib

from promptwatch import sha256_hex, write_document
from promptwatch.sync import Keys
from tests.util import wait_until

from ..helpers import make_doc
from .cluster import NAMESPACE, SimHost, wait_converged
from .conftest import ClusterFactory, RedisFactory


def test_a_save_on_host_a_reaches_the_consumers_of_b_and_c(redis_server: RedisFactory, cluster: ClusterFactory) -> None:
    server = redis_server()
    a, b, c = cluster(server.url)
    wait_converged([a, b, c])
    sha = a.write(1)
    wait_converged([a, b, c], sha)
    record = wait_until(lambda: (r := b.agent_record()).get("versions", {}).get("prompts") == 2 and r, timeout=5)
    assert record["connected"] and record["distributing"], record


def test_a_hand_edit_on_host_b_reaches_a_and_c(redis_server: RedisFactory, cluster: ClusterFactory) -> None:
    server = redis_server()
    a, b, c = cluster(server.url)
    wait_converged([a, b, c])
    text = b.path.read_text().replace("Версия 0", "Версия руками")
    with open(b.path, "w") as f:  # in place, as an editor does
        f.write(text)
    wait_converged([a, b, c])
    assert "руками" in a.path.read_text()


def test_knowledge_base_files_are_distributed_and_deleted(redis_server: RedisFactory, cluster: ClusterFactory) -> None:
    server = redis_server()
    a, b, c = cluster(server.url, consumers=False)
    text = "# Тарифы\nДоставка 300 ₽.\n"
    (a.config / "kb" / "тарифы.md").write_text(text)  # in place: an empty version may go first, then this

    def has_it(h: SimHost) -> bool:
        with contextlib.suppress(FileNotFoundError):
            return (h.config / "kb" / "тарифы.md").read_text() == text
        return False

    for h in (b, c):
        wait_until(lambda h=h: has_it(h), timeout=10, message=f"kb on {h.name}")
    (b.config / "kb" / "тарифы.md").unlink()
    for h in (a, c):
        wait_until(lambda h=h: not (h.config / "kb" / "тарифы.md").exists(), timeout=10, message=f"gone on {h.name}")
    # Not a knowledge-base document on this host's rules: never distributed, and no error.
    (a.config / "kb" / "notes.bin").write_bytes(b"\x00\x01")
    (a.config / "kb" / "ok.txt").write_text("ok")
    wait_until(lambda: (c.config / "kb" / "ok.txt").exists(), timeout=10)
    assert not (c.config / "kb" / "notes.bin").exists()


def test_a_binary_knowledge_base_file_in_redis_is_refused(redis_server: RedisFactory, cluster: ClusterFactory) -> None:
    server = redis_server()
    a, b = cluster(server.url, "ab", consumers=False)
    bad = b"text\x00binary"
    r = server.client()
    keys = Keys(NAMESPACE)
    r.hset(keys.doc("kb/x.md"), mapping={"version": 1, "sha256": sha256_hex(bad), "data": bad, "host": "z"})
    r.sadd(keys.docs, "kb/x.md")
    r.xadd(keys.changes, {"name": "kb/x.md", "version": 1, "sha256": sha256_hex(bad), "host": "z"})
    for h in (a, b):
        wait_until(lambda h=h: "kb/x.md" in (h.agent_record().get("errors") or {}), timeout=10)
        assert "NUL byte at offset 4" in h.agent_record()["errors"]["kb/x.md"]
        assert not (h.config / "kb" / "x.md").exists()


def test_label_files_are_distributed_by_name(redis_server: RedisFactory, cluster: ClusterFactory) -> None:
    server = redis_server()
    a, b = cluster(server.url, "ab", consumers=False)
    staging = a.config / "prompts.staging.json"
    write_document(staging, make_doc("staging"))
    wait_until(lambda: (b.config / "prompts.staging.json").exists(), timeout=10, message="label file on b")
    assert (b.config / "prompts.staging.json").read_bytes() == staging.read_bytes()
    assert server.client().hget(Keys(NAMESPACE).doc("prompts.staging"), "host") == b"a"
    assert b.sha() == a.sha()  # the main document is untouched
