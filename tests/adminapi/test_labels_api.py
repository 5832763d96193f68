"""Labels in the panel's API: per-label prompts, history and rollback, labels compared, promotion with
the target's ETag, call filters and the outcomes per label and version — on real files and processes."""

from __future__ import annotations

import math
import os
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from promptwatch import read_statuses, sha256_hex
from stasis.calllog import CallLog, Turn
from tests.util import wait_until

from .conftest import Consumer, Served


def etag(data: bytes) -> str:
    return f'"{sha256_hex(data)}"'


@pytest.fixture
def label_consumer(status_dir: Path) -> Iterator[Callable[[Path, str], subprocess.Popen[bytes]]]:
    """A real ``promptwatch watch`` process on a label's file."""
    started: list[subprocess.Popen[bytes]] = []

    def start(path: Path, service: str) -> subprocess.Popen[bytes]:
        proc = subprocess.Popen(
            [sys.executable, "-m", "promptwatch.cli", "watch", str(path), "--json", "--service", service],
            env={**os.environ, "PROMPTS_STATUS_DIR": str(status_dir)},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        started.append(proc)
        wait_until(lambda: any(s.pid == proc.pid for s in read_statuses(status_dir, path=path)), timeout=20)
        return proc

    yield start
    for proc in started:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=15)


def test_create_a_label_as_a_copy_edit_it_and_keep_its_own_history(
    client: httpx.Client, prompts_file: Path, label_consumer: Callable[[Path, str], Any]
) -> None:
    production = prompts_file.read_bytes()
    r = client.post("/api/labels", json={"label": "staging", "from": "production"})
    assert r.status_code == 201, r.text
    staging = prompts_file.with_name("prompts.staging.json")
    assert staging.read_bytes() == production
    assert r.headers["Location"] == "/api/prompts?label=staging"
    assert r.json()["revision"]["origin"] == "copy"
    exists = client.post("/api/labels", json={"label": "staging", "from": "production"})
    assert (exists.status_code, exists.json()["code"]) == (409, "label_exists")
    assert client.post("/api/labels", json={"label": "Bad!", "from": "production"}).status_code == 422
    ghost = client.post("/api/labels", json={"label": "other", "from": "ghost"})
    assert (ghost.status_code, ghost.json()["code"]) == (404, "no_label")
    assert not prompts_file.with_name("prompts.other.json").exists()

    bot = label_consumer(staging, "metrotech-bot")
    got = client.get("/api/prompts", params={"label": "staging"})
    assert got.headers["ETag"] == etag(production)
    edited = {**orjson.loads(production), "greeting": "Тестовое приветствие"}
    stale = client.put("/api/prompts?label=staging", json=edited, headers={"If-Match": '"' + "0" * 64 + '"'})
    assert stale.status_code == 412
    r = client.put("/api/prompts?label=staging&wait_ms=5000", json=edited, headers={"If-Match": got.headers["ETag"]})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["all_applied"] is True
    # the bot and the panel's own watcher of the label both run it
    assert {(c["service"], c["pid"], c["in_sync"]) for c in body["consumers"]} == {
        ("metrotech-bot", bot.pid, True),
        ("adminapi", os.getpid(), True),
    }
    assert orjson.loads(staging.read_bytes())["greeting"] == "Тестовое приветствие"
    assert prompts_file.read_bytes() == production  # production untouched

    history = client.get("/api/prompts/history", params={"label": "staging"}).json()["items"]
    assert [h["origin"] for h in history] == ["api", "copy"]
    assert [h["origin"] for h in client.get("/api/prompts/history").json()["items"]] == ["file"]
    # a hand edit of the label file becomes a revision of that label by `file`
    staging.write_bytes(staging.read_bytes().replace("Тестовое".encode(), "Ручное".encode()))
    wait_until(
        lambda: client.get("/api/prompts/history", params={"label": "staging"}).json()["items"][0]["author"] == "file",
        timeout=10,
        message="the hand edit is in staging's history",
    )
    # diff and rollback per label
    first = history[-1]["sha256"]
    d = client.get("/api/prompts/diff", params={"from": first, "label": "staging"}).json()
    assert [(c["key"], c["after"]) for c in d["changes"]] == [("greeting", "Ручное приветствие")]
    r = client.post(f"/api/prompts/rollback/{first}?label=staging", headers={"If-Match": etag(staging.read_bytes())})
    assert r.status_code == 200, r.text
    assert staging.read_bytes() == production
    assert client.get(f"/api/prompts/history/{first[:10]}", params={"label": "staging"}).content == production

    labels = client.get("/api/labels").json()["items"]
    assert [(x["label"], x["file"], x["document"]) for x in labels] == [
        ("production", "prompts.json", "prompts"),
        ("staging", "prompts.staging.json", "prompts.staging"),
    ]
    staging_row = labels[1]
    assert staging_row["sha256"] == sha256_hex(production) and staging_row["valid"] is True
    wait_until(
        lambda: [(x["in_sync"], x["out_of_sync"]) for x in client.get("/api/labels").json()["items"]][1] == (2, 0),
        timeout=10,
        message="the staging consumer caught up with the rollback",
    )


