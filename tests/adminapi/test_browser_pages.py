"""History, knowledge base, calls, status and playground pages in a real headless Chromium: each with its
own URL, in Russian, with dates in the operator's locale."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest
from playwright.sync_api import BrowserContext, Route, expect

from promptwatch import sha256_hex
from stasis.calllog import CallLog, Turn
from tests.util import wait_until

from .browserkit import SAMPLE, Panel, assert_accessible, doc, open_panel
from .conftest import Consumer

pytestmark = pytest.mark.browser

Contexts = Callable[..., BrowserContext]


def put(panel: Panel, **changes: str) -> str:
    with panel.served.client() as c:
        r = c.put("/api/prompts", json={**doc(panel.prompts_file), **changes})
        assert r.status_code == 200, r.text
        sha: str = r.json()["sha256"]
        return sha


def test_history_diff_view_load_as_draft_and_a_confirmed_rollback(panel: Panel, contexts: Contexts) -> None:
    sample = sha256_hex((SAMPLE / "prompts.json").read_bytes())
    first = put(panel, greeting="Первая версия")
    second = put(panel, greeting="Вторая версия")
    page = open_panel(contexts(), panel.url, "/history")
    expect(page.locator("#tabbtn-history")).to_have_attribute("aria-selected", "true")
    rows = page.locator("#history-table tbody tr")
    expect(rows.first).to_have_attribute("data-sha", second)
    expect(page.locator("#history-table tr.current")).to_have_count(1)
    expect(page.locator("#history-table tbody tr", has_text="Текущая")).to_have_count(1)
    assert_accessible(page, "history")

    # Any two revisions: the diff has its own URL, and a reload lands on it.
    page.locator(f'tr[data-sha="{sample}"] input[name="from"]').first.check()
    page.locator(f'tr[data-sha="{second}"] input[name="to"]').check()
    page.click("#history-compare")
    expect(page).to_have_url(f"{panel.url}/history/diff/{sample}/{second}")
    expect(page.locator("#history-diff-keys")).to_contain_text("greeting: изменён")
    expect(page.locator("#history-diff-text")).to_contain_text("Вторая версия")
    page.reload()
    expect(page.locator("#history-diff-keys")).to_contain_text("greeting: изменён")
    assert_accessible(page, "history diff")

    # A revision's content, and loading it into the editor as a draft (nothing saved).
    page.click(f'a[data-view="{first}"]')
    expect(page).to_have_url(f"{panel.url}/history/{first}")
    expect(page.locator("#history-view-text")).to_contain_text("Первая версия")
    assert_accessible(page, "revision content")
    page.click("#history-load-draft")
    expect(page).to_have_url(f"{panel.url}/prompts")
    expect(page.locator("#field-greeting")).to_have_value("Первая версия")
    expect(page.locator("#save-status")).to_contain_text("ещё не сохранён")
    assert doc(panel.prompts_file)["greeting"] == "Вторая версия"

    # Rollback asks first, showing the diff it will apply; cancelling changes nothing.
    page.click("#tabbtn-history")
    page.locator(f'tr[data-sha="{sample}"] button[data-rollback]').first.click()
    dialog = page.locator("#confirm")
    expect(dialog).to_be_visible()
    expect(page.locator("#rollback-keys")).to_contain_text("greeting: изменён")
    expect(page.locator("#rollback-diff")).to_contain_text("Вторая версия")
    assert_accessible(page, "rollback confirmation")
    page.click("#confirm-cancel")
    assert sha256_hex(panel.prompts_file.read_bytes()) == second
    page.locator(f'tr[data-sha="{sample}"] button[data-rollback]').first.click()
    page.click("#confirm-ok")
    expect(page.locator("#history-message")).to_contain_text("Откат к")
    assert_accessible(page, "rolled back")
    wait_until(lambda: sha256_hex(panel.prompts_file.read_bytes()) == sample, timeout=10, message="rolled back")
    expect(rows.first).to_contain_text("откат")
    # The sample content is in several rows now; exactly one of them is "Текущая", the newest.
    expect(page.locator("#history-table tr.current")).to_have_count(1)
    expect(rows.first).to_have_class("current")
    assert page.locator(f'#history-table tr[data-sha="{sample}"]').count() >= 2


def seed_calls(path: Path, sha: str) -> None:
    log = CallLog(path)
    try:
        log.start_call("call-ok", caller_number="+79001234567", caller_name="Ольга", started_at=1_700_000_000,
                       prompts_sha256=sha)  # fmt: skip
        log.add_turn("call-ok", Turn(0, 1_700_000_001, caller_text="Когда вы работаете?", bot_text="С 9 до 18."))
        log.end_call("call-ok", ended_at=1_700_000_030, end_reason="goodbye")
        log.start_call("call-err", caller_number="+79007654321", caller_name="Иван", started_at=1_700_000_100,
                       prompts_sha256=sha)  # fmt: skip
        log.add_turn("call-err", Turn(0, 1_700_000_101, caller_text="Алло?", bot_text="", error="LLM timeout"))
        log.end_call("call-err", ended_at=1_700_000_120, end_reason="error")
        log.start_call("call-silent", caller_number="+79005550000", caller_name="", started_at=1_700_000_200,
                       prompts_sha256=sha)  # fmt: skip
        log.end_call("call-silent", ended_at=1_700_000_230, end_reason="no_input")
    finally:
        log.close()


def test_calls_filters_flags_the_transcript_dialog_and_links(panel: Panel, contexts: Contexts) -> None:
    sample = sha256_hex((SAMPLE / "prompts.json").read_bytes())
    seed_calls(panel.served.settings.calllog_path, sample)
    page = open_panel(contexts(), panel.url, "/calls")
    rows = page.locator("#calls-table tbody tr")
    expect(rows).to_have_count(3)
    err = page.locator('tr[data-call="call-err"]')
    expect(err).to_have_class("had-error")
    expect(err).to_contain_text("⚠ ошибка")
    expect(page.locator('tr[data-call="call-silent"]')).to_contain_text("абонент молчал")
    expect(page.locator("#calls-table")).not_to_contain_text("no_input")
    assert_accessible(page, "calls")

    page.select_option("#calls-reason", "no_input")
    page.click("#calls-apply")
    expect(rows).to_have_count(1)
    expect(rows.first).to_have_attribute("data-call", "call-silent")
    page.select_option("#calls-reason", "")
    page.check("#calls-errors")
    page.click("#calls-apply")
    expect(rows).to_have_count(1)
    expect(rows.first).to_have_attribute("data-call", "call-err")

    # The call opens in a dialog with focus in it, at its own URL; the transcript starts with the greeting.
    rows.first.locator("a").first.click()
    dialog = page.locator("#call-dialog")
    expect(dialog).to_be_visible()
    expect(page).to_have_url(f"{panel.url}/calls/call-err")
    expect(page.locator("#call-title")).to_be_focused()
    transcript = page.locator("#call-transcript li")
    expect(transcript.first).to_contain_text("Бот (приветствие): Здравствуйте! Вы позвонили в компанию «Метротех».")
    expect(transcript.nth(1)).to_contain_text("Абонент: Алло?")
    expect(transcript.nth(1)).to_contain_text("ошибка в этой реплике")
    expect(dialog).to_contain_text("завершение: ошибка")
    assert_accessible(page, "call dialog")
    page.reload()
    expect(page.locator("#call-dialog")).to_be_visible()
    page.keyboard.press("Escape")
    expect(page).to_have_url(f"{panel.url}/calls")

    # The prompts version of a call links to that revision.
    page.locator('tr[data-call="call-err"] a.sha').click()
    expect(page).to_have_url(f"{panel.url}/history/{sample}")
    expect(page.locator("#history-view-text")).to_contain_text("Чем могу помочь?")


def test_knowledge_base_limit_several_files_another_name_and_overwrite_warning(
    panel: Panel, contexts: Contexts, tmp_path: Path
) -> None:
    one = tmp_path / "акции.md"
    one.write_text("# Акции\n\nСкидка 10% на первую доставку.\n", encoding="utf-8")
    two = tmp_path / "адреса.txt"
    two.write_text("Склад: ул. Ленина, 1.\n", encoding="utf-8")
    big = tmp_path / "огромный.md"
    big.write_bytes(b"x" * (panel.served.settings.kb_max_bytes + 1))
    created = ["акции.md", "адреса.txt", "скидки.md"]
    page = open_panel(contexts(), panel.url, "/kb")
    try:
        limit = f"{panel.served.settings.kb_max_bytes / 1048576:g}".replace(".", ",")
        expect(page.locator("#kb-limit")).to_contain_text(f"Не больше {limit} МиБ на файл")
        expect(page.locator('#kb-table tr[data-name="тарифы.md"]')).to_be_visible()
        assert_accessible(page, "knowledge base")

        page.set_input_files("#kb-file", [str(big)])
        page.click("#kb-submit")
        expect(page.locator("#kb-message")).to_contain_text("Слишком большие")
        assert not (panel.kb_dir / "огромный.md").exists()

        page.set_input_files("#kb-file", [str(one), str(two)])
        expect(page.locator("#kb-name")).to_be_disabled()
        page.click("#kb-submit")
        expect(page.locator("#kb-message")).to_contain_text("Загружено: акции.md")
        expect(page.locator('#kb-table tr[data-name="адреса.txt"]')).to_be_visible()
        assert (panel.kb_dir / "акции.md").read_bytes() == one.read_bytes()

        page.set_input_files("#kb-file", [str(one)])
        page.fill("#kb-name", "скидки.md")
        page.click("#kb-submit")
        expect(page.locator('#kb-table tr[data-name="скидки.md"]')).to_be_visible()

        # The same name again: asked first; "Отмена" keeps the file as it was.
        one.write_text("# Акции\n\nНовая скидка 20%.\n", encoding="utf-8")
        page.set_input_files("#kb-file", [str(one)])
        page.click("#kb-submit")
        expect(page.locator("#kb-overwrite-names")).to_have_text("акции.md")
        assert_accessible(page, "overwrite warning")
        page.click("#confirm-cancel")
        expect(page.locator("#kb-message")).to_contain_text("Загрузка отменена")
        assert "Скидка 10%" in (panel.kb_dir / "акции.md").read_text(encoding="utf-8")
        page.set_input_files("#kb-file", [str(one)])
        page.click("#kb-submit")
        page.click("#confirm-ok")
        expect(page.locator("#kb-message")).to_contain_text("заменён")
        assert "Новая скидка 20%" in (panel.kb_dir / "акции.md").read_text(encoding="utf-8")

        page.click('#kb-table tr[data-name="акции.md"] a')
        expect(page).to_have_url(f"{panel.url}/kb/{quote('акции.md')}")
        expect(page.locator("#kb-view")).to_contain_text("Новая скидка 20%")
        assert_accessible(page, "a knowledge-base file")
        page.click('button[data-delete="акции.md"]')
        page.click("#confirm-ok")
        expect(page.locator('#kb-table tr[data-name="акции.md"]')).to_have_count(0)
        assert not (panel.kb_dir / "акции.md").exists()
    finally:
        for name in created:
            (panel.kb_dir / name).unlink(missing_ok=True)


def test_status_page_metrics_download_and_offline_docs(
    panel: Panel, contexts: Contexts, panel_consumer: Callable[[str], Consumer]
) -> None:
    ctx = contexts()
    page = open_panel(ctx, panel.url, "/status")
    row = page.locator('#status-table tr[data-service="adminapi"]')
    expect(row).to_contain_text("0.1.0")
    cells = row.locator("td")
    expect(cells.nth(0)).not_to_have_text("")  # host
    expect(cells.nth(3)).to_have_text(re.compile(r"\d+ (с|мин)"))  # uptime
    expect(cells.nth(4)).to_contain_text("назад")  # last seen
    expect(page.locator("#status-missing")).to_contain_text("metrotech-bot")
    expect(page.locator("#status-panel")).to_contain_text("версия 0.1.0")
    assert_accessible(page, "status with a missing consumer")
    bot = panel_consumer("metrotech-bot")
    expect(page.locator(f'#status-table tr[data-pid="{bot.pid}"]')).to_be_visible()  # refreshed by itself
    expect(page.locator("#status-missing")).to_have_count(0)

    with page.expect_download() as download:
        page.click("#metrics-download")
    body = Path(download.value.path()).read_text(encoding="utf-8")
    assert "# TYPE" in body and "admin" in body

    # The API docs come from the package: with every other host unreachable they still render.
    blocked: list[str] = []

    def only_the_panel(route: Route) -> None:
        if route.request.url.startswith(panel.url):
            route.continue_()
        else:
            blocked.append(route.request.url)
            route.abort()

    docs = ctx.new_page()
    docs.route("**/*", only_the_panel)
    docs.goto(panel.url + "/docs")
    expect(docs.locator(".swagger-ui .info .title")).to_contain_text("Metrotech admin panel")
    expect(docs.locator(".opblock-summary-path", has_text="/api/events/ticket")).to_be_visible()
    assert blocked == []
    assert page.get_attribute("#docs-link", "href") == "/docs"
    with httpx.Client(base_url=panel.url) as c:
        assert c.get("/static/docs/swagger-ui-bundle.js").status_code == 200


def test_playground_multi_turn_with_the_draft_and_the_published_prompts(panel: Panel, contexts: Contexts) -> None:
    page = open_panel(contexts(), panel.url)
    page.fill("#field-fallback", "Черновой ответ по умолчанию.")
    page.click("#tabbtn-playground")
    expect(page).to_have_url(panel.url + "/playground")
    page.fill("#playground-text", "абракадабра")
    page.press("#playground-text", "Enter")
    turn = page.locator("#playground-log li").first
    expect(turn.locator('.answer[data-side="draft"] .bot')).to_have_text("Черновой ответ по умолчанию.")
    expect(turn.locator('.answer[data-side="published"] .bot')).to_have_text(
        "Извините, я не расслышал. Повторите, пожалуйста."
    )
    assert_accessible(page, "playground")
    with page.expect_request(lambda r: r.url.endswith("/api/playground")) as sent:
        page.fill("#playground-text", "ещё раз абракадабра")
        page.click("#playground-send")
    expect(page.locator("#playground-log li")).to_have_count(2)
    history = (sent.value.post_data_json or {})["history"]
    assert [m["role"] for m in history] == ["user", "assistant"] and history[0]["text"] == "абракадабра"
    page.click("#playground-reset")
    expect(page.locator("#playground-log li")).to_have_count(0)
    assert doc(panel.prompts_file)["fallback"] != "Черновой ответ по умолчанию."
