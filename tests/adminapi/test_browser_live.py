"""The page is live: a second operator's save, a hand edit on disk, a broken and repaired file and a lost
connection all reach the editor by themselves (Server-Sent Events), and no draft is lost on the way."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from playwright.sync_api import BrowserContext, expect

from promptwatch import atomic_write

from .browserkit import Panel, assert_accessible, doc, matching, open_panel, save_with_review
from .conftest import OTHER_TOKEN, make_settings, serve, stop

pytestmark = pytest.mark.browser

Contexts = Callable[..., BrowserContext]


def test_a_conflict_opens_a_merge_view_and_saves_with_the_new_etag(panel: Panel, contexts: Contexts) -> None:
    first = open_panel(contexts(), panel.url)
    second = open_panel(contexts(), panel.url, token=OTHER_TOKEN)
    # The second operator edits greeting (both sides will) and goodbye (only theirs).
    second.fill("#field-greeting", "Приветствие второго")
    second.fill("#field-goodbye", "Прощание второго")
    first.fill("#field-greeting", "Приветствие первого")
    first.fill("#field-fallback", "Запасной ответ первого")
    save_with_review(first)
    expect(first.locator("#save-status")).to_contain_text("Сохранено")

    # The second page hears of it at once, without losing its draft.
    banner = second.locator("#live-banner")
    expect(banner).to_contain_text("сохранено оператором admin")
    expect(second.locator("#field-greeting")).to_have_value("Приветствие второго")
    assert_accessible(second, "a newer version on disk while editing")

    # Saving anyway: 412, and the merge view opens where the operator is.
    save_with_review(second)
    expect(second.locator("#save-status")).to_contain_text("промпты изменились")
    merge = second.locator("#merge-view")
    expect(merge).to_be_visible()
    expect(second.locator("#merge-title")).to_be_focused()
    expect(merge.locator('fieldset[data-key="fallback"]')).to_have_attribute("data-status", "theirs")
    expect(merge.locator('fieldset[data-key="goodbye"]')).to_have_attribute("data-status", "mine")
    conflict = merge.locator('fieldset[data-key="greeting"]')
    expect(conflict).to_have_attribute("data-status", "conflict")
    expect(conflict).to_contain_text("Приветствие первого")
    expect(conflict).to_contain_text("Приветствие второго")
    assert_accessible(second, "merge view")
    # Taking the disk's version whole would drop the draft: asked first, and "Отмена" keeps everything.
    second.click("#merge-take-theirs")
    expect(second.locator("#confirm")).to_contain_text("Отбросить ваши изменения?")
    second.click("#confirm-cancel")
    expect(merge).to_be_visible()
    conflict.locator('input[value="theirs"]').check()
    expect(second.locator("#merge-result-greeting")).to_have_value("Приветствие первого")
    second.fill("#merge-result-greeting", "Приветствие обоих")
    second.click("#merge-apply")
    expect(merge).to_be_hidden()
    expect(banner).to_be_hidden()
    expect(second.locator("#field-greeting")).to_have_value("Приветствие обоих")
    expect(second.locator("#field-fallback")).to_have_value("Запасной ответ первого")
    expect(second.locator("#field-goodbye")).to_have_value("Прощание второго")
    save_with_review(second)
    expect(second.locator("#save-status")).to_contain_text("Сохранено")
    saved = doc(panel.prompts_file)
    assert (saved["greeting"], saved["fallback"], saved["goodbye"]) == (
        "Приветствие обоих",
        "Запасной ответ первого",
        "Прощание второго",
    )
    # The first page, with no local changes, follows by itself and says who saved.
    expect(first.locator("#field-goodbye")).to_have_value("Прощание второго")
    expect(first.locator("#live-note")).to_contain_text("сохранено оператором second")


def sed(path: Path, expression: str) -> None:
    subprocess.run(["sed", "-i", expression, str(path)], check=True)


def test_a_hand_edit_on_disk_arrives_live_and_a_broken_file_is_shown_until_repaired(
    panel: Panel, contexts: Contexts
) -> None:
    page = open_panel(contexts(), panel.url)
    sed(panel.prompts_file, "s/Чем могу помочь?/Слушаю вас./")
    expect(page.locator("#field-greeting")).to_have_value(matching("Слушаю вас."))
    expect(page.locator("#live-note")).to_contain_text("изменено вручную на диске")
    assert_accessible(page, "followed a hand edit")

    # With local changes: a banner, and the merge keeps both sides.
    page.fill("#field-goodbye", "До новых встреч!")
    sed(panel.prompts_file, "s/Повторите, пожалуйста./Скажите ещё раз./")
    banner = page.locator("#live-banner")
    expect(banner).to_contain_text("изменено вручную на диске")
    expect(page.locator("#field-goodbye")).to_have_value("До новых встреч!")
    page.click("#live-merge")
    expect(page.locator('#merge-view fieldset[data-key="fallback"]')).to_have_attribute("data-status", "theirs")
    page.click("#merge-apply")
    save_with_review(page)
    expect(page.locator("#save-status")).to_contain_text("Сохранено")
    saved = doc(panel.prompts_file)
    assert saved["goodbye"] == "До новых встреч!" and saved["fallback"].endswith("Скажите ещё раз.")
    expect(banner).to_be_hidden()

    # A broken hand edit: a banner while it lasts; it clears itself once the file is repaired.
    good = panel.prompts_file.read_bytes()
    atomic_write(panel.prompts_file, b'{"greeting": "oops",')
    invalid = page.locator("#invalid-banner")
    expect(invalid).to_contain_text("повреждён")
    expect(page.locator("#invalid-detail")).to_have_text(
        "prompts.json, строка 1, столбец 21: ошибка синтаксиса JSON: ожидалось имя ключа в двойных кавычках"
    )
    assert_accessible(page, "broken file on disk")
    atomic_write(panel.prompts_file, good.replace("До новых встреч!".encode(), "Всего доброго!".encode()))
    expect(invalid).to_be_hidden()
    expect(page.locator("#field-goodbye")).to_have_value("Всего доброго!")


def test_a_lost_connection_shows_as_such_and_reconnects_by_itself(
    contexts: Contexts, config_dir: Path, status_dir: Path, tmp_path: Path
) -> None:
    settings = make_settings(config_dir, status_dir, tmp_path)
    served = serve(settings)
    port = int(served.url.rsplit(":", 1)[1])
    try:
        page = open_panel(contexts(), served.url)
        page.check("#skip-review")
        badge = page.locator('#consumer-badges li[data-service="adminapi"]')
        expect(badge).to_have_attribute("data-state", "in-sync")
        alerts: list[str] = []
        page.on("dialog", lambda d: (alerts.append(d.message), d.dismiss()))

        stop(served)
        expect(page.locator("#conn")).to_have_text("нет связи")
        expect(badge).to_have_attribute("data-state", "offline")
        expect(badge.locator(".state")).to_have_text("нет связи")
        assert_accessible(page, "offline")
        page.fill("#field-greeting", "Сохранить без связи")
        page.click("#save")
        expect(page.locator("#save-status")).to_contain_text("Нет связи с панелью: изменения не сохранены")
        assert alerts == []

        served = serve(settings, port=port)
        expect(page.locator("#conn")).to_have_text("на связи", timeout=15_000)
        expect(badge).to_have_attribute("data-state", "in-sync")
        page.click("#save")
        expect(page.locator("#save-status")).to_contain_text("Сохранено")
        assert doc(settings.prompts_file)["greeting"] == "Сохранить без связи"
    finally:
        if served.thread.is_alive():
            stop(served)


def test_a_failed_request_is_said_in_russian_not_in_an_alert(panel: Panel, contexts: Contexts) -> None:
    ctx = contexts()
    page = open_panel(ctx, panel.url, "/calls")
    alerts: list[str] = []
    page.on("dialog", lambda d: (alerts.append(d.message), d.dismiss()))
    page.route("**/api/calls?*", lambda route: route.abort())
    page.click("#calls-apply")
    expect(page.locator("#page-error")).to_have_text("Нет связи с панелью.")
    assert alerts == []
    page.unroute("**/api/calls?*")
    page.route("**/api/calls?*", lambda route: route.fulfill(status=503, json={"code": "not_ready", "detail": "x"}))
    page.click("#calls-apply")
    expect(page.locator("#page-error")).to_have_text("Панель сейчас недоступна (запускается или останавливается).")