def test_unknown_and_malformed_labels(client: httpx.Client, prompts_file: Path) -> None:
    assert client.get("/api/prompts", params={"label": "ghost"}).status_code == 404
    r = client.get("/api/prompts", params={"label": "Bad!"})
    assert (r.status_code, r.json()["code"]) == (422, "invalid_request")  # the name's rule is in the schema
    assert client.get("/api/prompts", params={"label": "ghost"}).json()["code"] == "no_label"
    os.mkfifo(prompts_file.with_name("prompts.fifo.json"))  # never opened for a blocking read
    fifo = client.get("/api/prompts", params={"label": "fifo"})
    assert (fifo.status_code, fifo.json()["code"]) == (422, "invalid_label")
    assert [x["label"] for x in client.get("/api/labels").json()["items"]] == ["production"]
    # saving a whole document under a new name creates the label
    doc = orjson.loads(prompts_file.read_bytes())
    assert client.put("/api/prompts?label=short-greeting", json={**doc, "greeting": "Алло!"}).status_code == 200
    assert prompts_file.with_name("prompts.short-greeting.json").exists()


def test_compare_two_labels(client: httpx.Client, prompts_file: Path) -> None:
    doc = orjson.loads(prompts_file.read_bytes())
    prompts_file.with_name("prompts.staging.json").write_bytes(
        orjson.dumps({**doc, "greeting": "Привет!", "extra": "новое"}, option=orjson.OPT_INDENT_2)
    )
    d = client.get("/api/labels/compare", params={"from": "production", "to": "staging"}).json()
    assert d["from_sha256"] == sha256_hex(prompts_file.read_bytes())
    assert [(c["key"], c["kind"]) for c in d["changes"]] == [("greeting", "changed"), ("extra", "added")]
    assert d["unified"].startswith("--- production ")
    assert client.get("/api/labels/compare", params={"from": "production", "to": "ghost"}).status_code == 404


