"""The panel with Redis: a save on host a reaches the consumers of b and c, and the panel says so."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import BrowserContext, expect

from promptwatch.sync.hosts import read_local_agent
from tests.promptwatch.helpers import PROMPTWATCH, Child, make_doc
from tests.promptwatch.sync.cluster import NAMESPACE, SimHost, wait_converged
from tests.promptwatch.sync.redis_servers import RedisServer
from tests.util import wait_until

from .browserkit import assert_accessible
from .conftest import TOKEN, Served, make_settings, serve, stop

HEARTBEAT = {"PROMPTS_SYNC_HEARTBEAT_MS": "200"}


@pytest.fixture
def three_hosts(tmp_path: Path) -> Iterator[tuple[RedisServer, list[SimHost]]]:
    server = RedisServer(tmp_path / "redis")
    hosts = [SimHost(tmp_path / "hosts", n, server.url, doc=make_doc(0)) for n in "abc"]
    try:
        for h in hosts:
            h.start_agent(env=HEARTBEAT, wait=False)
            h.start_consumer(wait=False)
        for h in hosts:
            h.wait_agent()
            h.wait_consumer()
        wait_converged(hosts)
        yield server, hosts
    finally:
        for h in hosts:
            h.stop()
        server.stop()


PanelFactory = Callable[[SimHost], Served]


@pytest.fixture
def panel(three_hosts: tuple[RedisServer, list[SimHost]], tmp_path: Path) -> Iterator[PanelFactory]:
    """``panel(host)``: the admin panel on that host (its config and status dirs), stopped at the end."""
    server, _hosts = three_hosts
    made: list[Served] = []

    def factory(host: SimHost) -> Served:
        settings = make_settings(
            host.config,
            host.status_dir,
            tmp_path / f"panel-{host.name}",
            prompts_redis_url=server.url,
            prompts_namespace=NAMESPACE,
            prompts_host=host.name,
        )
        made.append(serve(settings))
        return made[-1]

    yield factory
    for served in made:
        stop(served)


@pytest.fixture
def panel_on_a(three_hosts: tuple[RedisServer, list[SimHost]], panel: PanelFactory) -> Served:
    return panel(three_hosts[1][0])


def _consumers(body: dict) -> list[tuple[str, str, bool]]:  # type: ignore[type-arg]
    return sorted((c["host"], c["service"], c["in_sync"]) for c in body["consumers"])


def test_a_panel_save_on_a_reaches_b_and_c(three_hosts: tuple[RedisServer, list[SimHost]], panel_on_a: Served) -> None:
    _server, hosts = three_hosts
    with panel_on_a.client() as client:
        wait_until(lambda: len(client.get("/api/status").json()["consumers"]) == 4, timeout=10)
        r = client.put("/api/prompts?wait_ms=5000", content=make_doc("panel on a"))
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["all_applied"] is True
        assert _consumers(body) == [
            ("a", "adminapi", True),
            ("a", "bot-a", True),
            ("b", "bot-b", True),
            ("c", "bot-c", True),
        ]
        wait_converged(hosts, body["sha256"])
        history = client.get("/api/prompts/history").json()["items"]
        assert history[0]["sha256"] == body["sha256"] and history[0]["host"] == "a"


def test_status_groups_by_host_and_shows_a_disconnected_agent(
    three_hosts: tuple[RedisServer, list[SimHost]], panel_on_a: Served
) -> None:
    _server, (a, b, c) = three_hosts
    with panel_on_a.client() as client:
        status = wait_until(lambda: _status_with(client, 4), timeout=10)
        assert status["distributing"] is True and status["host"] == "a"
        assert [(h["host"], h["connected"], len(h["consumers"])) for h in status["hosts"]] == [
            ("a", True, 2),
            ("b", True, 1),
            ("c", True, 1),
        ]
        assert status["hosts"][1]["agent"]["versions"] == {"prompts": 1}
        # A hand edit on b: the panel records it with host b.
        sha = b.write("edited on b")
        wait_converged([a, b, c], sha)
        wait_until(lambda: client.get("/api/prompts/history").json()["items"][0]["sha256"] == sha, timeout=10)
        assert client.get("/api/prompts/history").json()["items"][0]["host"] == "b"
        c.kill_agent()
        status = wait_until(
            lambda: (s := client.get("/api/status").json()) and not s["hosts"][2]["connected"] and s, timeout=10
        )
        assert status["hosts"][2] == {"host": "c", "connected": False, "agent": None, "consumers": []}


def _status_with(client: httpx.Client, count: int) -> dict | None:  # type: ignore[type-arg]
    status = client.get("/api/status").json()
    return status if len(status["consumers"]) == count else None


def test_an_edit_that_lost_is_a_conflict_revision_in_the_panel_of_its_host(
    three_hosts: tuple[RedisServer, list[SimHost]], panel: PanelFactory
) -> None:
    _server, (a, b, c) = three_hosts
    served = panel(b)
    b.kill_agent()
    winner = a.write("winner on a")
    wait_converged([a, c], winner)
    loser = b.write("made on b while its agent was down")  # based on version 1, like the winner
    b.start_agent(env=HEARTBEAT)
    wait_converged([a, b, c], winner)
    with served.client() as client:

        def conflict_revision() -> dict | None:  # type: ignore[type-arg]
            items = client.get("/api/prompts/history").json()["items"]
            return next((i for i in items if i["origin"] == "conflict"), None)

        rev = wait_until(conflict_revision, timeout=10)
        assert (rev["sha256"], rev["host"], rev["author"]) == (loser, "b", "b")
        assert (
            client.get(f"/api/prompts/history/{loser}").content
            == b.state_dir.joinpath("sync-conflicts").glob("*.json").__next__().read_bytes()
        )
        status = client.get("/api/status").json()
        assert [(x["host"], x["sha256"], x["winner_sha256"]) for x in status["conflicts"]] == [("b", loser, winner)]
        assert client.get("/api/prompts").headers["etag"] == f'"{winner}"'  # the conflict never became current


def test_a_label_save_lists_the_labels_consumers_on_every_host(
    three_hosts: tuple[RedisServer, list[SimHost]], panel_on_a: Served
) -> None:
    """Labels are distributed like production, and a label's save answers with its consumers on b and c."""
    _server, hosts = three_hosts
    with panel_on_a.client() as client:
        created = client.put("/api/prompts?label=staging", content=make_doc("staging v1"))
        assert created.status_code in (200, 201), created.text
        watchers = []
        try:
            for h in hosts[1:]:
                staging = h.config / "prompts.staging.json"
                wait_until(staging.exists, timeout=15, message=f"staging distributed to {h.name}")
                argv = [os.fspath(PROMPTWATCH), "watch", str(staging), "--json", "--service", f"staging-{h.name}"]
                watchers.append(Child(argv, env=h.env))
                watchers[-1].line(timeout=30)

            def remote_documents() -> set[tuple[str, str]]:
                return {
                    (h.name, c["document"])
                    for h in hosts[1:]
                    for c in (read_local_agent(h.status_dir) or {}).get("consumers", [])
                    if c["service"].startswith("staging-")
                }

            wanted = {("b", "prompts.staging"), ("c", "prompts.staging")}
            wait_until(lambda: remote_documents() == wanted, timeout=15, message="the agents report the watchers")
            r = client.put("/api/prompts?label=staging&wait_ms=5000", content=make_doc("staging v2"))
            assert r.status_code == 200, r.text
            body = r.json()
            assert body["all_applied"] is True
            assert [c for c in _consumers(body) if c[0] != "a"] == [("b", "staging-b", True), ("c", "staging-c", True)]
            assert not any(c[1].startswith("bot-") for c in _consumers(body))  # production's consumers are not listed
            status = client.get("/api/status?label=staging").json()  # the label's processes, on every host
            assert [c for c in _consumers(status) if c[0] != "a"] == [
                ("b", "staging-b", True),
                ("c", "staging-c", True),
            ]
            assert [h["host"] for h in status["hosts"]] == ["a", "b", "c"]
        finally:
            for w in watchers:
                w.stop()


