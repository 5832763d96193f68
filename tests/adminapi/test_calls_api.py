"""Call logs read from the store the Stasis service writes."""

from __future__ import annotations

from datetime import UTC, datetime

import httpx

from stasis.calllog import CallLog, Turn

from .conftest import Served


def test_empty_before_any_call(client: httpx.Client) -> None:
    r = client.get("/api/calls")
    assert r.status_code == 200
    assert r.json() == {"items": [], "total": 0, "limit": 50, "offset": 0}
    assert client.get("/api/calls/nope").status_code == 404


def test_list_filter_paginate_and_detail(served: Served) -> None:
    log = CallLog(served.settings.calllog_path)
    day1 = datetime(2026, 3, 1, 10, 0, tzinfo=UTC).timestamp()
    day2 = datetime(2026, 3, 2, 10, 0, tzinfo=UTC).timestamp()
    try:
        for i, (number, name, at) in enumerate(
            [("+79001112233", "Иван", day1), ("+79004445566", "Мария", day2), ("+79001112233", "Иван", day2 + 60)]
        ):
            log.start_call(f"c{i}", caller_number=number, caller_name=name, started_at=at, prompts_sha256=f"{i}" * 64)
            log.add_turn(
                f"c{i}",
                Turn(0, at + 1, caller_text="Сколько стоит доставка?", bot_text="Доставка — 300 рублей.", llm_ms=12.5),
            )
            log.end_call(f"c{i}", ended_at=at + 30, end_reason="hangup")
        log.start_call("console-1", caller_number="console", caller_name="console", started_at=day1 - 60,
                       prompts_sha256="c" * 64, console=True)  # fmt: skip
    finally:
        log.close()
    with served.client() as c:
        body = c.get("/api/calls").json()
        assert [x["id"] for x in body["items"]] == ["c2", "c1", "c0", "console-1"] and body["total"] == 4
        assert body["items"][0]["duration"] == 30
        assert [x["console"] for x in body["items"]] == [False, False, False, True]
        assert c.get("/api/calls/console-1").json()["console"] is True
        assert [x["id"] for x in c.get("/api/calls", params={"caller": "Иван"}).json()["items"]] == ["c2", "c0"]
        assert [x["id"] for x in c.get("/api/calls", params={"since": "2026-03-02"}).json()["items"]] == ["c2", "c1"]
        until = c.get("/api/calls", params={"until": "2026-03-01"}).json()
        assert [x["id"] for x in until["items"]] == ["c0", "console-1"]
        page = c.get("/api/calls", params={"limit": 1, "offset": 1}).json()
        assert [x["id"] for x in page["items"]] == ["c1"] and page["total"] == 4
        detail = c.get("/api/calls/c1").json()
        assert detail["prompts_sha256"] == "1" * 64 and detail["end_reason"] == "hangup"
        assert detail["turns"][0]["caller_text"] == "Сколько стоит доставка?"
        assert detail["turns"][0]["llm_ms"] == 12.5
        assert c.get("/api/calls", params={"since": "вчера"}).status_code == 422