def test_promote_with_the_targets_etag_412_on_a_concurrent_change(
    client: httpx.Client, prompts_file: Path, consumer: Callable[[str], Consumer]
) -> None:
    bot = consumer("metrotech-bot")
    doc = orjson.loads(prompts_file.read_bytes())
    staged = orjson.dumps({**doc, "greeting": "Версия из staging"}) + b"\n\n"  # exact bytes, not re-serialised
    prompts_file.with_name("prompts.staging.json").write_bytes(staged)
    reviewed = client.get("/api/prompts").headers["ETag"]

    r = client.post("/api/labels/production/promote", params={"from": "staging"})
    assert (r.status_code, r.json()["code"]) == (422, "invalid_request")  # no ETag, no promotion
    assert [e["path"] for e in r.json()["errors"]] == ["header.if-match"]
    # production changes meanwhile (a hand edit): the promotion reviewed against the old one is refused
    changed = prompts_file.read_bytes().replace("Метротех".encode(), "Метротех-2".encode())
    prompts_file.write_bytes(changed)
    r = client.post("/api/labels/production/promote", params={"from": "staging"}, headers={"If-Match": reviewed})
    assert (r.status_code, r.json()["code"]) == (412, "stale_etag")
    assert r.json()["current_sha256"] == sha256_hex(changed)
    assert prompts_file.read_bytes() == changed

    r = client.post(
        "/api/labels/production/promote",
        params={"from": "staging", "wait_ms": 5000},
        headers={"If-Match": etag(changed)},
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert prompts_file.read_bytes() == staged
    assert body["sha256"] == sha256_hex(staged) and body["previous_sha256"] == sha256_hex(changed)
    assert body["all_applied"] is True
    assert [(c["pid"], c["in_sync"]) for c in body["consumers"] if c["service"] == "metrotech-bot"] == [(bot.pid, True)]
    assert r.headers["ETag"] == etag(staged)
    top = client.get("/api/prompts/history").json()["items"][0]
    assert (top["origin"], top["message"]) == ("promote", f"promoted from staging at {sha256_hex(staged)[:12]}")
    r = client.post("/api/labels/production/promote", params={"from": "production"}, headers={"If-Match": etag(staged)})
    assert (r.status_code, r.json()["code"]) == (409, "label_conflict")


def test_cli_promotion_is_recorded_once_in_the_panels_history(served: Served, prompts_file: Path) -> None:
    doc = orjson.loads(prompts_file.read_bytes())
    staged = orjson.dumps({**doc, "greeting": "Из командной строки"})
    prompts_file.with_name("prompts.staging.json").write_bytes(staged)
    env = {
        **os.environ,
        "PROMPTS_PATH": str(prompts_file),
        "STATE_DIR": str(served.settings.state_dir),
        "PROMPTS_STATUS_DIR": str(served.settings.prompts_status_dir),
    }
    result = subprocess.run(
        [sys.executable, "-m", "promptwatch.cli", "promote", "staging", "production"],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 0, result.stderr
    with served.client() as c:
        editor = served.app.state.editor  # type: ignore[attr-defined]
        wait_until(lambda: editor.hot.current.sha256 == sha256_hex(staged), timeout=10, message="panel reloaded")
        editor.sync_history()  # whatever the panel's watcher does, it finds the promotion recorded
        items = c.get("/api/prompts/history").json()["items"]
    assert items[0]["sha256"] == sha256_hex(staged)
    assert [h["origin"] for h in items] == ["promote", "file"]


def _seed(
    path: Path, label: str, sha: str, reasons: dict[str, int], *, turns: int, reply_ms: float, start: int
) -> None:
    log = CallLog(path)
    try:
        n = start
        for reason, count in reasons.items():
            for _ in range(count):
                call = f"{label}-{n}"
                at = 1_800_000_000.0 + n
                log.start_call(call, caller_number=str(n), caller_name="", started_at=at, prompts_sha256=sha,
                               label=label)  # fmt: skip
                for t in range(turns):
                    error = "llm: HTTP 503" if (n % 10 == 0 and t == 0) else None
                    log.add_turn(call, Turn(t, at + t, caller_text="?", bot_text="!", stt_ms=100.0,
                                            llm_ms=reply_ms - 150.0, tts_ms=50.0, error=error))  # fmt: skip
                log.end_call(call, ended_at=at + 60, end_reason=reason)
                n += 1
    finally:
        log.close()


def test_outcomes_per_label_and_version_with_intervals(served: Served) -> None:
    path = served.settings.calllog_path
    prod, stag, tiny = "a" * 64, "b" * 64, "c" * 64
    _seed(
        path, "production", prod, {"goodbye": 60, "operator": 25, "caller_hangup": 15}, turns=3, reply_ms=900, start=0
    )
    _seed(path, "staging", stag, {"goodbye": 80, "operator": 8, "no_input": 12}, turns=2, reply_ms=700, start=1000)
    _seed(path, "short-greeting", tiny, {"goodbye": 6, "operator": 2}, turns=1, reply_ms=500, start=2000)
    log = CallLog(path)  # a call still in progress does not count
    log.start_call("live", caller_number="1", caller_name="", started_at=1_800_000_500.0, prompts_sha256=stag,
                   label="staging")  # fmt: skip
    log.close()
    params = {"since": "2027-01-15T00:00:00Z", "until": "2027-01-16T00:00:00Z"}
    with served.client() as c:
        r = c.get("/api/outcomes", params=params)
        assert r.status_code == 200, r.text
        out = r.json()
        rows = {(x["label"], x["sha256"]): x for x in out["items"]}
        assert list(rows) == [("production", prod), ("short-greeting", tiny), ("staging", stag)]
        p, s, t = rows[("production", prod)], rows[("staging", stag)], rows[("short-greeting", tiny)]
        assert p["baseline"] is True and out["baseline"]["sha256"] == prod
        assert (p["calls"], s["calls"], t["calls"]) == (100, 100, 8)
        assert (p["median_turns"], s["median_turns"]) == (3, 2)
        assert s["end_reasons"] == {"goodbye": 80, "no_input": 12, "operator": 8}
        assert s["shares"]["goodbye"] == 0.8
        assert s["backend_errors"] == 10 and s["calls_with_errors"] == 10
        assert (p["median_reply_ms"], s["median_reply_ms"]) == (900, 700)
        goodbye = {x["reason"]: x for x in s["comparisons"]}["goodbye"]
        half = 1.959963984540054 * math.sqrt(0.8 * 0.2 / 100 + 0.6 * 0.4 / 100)
        assert goodbye["difference"] == pytest.approx(0.2, abs=1e-4)
        assert goodbye["low"] == pytest.approx(0.2 - half, abs=1e-4)
        assert goodbye["high"] == pytest.approx(0.2 + half, abs=1e-4)
        assert goodbye["too_small"] is False and goodbye["significant"] is True
        transfer = {x["reason"]: x for x in s["comparisons"]}["operator"]
        assert transfer["difference"] == pytest.approx(-0.17, abs=1e-4) and transfer["significant"] is True
        assert all(x["too_small"] for x in t["comparisons"])  # 8 calls tell nothing
        assert p["comparisons"] == []
        # the calls themselves, by label and by version
        calls = c.get("/api/calls", params={"label": "staging", "limit": 500}).json()
        assert calls["total"] == 101 and {x["label"] for x in calls["items"]} == {"staging"}
        by_sha = c.get("/api/calls", params={"prompts_sha256": "ccccccc"}).json()
        assert by_sha["total"] == 8 and by_sha["items"][0]["prompts_sha256"] == tiny
        assert c.get("/api/calls", params={"label": "Bad!"}).status_code == 422
        empty = c.get("/api/outcomes", params={"since": "2027-01-16", "until": "2027-01-14"}).json()
        assert (empty["items"], empty["baseline"]) == ([], None)  # an empty period
        assert c.get("/api/outcomes", params={"since": "1.5"}).status_code == 422  # ISO dates only
        other = c.get("/api/outcomes", params={**params, "baseline": "staging"}).json()
        assert other["baseline"]["sha256"] == stag


def test_openapi_documents_the_label_endpoints(client: httpx.Client) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    for path in ("/api/labels", "/api/labels/compare", "/api/labels/{label}/promote", "/api/outcomes"):
        assert path in paths, path
    for path, method in (
        ("/api/prompts", "get"),
        ("/api/prompts", "put"),
        ("/api/prompts/history", "get"),
        ("/api/prompts/diff", "get"),
        ("/api/prompts/rollback/{sha}", "post"),
        ("/api/status", "get"),
    ):
        assert "label" in {p["name"] for p in paths[path][method]["parameters"]}, (path, method)  # fmt: skip
    params = {p["name"]: p for p in paths["/api/labels/{label}/promote"]["post"]["parameters"]}
    assert params["if-match"]["required"] is True


def test_status_per_label(client: httpx.Client, prompts_file: Path, label_consumer: Callable[[Path, str], Any]) -> None:
    staging = prompts_file.with_name("prompts.staging.json")
    staging.write_bytes(prompts_file.read_bytes().replace("Метротех".encode(), "Тест".encode()))
    bot = label_consumer(staging, "metrotech-bot")
    body = client.get("/api/status", params={"label": "staging"}).json()
    assert body["path"] == str(staging) and body["sha256"] == sha256_hex(staging.read_bytes())
    assert ("metrotech-bot", bot.pid, True) in {(c["service"], c["pid"], c["in_sync"]) for c in body["consumers"]}
    assert bot.pid not in {c["pid"] for c in client.get("/api/status").json()["consumers"]}