@pytest.mark.browser
def test_the_status_page_groups_processes_by_host_and_shows_a_host_that_is_gone(
    three_hosts: tuple[RedisServer, list[SimHost]], panel_on_a: Served, contexts: Callable[..., BrowserContext]
) -> None:
    _server, hosts = three_hosts
    page = contexts().new_page()
    page.goto(panel_on_a.url + "/status")
    page.fill("#login-token", TOKEN)
    page.click("#login-submit")
    expect(page.locator("#login")).to_be_hidden()
    for name in "abc":
        section = page.locator(f"#status-host-{name}")
        expect(section).to_have_attribute("data-connected", "true")
        expect(section.locator(f'tr[data-service="bot-{name}"]')).to_be_visible()
    expect(page.locator("#status-host-a")).to_contain_text("Хост a (эта панель)")
    expect(page.locator("#status-host-a tr[data-service='adminapi']")).to_be_visible()
    expect(page.locator("#status-not-distributing")).to_have_count(0)
    assert_accessible(page, "status with three hosts")
    hosts[2].kill_agent()  # host c's agent is gone: its record expires after three heartbeats
    gone = page.locator("#status-host-c")
    expect(gone).to_have_attribute("data-connected", "false", timeout=15_000)  # the page refreshes by itself
    expect(gone).to_contain_text("агент не на связи")
    assert_accessible(page, "status with a host gone")
    with panel_on_a.client() as client:
        r = client.put("/api/prompts", content=make_doc("from the panel on a"))
        assert r.status_code == 200, r.text
    page.goto(panel_on_a.url + "/history")
    expect(page.locator("#history-table tbody tr").first).to_contain_text("(хост a)")
