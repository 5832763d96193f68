"""``/api/events`` (Server-Sent Events with single-use tickets), ``/api/whoami``, the status fields, the
stable error codes and the calls filters, over real HTTP."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from adminapi.events import TicketBook, TooManyTickets
from promptwatch import atomic_write
from stasis.calllog import CallLog, Turn

from .conftest import TOKEN, Consumer, Served, make_settings, serve, stop


class Stream:
    """An open event stream, read event by event with a deadline."""

    def __init__(self, response: httpx.Response) -> None:
        self.response = response
        self._lines: Iterator[str] = response.iter_lines()

    def next_event(self) -> tuple[str, dict[str, Any]]:
        name = ""
        for line in self._lines:
            if line.startswith("event: "):
                name = line[7:]
            elif line.startswith("data: ") and name:
                return name, orjson.loads(line[6:])
        raise AssertionError("the stream ended")

    def drain(self) -> list[str]:
        """The lines left until the server ends the stream."""
        return list(self._lines)

    def until(self, predicate: Callable[[str, dict[str, Any]], bool], *, timeout: float = 10) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            name, data = self.next_event()
            if predicate(name, data):
                return data
        raise AssertionError("no such event before the deadline")


def ticket(client: httpx.Client) -> str:
    r = client.post("/api/events/ticket")
    assert r.status_code == 200, r.text
    assert r.json()["operator"] == "admin" and 0 < r.json()["expires_in"] <= 60
    value: str = r.json()["ticket"]
    return value


def test_tickets_need_the_token_and_work_once(served: Served) -> None:
    with served.client(token=None) as anonymous:
        r = anonymous.post("/api/events/ticket")
        assert r.status_code == 401 and r.json()["code"] == "token_required"
        assert anonymous.get("/api/events").status_code == 422
        r = anonymous.get("/api/events", params={"ticket": "guessed"})
        assert r.status_code == 401 and r.json()["code"] == "ticket_invalid"
    with served.client() as c:
        t = ticket(c)
        with c.stream("GET", "/api/events", params={"ticket": t}) as r:
            assert r.status_code == 200
            assert r.headers["content-type"].startswith("text/event-stream")
            assert r.headers["cache-control"] == "no-cache"
        again = c.get("/api/events", params={"ticket": t})
        assert again.status_code == 401 and again.json()["code"] == "ticket_invalid"


def test_ticket_book_expiry_and_capacity() -> None:
    book = TicketBook(ttl=0.0)
    assert book.redeem(book.issue("alice")) is None  # expired at once
    book = TicketBook(ttl=30, capacity=2)
    first = book.issue("alice")
    book.issue("bob")
    with pytest.raises(TooManyTickets):
        book.issue("eve")
    assert book.redeem(first) == "alice"
    assert book.redeem(first) is None
    book.issue("eve")  # room again


def test_the_stream_tells_who_changed_what(served: Served, prompts_file: Path) -> None:
    with served.client() as c, c.stream("GET", "/api/events", params={"ticket": ticket(c)}) as r:
        stream = Stream(r)
        first = stream.until(lambda name, _: name == "prompts")
        assert first["valid"] and first["author"] == "file" and first["origin"] == "file"
        consumers = stream.until(lambda name, _: name == "consumers")
        assert [x["service"] for x in consumers["consumers"]] == ["adminapi"]

        doc = orjson.loads(prompts_file.read_bytes())
        saved = c.put("/api/prompts", json={**doc, "greeting": "Через API"}).json()["sha256"]
        event = stream.until(lambda name, d: name == "prompts" and d["sha256"] == saved)
        assert (event["author"], event["origin"]) == ("admin", "api")

        by_hand = prompts_file.read_bytes().replace("Через API".encode(), "Вручную".encode())
        sha = atomic_write(prompts_file, by_hand)
        event = stream.until(lambda name, d: name == "prompts" and d["sha256"] == sha)
        assert (event["author"], event["origin"]) == ("file", "file")

        sha = atomic_write(prompts_file, b'{"greeting": ')
        event = stream.until(lambda name, d: name == "prompts" and d["sha256"] == sha)
        assert event["valid"] is False and "prompts.json" in event["error"]
        sha = atomic_write(prompts_file, by_hand)
        event = stream.until(lambda name, d: name == "prompts" and d["sha256"] == sha)
        assert event["valid"] is True


def test_a_consumer_change_is_pushed(served: Served, consumer: Callable[[str], Consumer]) -> None:
    with served.client() as c, c.stream("GET", "/api/events", params={"ticket": ticket(c)}) as r:
        stream = Stream(r)
        stream.until(lambda name, _: name == "consumers")
        bot = consumer("metrotech-bot")
        event = stream.until(lambda name, d: name == "consumers" and any(x["pid"] == bot.pid for x in d["consumers"]))
        mine = next(x for x in event["consumers"] if x["pid"] == bot.pid)
        assert mine["in_sync"] and mine["version"] and mine["started_at"] and mine["updated_at"]


def test_stopping_the_panel_ends_open_streams(config_dir: Path, status_dir: Path, tmp_path: Path) -> None:
    s = serve(make_settings(config_dir, status_dir, tmp_path))
    client = httpx.Client(base_url=s.url, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10)
    try:
        with client.stream("GET", "/api/events", params={"ticket": ticket(client)}) as r:
            stream = Stream(r)
            stream.until(lambda name, _: name == "consumers")
            started = time.monotonic()
            stop(s)  # would wait for the stream to end by itself without the hub closing it
            assert time.monotonic() - started < 5
            rest = stream.drain()  # ends, instead of hitting the 10 s read timeout
            assert all(not line.startswith("data: ") or "sha256" in line for line in rest)
    finally:
        client.close()
        if s.thread.is_alive():
            stop(s)


def test_whoami_and_the_status_fields(config_dir: Path, status_dir: Path, tmp_path: Path) -> None:
    settings = make_settings(config_dir, status_dir, tmp_path, admin_expected_consumers="metrotech-bot, adminapi")
    s = serve(settings)
    try:
        with s.client() as c:
            assert c.get("/api/whoami").json() == {"operator": "admin", "version": "0.1.0"}
            body = c.get("/api/status").json()
            assert body["missing"] == ["metrotech-bot"]
            panel = body["panel"]
            assert panel["version"] == "0.1.0" and panel["hostname"] and panel["started_at"] <= panel["now"]
            [me] = body["consumers"]
            assert me["service"] == "adminapi" and me["version"] == "0.1.0"
            assert me["started_at"] <= me["updated_at"] <= panel["now"]
    finally:
        stop(s)


def test_every_error_has_a_stable_code(served: Served, prompts_file: Path) -> None:
    with served.client(token="wrong-token-0123456789") as bad:
        assert bad.get("/api/status").json()["code"] == "wrong_token"
    with served.client() as c:
        r = c.put("/api/prompts", content=b'{"greeting": "x",}')
        body = r.json()
        assert r.status_code == 422 and body["code"] == "invalid_json"
        assert body["errors"][0]["kind"] == "json_syntax" and body["errors"][0]["line"] == 1
        r = c.put("/api/prompts", json={"system_prompt": "s", "greeting": " "})
        assert r.json()["code"] == "invalid_document" and r.json()["errors"][0]["kind"] == "blank"
        r = c.put("/api/prompts", json={"greeting": "g"})
        assert r.json()["errors"][0] == {"path": "system_prompt", "message": "Field required", "kind": "missing",
                                         "line": None, "col": None}  # fmt: skip
        r = c.put(
            "/api/prompts", json=orjson.loads(prompts_file.read_bytes()), headers={"If-Match": '"' + "0" * 64 + '"'}
        )
        assert r.status_code == 412 and r.json()["code"] == "stale_etag"
        assert c.get("/api/prompts/history/abcdef0").json()["code"] == "no_revision"
        assert c.get("/api/calls/nope").json()["code"] == "no_call"
        assert c.get("/api/kb/nope.md").json()["code"] == "kb_not_found"
        assert c.get("/api/kb/..%2Fx.md").json()["code"] in ("kb_bad_name", "not_found")
        assert c.get("/api/prompts/history", params={"limit": 0}).json()["code"] == "invalid_request"


def test_calls_filter_by_end_reason_and_error(served: Served) -> None:
    log = CallLog(served.settings.calllog_path)
    try:
        for i, reason in enumerate(["goodbye", "no_input", "error"]):
            log.start_call(
                f"c{i}", caller_number="1", caller_name="", started_at=1_700_000_000 + i, prompts_sha256="a" * 64
            )
            log.end_call(f"c{i}", ended_at=1_700_000_010 + i, end_reason=reason)
        log.add_turn("c1", Turn(0, 1_700_000_002, caller_text="?", error="STT failed"))
    finally:
        log.close()
    with served.client() as c:
        ids = lambda **q: [x["id"] for x in c.get("/api/calls", params=q).json()["items"]]  # noqa: E731
        assert ids(end_reason="no_input") == ["c1"]
        assert ids(had_error="true") == ["c2", "c1"]
        assert ids(had_error="false") == ["c0"]
        assert c.get("/api/calls/c1").json()["had_error"] is True
