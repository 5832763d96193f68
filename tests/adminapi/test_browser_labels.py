"""Labels in the web UI, in a real headless Chromium: the switcher, a new label as a copy, promotion with
its diff and a confirmation (and a 412 when the target changed meanwhile), and the outcomes table."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path

import orjson
import pytest
from playwright.sync_api import BrowserContext, Page, expect

from promptwatch import sha256_hex
from stasis.calllog import CallLog, Turn

from .browserkit import assert_accessible, matching, open_panel, save_with_review
from .conftest import Consumer, Served, consumers

pytestmark = pytest.mark.browser

Contexts = Callable[..., BrowserContext]


@pytest.fixture
def page(contexts: Contexts, served: Served) -> Page:
    """A logged-in page of a panel of this test's own (label files do not leak into other tests)."""
    return open_panel(contexts(), served.url)


def options(page: Page, selector: str) -> list[str]:
    return page.locator(f"{selector} option").evaluate_all("els => els.map(e => e.value)")


def test_switcher_and_a_new_label_as_a_copy(page: Page, prompts_file: Path) -> None:
    expect(page.locator("#label-select")).to_have_value("production")
    assert options(page, "#label-select") == ["production"]
    page.click("#label-new")
    expect(page.locator("#label-new-dialog")).to_be_visible()
    page.fill("#label-new-name", "Не так")
    page.click("#label-new-create")
    expect(page.locator("#label-new-error")).to_contain_text("Имя метки")
    page.fill("#label-new-name", "staging")
    with page.expect_request(lambda r: "/api/prompts?label=staging" in r.url):
        page.click("#label-new-create")
    expect(page.locator("#label-new-dialog")).to_be_hidden()
    staging = prompts_file.with_name("prompts.staging.json")
    assert staging.read_bytes() == prompts_file.read_bytes()
    expect(page.locator("#label-select")).to_have_value("staging")
    assert options(page, "#label-select") == ["production", "staging"]
    expect(page.locator("#label-info")).to_contain_text("prompts.staging.json")

    # The editor now edits staging: a save there leaves production alone; the history is staging's.
    expect(page.locator("#field-greeting")).to_have_value(matching("Метротех"))
    page.fill("#field-greeting", "Тестовое приветствие для staging.")
    with page.expect_response(lambda r: r.request.method == "PUT" and "label=staging" in r.url) as put:
        save_with_review(page)
    assert put.value.status == 200
    assert orjson.loads(staging.read_bytes())["greeting"] == "Тестовое приветствие для staging."
    assert "Тестовое" not in prompts_file.read_text(encoding="utf-8")
    page.click('#tabs [data-tab="history"]')
    expect(page.locator("#history-table tbody tr")).to_have_count(2)  # the copy and the save
    page.click('#tabs [data-tab="prompts"]')

    # Back to production: the editor shows production's greeting again.
    page.select_option("#label-select", "production")
    expect(page.locator("#field-greeting")).to_have_value(matching("Метротех"))
    expect(page.locator("#label-select")).to_have_value("production")
    assert_accessible(page, "prompts with the label switcher")


def test_the_page_follows_the_label_it_edits_live(page: Page, prompts_file: Path, status_dir: Path) -> None:
    """The live stream follows the label open in the editor: a hand edit of prompts.staging.json arrives,
    a hand edit of production does not disturb it, and the badges show staging's processes."""
    staging = prompts_file.with_name("prompts.staging.json")
    staging.write_bytes(prompts_file.read_bytes())
    page.reload()
    expect(page.locator("#label-select")).to_contain_text("staging")
    page.select_option("#label-select", "staging")
    expect(page.locator("#label-select")).to_have_value("staging")
    subprocess.run(["sed", "-i", "s/Чем могу помочь?/Это staging./", str(staging)], check=True)
    expect(page.locator("#field-greeting")).to_have_value(matching("Это staging."))
    expect(page.locator("#live-note")).to_contain_text("изменено вручную на диске")
    subprocess.run(["sed", "-i", "s/Чем могу помочь?/Это production./", str(prompts_file)], check=True)
    expect(page.locator("#live-banner")).to_be_hidden()
    expect(page.locator("#field-greeting")).to_have_value(matching("Это staging."))
    with consumers(status_dir, staging) as start:
        watcher = start("staging-watch")
        expect(page.locator(f'#consumer-badges [data-pid="{watcher.pid}"]')).to_be_visible()
        page.select_option("#label-select", "production")
        expect(page.locator("#field-greeting")).to_have_value(matching("Это production."))
        expect(page.locator(f'#consumer-badges [data-pid="{watcher.pid}"]')).to_have_count(0)
        assert_accessible(page, "following a label live")


