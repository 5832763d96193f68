"""The web UI in a real headless Chromium (Debian's ``chromium``, driven by Playwright)."""

from __future__ import annotations

import os
import re
import signal
from collections.abc import Callable, Iterator
from pathlib import Path

import orjson
import pytest
from playwright.sync_api import Browser, BrowserContext, Page, expect, sync_playwright

from promptwatch import sha256_hex
from tests.util import wait_until

from .conftest import TOKEN, Consumer, Served

pytestmark = pytest.mark.browser

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not os.path.exists(CHROMIUM):
        pytest.fail(f"{CHROMIUM} is missing: apt-get install -y chromium")
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            yield b
        finally:
            b.close()


@pytest.fixture
def contexts(browser: Browser) -> Iterator[Callable[[], BrowserContext]]:
    """New browser sessions; after the test, none may have had a script error or a CSP violation."""
    made: list[BrowserContext] = []
    problems: list[str] = []

    def watch(page: Page) -> None:
        page.on("pageerror", lambda e: problems.append(f"uncaught: {e}"))
        page.on(
            "console",
            lambda m: (
                problems.append(m.text) if m.type == "error" and "Failed to load resource" not in m.text else None
            ),
        )

    def new() -> BrowserContext:
        ctx = browser.new_context(locale="ru-RU")
        ctx.set_default_timeout(15_000)
        ctx.on("page", watch)
        made.append(ctx)
        return ctx

    yield new
    for ctx in made:
        ctx.close()
    assert not problems, problems


def open_panel(ctx: BrowserContext, served: Served) -> Page:
    """A page of the panel, logged in the way an operator does it (the token typed once)."""
    page = ctx.new_page()
    page.on("dialog", lambda d: d.accept())
    page.goto(served.url + "/")
    expect(page.locator("#login")).to_be_visible()
    page.fill("#login-token", "wrong-token-0123456789")
    page.click("#login-submit")
    expect(page.locator("#login-error")).to_have_text("Неверный токен.")
    page.fill("#login-token", TOKEN)
    page.click("#login-submit")
    expect(page.locator("#login")).to_be_hidden()
    expect(page.locator("#field-system_prompt")).to_have_value(matching("Метротех"))
    return page


def matching(text: str) -> re.Pattern[str]:
    return re.compile(f".*{re.escape(text)}.*", re.S)


def doc(path: Path) -> dict[str, object]:
    data: dict[str, object] = orjson.loads(path.read_bytes())
    return data


def test_login_edit_save_and_the_consumer_badge_turns_in_sync(
    served: Served, contexts: Callable[[], BrowserContext], prompts_file: Path, consumer: Callable[[str], Consumer]
) -> None:
    bot = consumer("metrotech-bot")
    page = open_panel(contexts(), served)
    badge = page.locator('#consumer-badges li[data-service="metrotech-bot"]')
    expect(badge).to_have_attribute("data-state", "in-sync")
    expect(page.locator("h1")).to_have_text("Метротех · админ-панель")

    # The consumer is stopped: a save is not applied by it, its badge shows it stale.
    os.kill(bot.pid, signal.SIGSTOP)
    try:
        page.fill("#field-greeting", "Добрый день! Компания «Метротех», слушаю вас.")
        page.fill("#save-message", "новое приветствие")
        page.click("#save")
        expect(page.locator("#save-result")).to_contain_text("НЕ применено: metrotech-bot", timeout=20_000)
        expect(badge).to_have_attribute("data-state", "stale")
        expect(badge.locator(".state")).to_have_text("stale")
    finally:
        os.kill(bot.pid, signal.SIGCONT)
    assert doc(prompts_file)["greeting"] == "Добрый день! Компания «Метротех», слушаю вас."
    # Resumed, it catches up and the badge turns "in sync" by itself.
    expect(badge).to_have_attribute("data-state", "in-sync", timeout=15_000)
    expect(badge.locator(".state")).to_have_text("in sync")

    # A second save is applied at once and says by whom and how fast.
    page.fill("#field-goodbye", "Спасибо, что позвонили!")
    page.click("#save")
    expect(page.locator("#save-result")).to_contain_text("применено: metrotech-bot")
    expect(page.locator("#save-result")).to_contain_text(" мс")
    expect(badge).to_have_attribute("data-state", "in-sync")
    assert doc(prompts_file)["goodbye"] == "Спасибо, что позвонили!"


def test_inline_errors_from_422_and_custom_keys(
    served: Served, contexts: Callable[[], BrowserContext], prompts_file: Path
) -> None:
    page = open_panel(contexts(), served)
    before = prompts_file.read_bytes()
    page.fill("#field-greeting", "   ")
    page.click("#save")
    box = page.locator('.field[data-field="greeting"]')
    expect(box).to_have_class(matching("invalid"))
    expect(box.locator(".field-error")).to_contain_text("greeting: must not be blank")
    assert prompts_file.read_bytes() == before

    page.fill("#field-greeting", "Здравствуйте!")
    page.fill("#new-key", "перевод")
    page.click("#add-key")
    page.fill("#field-перевод", "Перевожу на специалиста.")
    page.click('button[data-remove="operator"]')
    page.click("#save")
    expect(page.locator("#save-result")).to_contain_text("Сохранено")
    saved = doc(prompts_file)
    assert saved["перевод"] == "Перевожу на специалиста." and "operator" not in saved


