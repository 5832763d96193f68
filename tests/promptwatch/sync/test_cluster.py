"""Three hosts on one machine, a real redis-server: saves on any host reach every host's consumers."""

from __future__ import annotations

from .cluster import wait_converged
from .conftest import ClusterFactory, RedisFactory


def test_a_save_on_host_a_reaches_the_consumers_of_b_and_c(redis_server: RedisFactory, cluster: ClusterFactory) -> None:
    server = redis_server()
    a, b, c = cluster(server.url)
    wait_converged([a, b, c])
    sha = a.write(1)
    wait_converged([a, b, c], sha)
    record = b.agent_record()
    assert record["connected"] and record["versions"]["prompts"] == 2, record


def test_a_hand_edit_on_host_b_reaches_a_and_c(redis_server: RedisFactory, cluster: ClusterFactory) -> None:
    server = redis_server()
    a, b, c = cluster(server.url)
    wait_converged([a, b, c])
    text = b.path.read_text().replace("Версия 0", "Версия руками")
    with open(b.path, "w") as f:  # in place, as an editor does
        f.write(text)
    wait_converged([a, b, c])
    assert "руками" in a.path.read_text()