def test_promote_shows_the_diff_asks_for_confirmation_and_refuses_a_concurrent_change(
    page: Page, prompts_file: Path, consumer: Callable[[str], Consumer]
) -> None:
    bot = consumer("metrotech-bot")
    doc = orjson.loads(prompts_file.read_bytes())
    staged = orjson.dumps({**doc, "greeting": "Версия из staging."}, option=orjson.OPT_INDENT_2)
    prompts_file.with_name("prompts.staging.json").write_bytes(staged)

    page.click("#label-promote")
    dialog = page.locator("#label-promote-dialog")
    expect(dialog).to_be_visible()
    expect(page.locator("#promote-src")).to_have_value("staging")
    expect(page.locator("#promote-dst")).to_have_value("production")
    expect(page.locator('#promote-changes li[data-key="greeting"]')).to_contain_text("Версия из staging.")
    expect(page.locator("#promote-summary")).to_contain_text("изменений — 1")
    expect(page.locator("#promote-go")).to_be_disabled()  # not before the operator confirms
    assert_accessible(page, "promotion dialog")

    # Production changes while the operator reads the diff: the promotion is refused, nothing written.
    changed = prompts_file.read_bytes().replace("Метротех".encode(), "Метротех-2".encode())
    prompts_file.write_bytes(changed)
    page.check("#promote-confirm")
    page.click("#promote-go")
    expect(page.locator("#promote-error")).to_contain_text("изменили, пока вы смотрели")
    assert prompts_file.read_bytes() == changed
    expect(page.locator("#promote-confirm")).not_to_be_checked()
    expect(page.locator("#promote-go")).to_be_disabled()
    expect(page.locator("#promote-summary")).to_contain_text(sha256_hex(changed)[:8])  # the diff against the new one

    page.check("#promote-confirm")
    page.click("#promote-go")
    result = page.locator("#promote-result")
    expect(result).to_contain_text(f"production теперь {sha256_hex(staged)[:8]}")
    expect(result.locator('li[data-service="metrotech-bot"]')).to_contain_text(f"pid {bot.pid}) — применил")
    assert prompts_file.read_bytes() == staged


def _seed(path: Path) -> None:
    log = CallLog(path)
    try:
        plan = [("production", "a" * 64, {"goodbye": 60, "operator": 25, "caller_hangup": 15}),
                ("staging", "b" * 64, {"goodbye": 80, "operator": 8, "no_input": 12}),
                ("short-greeting", "c" * 64, {"goodbye": 6, "operator": 2})]  # fmt: skip
        n = 0
        for label, sha, reasons in plan:
            for reason, count in reasons.items():
                for _ in range(count):
                    at = 1_800_000_000.0 + n
                    log.start_call(f"c{n}", caller_number=str(n), caller_name="", started_at=at, prompts_sha256=sha,
                                   label=label)  # fmt: skip
                    log.add_turn(f"c{n}", Turn(0, at, caller_text="?", bot_text="!", stt_ms=100, llm_ms=500, tts_ms=50))
                    log.end_call(f"c{n}", ended_at=at + 30, end_reason=reason)
                    n += 1
    finally:
        log.close()


def test_outcomes_table(page: Page, served: Served) -> None:
    _seed(served.settings.calllog_path)
    page.click('#tabs [data-tab="outcomes"]')
    page.fill("#outcomes-since", "2027-01-15")
    page.fill("#outcomes-until", "2027-01-15")
    page.click("#outcomes-apply")
    rows = page.locator("#outcomes-table tbody tr")
    expect(rows).to_have_count(3)
    expect(page.locator("#outcomes-note")).to_contain_text("База сравнения: production aaaaaaaa (100 звонков)")
    staging = page.locator('#outcomes-table tr[data-label="staging"]')
    expect(staging.locator("td.calls")).to_have_text("100")
    expect(staging.locator('td[data-reason="goodbye"]')).to_have_text("80 (80.0 %)")
    expect(staging.locator("td").nth(9)).to_contain_text("+20.0 п.п.")
    expect(staging.locator("td").nth(9)).to_contain_text("выше")
    expect(staging.locator("td").nth(10)).to_contain_text("ниже")
    tiny = page.locator('#outcomes-table tr[data-label="short-greeting"]')
    expect(tiny.locator("td.too-small")).to_have_count(2)
    expect(tiny.locator("td.too-small").first).to_have_text("мало данных")
    expect(page.locator('#outcomes-table tr[data-label="production"] td').nth(9)).to_have_text("база")
    assert_accessible(page, "outcomes")
    page.reload()  # the page has its own URL
    expect(page).to_have_url(served.url + "/outcomes")
    expect(page.locator("#outcomes-table")).to_be_visible()
