"""The prompts API against real files, a real watcher in the app and real consumer processes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from promptwatch import sha256_hex
from tests.util import wait_until

from .conftest import OTHER_TOKEN, Consumer, Served


def doc(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = orjson.loads(path.read_bytes())
    return data


def etag_of(path: Path) -> str:
    return f'"{sha256_hex(path.read_bytes())}"'


def test_get_serves_the_file_with_its_sha256_as_etag_and_304_when_unchanged(
    client: httpx.Client, prompts_file: Path
) -> None:
    r = client.get("/api/prompts")
    assert r.status_code == 200
    assert r.content == prompts_file.read_bytes()
    assert r.headers["etag"] == etag_of(prompts_file)
    assert r.headers["content-type"] == "application/json"
    assert r.json()["greeting"].startswith("Здравствуйте")
    r304 = client.get("/api/prompts", headers={"If-None-Match": r.headers["etag"]})
    assert r304.status_code == 304 and r304.content == b""
    assert r304.headers["etag"] == r.headers["etag"]
    assert client.get("/api/prompts", headers={"If-None-Match": '"0000"'}).status_code == 200


def test_get_is_never_stale_after_a_write_outside_the_panel(client: httpx.Client, prompts_file: Path) -> None:
    first = client.get("/api/prompts").headers["etag"]
    new = {**doc(prompts_file), "greeting": "Алло, это новая версия"}
    subprocess.run(
        [sys.executable, "-m", "promptwatch.cli", "write", str(prompts_file), "-"],
        input=orjson.dumps(new),
        check=True,
        capture_output=True,
    )
    r = client.get("/api/prompts", headers={"If-None-Match": first})
    assert r.status_code == 200 and r.json()["greeting"] == "Алло, это новая версия"
    # The panel's watcher records the CLI's write in the history, by "file".
    sha = sha256_hex(prompts_file.read_bytes())
    wait_until(
        lambda: client.get("/api/prompts/history").json()["items"][0]["sha256"] == sha,
        timeout=10,
        message="the CLI write is in the history",
    )
    assert client.get("/api/prompts/history").json()["items"][0]["author"] == "file"


def test_put_writes_atomically_and_reports_the_consumer_applying_it(
    client: httpx.Client, prompts_file: Path, consumer: Callable[[str], Consumer]
) -> None:
    bot = consumer("metrotech-bot")
    etag = etag_of(prompts_file)
    new = {**doc(prompts_file), "greeting": "Добрый день! Метротех слушает."}
    r = client.put("/api/prompts?wait_ms=5000&message=приветствие", json=new, headers={"If-Match": etag})
    assert r.status_code == 200, r.text
    body = r.json()
    assert doc(prompts_file) == new
    assert body["sha256"] == sha256_hex(prompts_file.read_bytes())
    assert r.headers["etag"] == f'"{body["sha256"]}"'
    assert body["previous_sha256"] == etag.strip('"')
    assert body["revision"]["author"] == "admin" and body["revision"]["message"] == "приветствие"
    assert body["all_applied"] is True
    mine = [c for c in body["consumers"] if c["pid"] == bot.pid]
    assert len(mine) == 1 and mine[0]["in_sync"] and mine[0]["service"] == "metrotech-bot"
    assert mine[0]["latency_ms"] is not None and 0 <= mine[0]["latency_ms"] < 5000
    assert not [p for p in prompts_file.parent.iterdir() if p.name.startswith(".pw-tmp-")]


def test_post_is_kept_for_existing_scripts(client: httpx.Client, prompts_file: Path) -> None:
    new = {**doc(prompts_file), "operator": "Переключаю на оператора."}
    r = client.post("/api/prompts", json=new)
    assert r.status_code == 200
    assert doc(prompts_file)["operator"] == "Переключаю на оператора."


def test_wait_ms_reports_a_stuck_consumer_with_the_sha_it_is_on(
    client: httpx.Client, prompts_file: Path, consumer: Callable[[str], Consumer]
) -> None:
    live = consumer("metrotech-bot")
    stuck = consumer("metrotech-bot-stuck")
    old_sha = sha256_hex(prompts_file.read_bytes())
    os.kill(stuck.pid, signal.SIGSTOP)
    try:
        new = {**doc(prompts_file), "goodbye": "Всего доброго!"}
        r = client.put("/api/prompts?wait_ms=700", json=new)
        assert r.status_code == 200
        body = r.json()
        assert body["all_applied"] is False
        assert 600 <= body["waited_ms"] < 5000
        by_pid = {c["pid"]: c for c in body["consumers"]}
        assert by_pid[live.pid]["in_sync"] is True
        assert by_pid[stuck.pid]["in_sync"] is False
        assert by_pid[stuck.pid]["sha256"] == old_sha
        assert by_pid[stuck.pid]["latency_ms"] is None
        status = client.get("/api/status").json()
        assert status["out_of_sync"] >= 1
    finally:
        os.kill(stuck.pid, signal.SIGCONT)
    # Once resumed, the stuck consumer catches up and the status shows it in sync.
    wait_until(
        lambda: all(c["in_sync"] for c in client.get("/api/status").json()["consumers"]),
        timeout=10,
        message="the resumed consumer is in sync",
    )


def test_wait_ms_is_capped(served: Served, prompts_file: Path, consumer: Callable[[str], Consumer]) -> None:
    served.settings.admin_wait_max_ms = 300
    stuck = consumer("stuck")
    os.kill(stuck.pid, signal.SIGSTOP)
    try:
        with served.client() as c:
            r = c.put("/api/prompts?wait_ms=60000", json={**doc(prompts_file), "goodbye": "Пока!"})
        assert r.status_code == 200 and r.json()["all_applied"] is False
        assert r.json()["waited_ms"] < 3000
    finally:
        os.kill(stuck.pid, signal.SIGCONT)


def test_stale_if_match_gets_412_with_the_current_etag_and_nothing_written(
    client: httpx.Client, prompts_file: Path
) -> None:
    stale = etag_of(prompts_file)
    assert client.put("/api/prompts", json={**doc(prompts_file), "greeting": "Первый"}).status_code == 200
    before = prompts_file.read_bytes()
    r = client.put("/api/prompts", json={**doc(prompts_file), "greeting": "Второй"}, headers={"If-Match": stale})
    assert r.status_code == 412
    assert r.headers["etag"] == f'"{sha256_hex(before)}"'
    assert r.json()["current_sha256"] == sha256_hex(before)
    assert prompts_file.read_bytes() == before


def test_two_concurrent_writers_with_the_same_etag_exactly_one_wins(served: Served, prompts_file: Path) -> None:
    base = doc(prompts_file)
    etag = etag_of(prompts_file)
    results: dict[str, httpx.Response] = {}
    barrier = threading.Barrier(8)

    def writer(name: str) -> None:
        with served.client() as c:
            barrier.wait()
            results[name] = c.put(
                "/api/prompts", json={**base, "greeting": f"Версия {name}"}, headers={"If-Match": etag}
            )

    threads = [threading.Thread(target=writer, args=(str(i),)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    winners = [n for n, r in results.items() if r.status_code == 200]
    losers = [n for n, r in results.items() if r.status_code == 412]
    assert len(winners) == 1 and len(losers) == 7, {n: r.status_code for n, r in results.items()}
    assert doc(prompts_file)["greeting"] == f"Версия {winners[0]}"
    current = sha256_hex(prompts_file.read_bytes())
    assert all(results[n].json()["current_sha256"] == current for n in losers)
    # Nothing lost: the history has the original, then the winner, and no loser.
    with served.client() as c:
        history = c.get("/api/prompts/history").json()["items"]
    assert [h["sha256"] for h in history[:2]] == [current, etag.strip('"')]


def test_invalid_documents_get_422_with_json_paths_and_nothing_written(
    client: httpx.Client, prompts_file: Path
) -> None:
    before = prompts_file.read_bytes()
    bad = {**doc(prompts_file), "greeting": "   ", "fillers": ["ок", ""], "custom": 5}
    r = client.put("/api/prompts", json=bad)
    assert r.status_code == 422
    paths = {e["path"]: e["message"] for e in r.json()["errors"]}
    assert set(paths) == {"greeting", "fillers[1]", "custom"}
    assert paths["greeting"] == "must not be blank"
    r = client.put(
        "/api/prompts", content=b'{"system_prompt": "x",\n  "greeting": }', headers={"Content-Type": "application/json"}
    )
    assert r.status_code == 422
    err = r.json()["errors"][0]
    assert err["path"] == "$" and err["line"] == 2 and err["col"] == 15
    r = client.put("/api/prompts", json=["not", "an", "object"])
    assert r.status_code == 422 and r.json()["errors"][0]["path"] == "$"
    assert prompts_file.read_bytes() == before


def test_body_over_the_limit_gets_413_and_nothing_written(client: httpx.Client, prompts_file: Path) -> None:
    before = prompts_file.read_bytes()
    big = {**doc(prompts_file), "system_prompt": "я" * (600 * 1024)}  # 1.2 MB in UTF-8
    assert client.put("/api/prompts", json=big).status_code == 413

    def chunks() -> Any:
        yield b'{"system_prompt": "'
        for _ in range(40):
            yield b"x" * 32768
        yield b'", "greeting": "hi"}'

    assert client.put("/api/prompts", content=chunks()).status_code == 413  # streamed, no Content-Length
    assert prompts_file.read_bytes() == before


def test_tokens_401_without_403_with_a_wrong_one_and_healthz_open(served: Served) -> None:
    with served.client(token=None) as anon:
        r = anon.get("/api/prompts")
        assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer"
        assert anon.get("/metrics").status_code == 401
        assert anon.put("/api/prompts", json={}).status_code == 401
        assert anon.get("/healthz").json() == {"status": "ok"}
    with served.client(token="wrong-token-0123456789") as wrong:
        assert wrong.get("/api/prompts").status_code == 403
        assert wrong.get("/api/status").status_code == 403
        assert wrong.delete("/api/kb/тарифы.md").status_code == 403
    assert (served.settings.knowledge_base_dir / "тарифы.md").exists()


def test_history_records_the_original_content_and_rollback_restores_it(
    client: httpx.Client, prompts_file: Path
) -> None:
    original = prompts_file.read_bytes()
    items = client.get("/api/prompts/history").json()["items"]
    assert [(h["sha256"], h["author"]) for h in items] == [(sha256_hex(original), "file")]
    sent = orjson.dumps({**doc(prompts_file), "greeting": "Новое приветствие"}, option=orjson.OPT_INDENT_2)
    r = client.put("/api/prompts", content=sent)
    new_sha = r.json()["sha256"]
    assert prompts_file.read_bytes() == sent and new_sha == sha256_hex(sent)  # stored as sent
    diff = client.get("/api/prompts/diff", params={"from": sha256_hex(original), "to": new_sha}).json()
    assert [(c["key"], c["kind"], c["after"]) for c in diff["changes"]] == [
        ("greeting", "changed", "Новое приветствие")
    ]
    assert '+  "greeting": "Новое приветствие"' in diff["unified"]
    assert client.get(f"/api/prompts/history/{sha256_hex(original)[:10]}").content == original
    r = client.post(f"/api/prompts/rollback/{sha256_hex(original)}", headers={"If-Match": f'"{new_sha}"'})
    assert r.status_code == 200, r.text
    assert prompts_file.read_bytes() == original
    assert r.json()["revision"]["origin"] == "rollback"
    items = client.get("/api/prompts/history").json()["items"]
    assert [h["origin"] for h in items] == ["rollback", "api", "file"]
    assert client.post("/api/prompts/rollback/" + "0" * 64).status_code == 404
    assert client.post(f"/api/prompts/rollback/{new_sha}", headers={"If-Match": f'"{new_sha}"'}).status_code == 412


def test_a_hand_edit_becomes_a_revision_by_file(client: httpx.Client, prompts_file: Path) -> None:
    text = prompts_file.read_text(encoding="utf-8").replace("Метротех", "Метротех-Сервис")
    prompts_file.write_text(text, encoding="utf-8")  # in place, as an editor would
    sha = sha256_hex(text.encode())

    def recorded() -> bool:
        items = client.get("/api/prompts/history").json()["items"]
        return bool(items[0]["sha256"] == sha and items[0]["author"] == "file")

    wait_until(recorded, timeout=10, message="the hand edit is in the history")
    assert len(client.get("/api/prompts/history").json()["items"]) == 2


def test_patch_conflicts_only_when_that_key_changed(client: httpx.Client, prompts_file: Path) -> None:
    base = etag_of(prompts_file)
    # Someone else changes the greeting.
    assert client.put("/api/prompts", json={**doc(prompts_file), "greeting": "Чужое"}).status_code == 200
    # My patch of another key, based on the old ETag, still applies and keeps their change.
    r = client.patch("/api/prompts/goodbye", json={"value": "До встречи!"}, headers={"If-Match": base})
    assert r.status_code == 200, r.text
    assert doc(prompts_file)["greeting"] == "Чужое" and doc(prompts_file)["goodbye"] == "До встречи!"
    # My patch of the greeting they changed conflicts.
    r = client.patch("/api/prompts/greeting", json={"value": "Моё"}, headers={"If-Match": base})
    assert r.status_code == 412 and r.headers["etag"] == etag_of(prompts_file)
    assert doc(prompts_file)["greeting"] == "Чужое"
    # Custom keys can be added and removed; required ones cannot be removed.
    assert client.patch("/api/prompts/перевод", json={"value": "Перевожу"}).status_code == 200
    assert doc(prompts_file)["перевод"] == "Перевожу"
    assert client.patch("/api/prompts/перевод", json={"remove": True}).status_code == 200
    assert "перевод" not in doc(prompts_file)
    r = client.patch("/api/prompts/system_prompt", json={"remove": True})
    assert r.status_code == 422 and r.json()["errors"][0]["path"] == "system_prompt"


def test_author_is_the_token_name(served: Served, prompts_file: Path) -> None:
    with served.client(OTHER_TOKEN) as c:
        r = c.put("/api/prompts", json={**doc(prompts_file), "greeting": "От второго"})
    assert r.json()["revision"]["author"] == "second"


def test_an_invalid_file_on_disk_serves_the_last_good_revision_with_the_disk_etag(
    client: httpx.Client, prompts_file: Path
) -> None:
    good = prompts_file.read_bytes()
    prompts_file.write_bytes(b'{"system_prompt": ')
    r = client.get("/api/prompts")
    assert r.status_code == 200 and r.content == good
    assert r.headers["x-prompts-valid"] == "false"
    assert r.headers["etag"] == etag_of(prompts_file)
    status = client.get("/api/status").json()
    assert status["valid"] is False and "prompts.json" in status["error"]
    # Saving with that ETag replaces the broken file.
    r2 = client.put("/api/prompts", content=good, headers={"If-Match": r.headers["etag"]})
    assert r2.status_code == 200 and orjson.loads(prompts_file.read_bytes()) == orjson.loads(good)


def test_history_keeps_only_the_retention(served: Served, prompts_file: Path) -> None:
    served.settings.admin_history_retention = 3
    served.app.state.history.retention = 3  # type: ignore[attr-defined]
    with served.client() as c:
        for i in range(5):
            assert c.put("/api/prompts", json={**doc(prompts_file), "greeting": f"Версия {i}"}).status_code == 200
        body = c.get("/api/prompts/history").json()
        assert body["total"] == 3
        greetings = [
            orjson.loads(c.get(f"/api/prompts/history/{h['sha256']}").content)["greeting"] for h in body["items"]
        ]
    assert greetings == ["Версия 4", "Версия 3", "Версия 2"]


@pytest.mark.parametrize("header", ["*", 'W/"{sha}"', '"0000", "{sha}"'])
def test_if_match_forms(client: httpx.Client, prompts_file: Path, header: str) -> None:
    sha = sha256_hex(prompts_file.read_bytes())
    r = client.put(
        "/api/prompts", json={**doc(prompts_file), "goodbye": "Пока"}, headers={"If-Match": header.format(sha=sha)}
    )
    assert r.status_code == 200


def test_concurrent_patches_of_different_keys_all_apply(served: Served, prompts_file: Path) -> None:
    base = etag_of(prompts_file)
    keys = [f"ключ_{i}" for i in range(6)]
    results: dict[str, int] = {}
    barrier = threading.Barrier(len(keys))

    def patch(key: str) -> None:
        with served.client() as c:
            barrier.wait()
            r = c.patch(f"/api/prompts/{key}", json={"value": f"значение {key}"}, headers={"If-Match": base})
            results[key] = r.status_code

    threads = [threading.Thread(target=patch, args=(k,)) for k in keys]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == dict.fromkeys(keys, 200)
    saved = doc(prompts_file)
    assert all(saved[k] == f"значение {k}" for k in keys)  # nothing lost


def test_status_shows_a_consumer_rejecting_a_broken_hand_edit_with_its_error(
    client: httpx.Client, prompts_file: Path, consumer: Callable[[str], Consumer]
) -> None:
    bot = consumer("metrotech-bot")
    good_sha = sha256_hex(prompts_file.read_bytes())
    prompts_file.write_text('{"system_prompt": "x", "greeting": ""}', encoding="utf-8")

    def rejected() -> dict[str, Any] | None:
        for c in client.get("/api/status").json()["consumers"]:
            if c["pid"] == bot.pid and c["last_error"]:
                return dict(c)
        return None

    c = wait_until(rejected, timeout=10, message="the consumer reports its error")
    assert c["sha256"] == good_sha and c["in_sync"] is False and "greeting" in c["last_error"]


def test_without_a_prompts_file_the_panel_starts_and_the_first_save_creates_it(
    config_dir: Path, status_dir: Path, tmp_path: Path
) -> None:
    from .conftest import make_settings, serve, stop

    prompts = config_dir / "prompts.json"
    content = prompts.read_bytes()
    prompts.unlink()
    served = serve(make_settings(config_dir, status_dir, tmp_path))
    try:
        with served.client() as c:
            assert c.get("/api/prompts").status_code == 404
            status = c.get("/api/status").json()
            assert status["sha256"] is None and status["watching"] == "off" and status["consumers"] == []
            assert c.get("/api/prompts/history").json()["total"] == 0
            r = c.put("/api/prompts?wait_ms=3000", content=content)
            assert r.status_code == 200 and r.json()["all_applied"] is True
            assert r.json()["previous_sha256"] is None
            assert c.get("/api/status").json()["watching"] in {"inotify", "poll"}
            assert [h["origin"] for h in c.get("/api/prompts/history").json()["items"]] == ["api"]
            # From now on hand edits are watched and recorded.
            prompts.write_text(prompts.read_text(encoding="utf-8").replace("Метротех", "МТ"), encoding="utf-8")
            wait_until(lambda: c.get("/api/prompts/history").json()["total"] == 2, timeout=10)
    finally:
        stop(served)


def test_an_expected_consumer_that_is_not_running_is_missing(
    client: httpx.Client, consumer: Callable[[str], Consumer]
) -> None:
    """ADMIN_EXPECTED_CONSUMERS: a bot that is simply absent is never shown as "all in sync"."""
    status = client.get("/api/status").json()
    assert status["missing"] == ["metrotech-bot"]  # the panel's own watcher runs; the bot does not
    assert status["out_of_sync"] == 0 and status["all_in_sync"] is False
    bot = consumer("metrotech-bot")
    wait_until(lambda: client.get("/api/status").json()["all_in_sync"], timeout=10, message="the bot reports")
    assert client.get("/api/status").json()["missing"] == []
    bot.proc.terminate()
    bot.proc.wait(timeout=15)
    wait_until(lambda: client.get("/api/status").json()["missing"] == ["metrotech-bot"], timeout=10, message="bot gone")