def test_a_second_session_gets_the_412_and_can_see_the_diff_and_reload(
    served: Served, contexts: Callable[[], BrowserContext], prompts_file: Path
) -> None:
    first = open_panel(contexts(), served)
    second = open_panel(contexts(), served)
    first.fill("#field-greeting", "Версия первого администратора")
    first.click("#save")
    expect(first.locator("#save-result")).to_contain_text("Сохранено")

    second.fill("#field-greeting", "Версия второго администратора")
    second.click("#save")
    expect(second.locator("#conflict-banner")).to_be_visible()
    assert doc(prompts_file)["greeting"] == "Версия первого администратора"
    second.click("#conflict-diff")
    expect(second.locator("#conflict-diff-view")).to_contain_text("изменён: greeting")
    expect(second.locator("#conflict-diff-view")).to_contain_text("Версия первого администратора")
    second.click("#conflict-reload")
    expect(second.locator("#field-greeting")).to_have_value("Версия первого администратора")
    expect(second.locator("#conflict-banner")).to_be_hidden()
    second.fill("#field-greeting", "Версия второго администратора")
    second.click("#save")
    expect(second.locator("#save-result")).to_contain_text("Сохранено")
    assert doc(prompts_file)["greeting"] == "Версия второго администратора"


def test_history_diff_and_one_click_rollback(
    served: Served, contexts: Callable[[], BrowserContext], prompts_file: Path
) -> None:
    original = prompts_file.read_bytes()
    with served.client() as c:
        assert c.put("/api/prompts", json={**doc(prompts_file), "greeting": "Временное"}).status_code == 200
    page = open_panel(contexts(), served)
    page.click('#tabs button[data-tab="history"]')
    rows = page.locator("#history-table tbody tr")
    expect(rows).to_have_count(2)
    expect(rows.nth(1)).to_contain_text("файл")
    page.click(f'button[data-diff="{sha256_hex(prompts_file.read_bytes())}"]')
    expect(page.locator("#history-diff-keys")).to_contain_text("greeting: изменён")
    page.click(f'button[data-rollback="{sha256_hex(original)}"]')
    expect(rows).to_have_count(3)
    expect(rows.nth(0)).to_contain_text("откат")
    wait_until(lambda: prompts_file.read_bytes() == original, timeout=10, message="rolled back on disk")


def test_upload_a_knowledge_base_file_with_a_cyrillic_name(
    served: Served, contexts: Callable[[], BrowserContext], config_dir: Path, tmp_path: Path
) -> None:
    upload = tmp_path / "акции.md"
    upload.write_text("# Акции\n\nСкидка 10% на первую доставку.\n" * 200, encoding="utf-8")
    page = open_panel(contexts(), served)
    page.click('#tabs button[data-tab="kb"]')
    expect(page.locator('#kb-table tr[data-name="тарифы.md"]')).to_be_visible()
    page.set_input_files("#kb-file", str(upload))
    page.click("#kb-submit")
    expect(page.locator("#kb-message")).to_contain_text("Загружено: акции.md")
    expect(page.locator("#kb-progress")).to_have_js_property("value", 100)
    expect(page.locator('#kb-table tr[data-name="акции.md"]')).to_be_visible()
    assert (config_dir / "kb" / "акции.md").read_bytes() == upload.read_bytes()
    page.click('#kb-table tr[data-name="акции.md"] a')
    expect(page.locator("#kb-view")).to_contain_text("Скидка 10% на первую доставку.")
    page.click('button[data-delete="акции.md"]')
    expect(page.locator('#kb-table tr[data-name="акции.md"]')).to_have_count(0)
    assert not (config_dir / "kb" / "акции.md").exists()


def test_playground_calls_and_status_pages(served: Served, contexts: Callable[[], BrowserContext]) -> None:
    from stasis.calllog import CallLog, Turn

    log = CallLog(served.settings.calllog_path)
    try:
        log.start_call("call-1", caller_number="+79001234567", caller_name="Ольга", started_at=1_700_000_000,
                       prompts_sha256="a" * 64)  # fmt: skip
        log.add_turn("call-1", Turn(0, 1_700_000_001, caller_text="Когда вы работаете?", bot_text="С 9 до 18."))
        log.end_call("call-1", ended_at=1_700_000_030, end_reason="hangup")
    finally:
        log.close()
    page = open_panel(contexts(), served)
    page.fill("#field-fallback", "Черновой ответ по умолчанию.")
    page.click('#tabs button[data-tab="playground"]')
    page.fill("#playground-text", "абракадабра")
    page.click("#playground-send")
    expect(page.locator("#playground-result .answer")).to_have_text("Черновой ответ по умолчанию.")
    page.click('#tabs button[data-tab="calls"]')
    page.click('#calls-table tr[data-call="call-1"]')
    expect(page.locator("#call-detail")).to_contain_text("Абонент: Когда вы работаете?")
    expect(page.locator("#call-detail")).to_contain_text("Бот: С 9 до 18.")
    page.click('#tabs button[data-tab="status"]')
    expect(page.locator("#status-view")).to_contain_text("adminapi")
