"""The prompts editor in a real headless Chromium: login dialog, deliberate saving, errors at their fields,
raw JSON mode, drafts kept across reloads, guards before losing work, where a save went live."""

from __future__ import annotations

import os
import signal
from collections.abc import Callable

import pytest
from playwright.sync_api import BrowserContext, Page, expect

from .browserkit import Panel, assert_accessible, doc, login, matching, open_panel, save_with_review
from .conftest import OTHER_TOKEN, Consumer

pytestmark = pytest.mark.browser

Contexts = Callable[..., BrowserContext]


def active_id(page: Page) -> str:
    value: str = page.evaluate("() => document.activeElement ? document.activeElement.id : ''")
    return value


def test_login_is_a_modal_dialog_and_the_tabs_are_tabs(panel: Panel, contexts: Contexts) -> None:
    page = contexts().new_page()
    page.goto(panel.url + "/")
    dialog = page.locator("#login")
    expect(dialog).to_be_visible()
    assert page.evaluate("() => document.querySelector('#login').matches(':modal')")
    assert_accessible(page, "login dialog")
    # Focus stays inside the dialog; the page behind is inert (cannot take focus) and Escape does not dismiss it.
    for _ in range(6):
        page.keyboard.press("Tab")
        assert page.evaluate("() => Boolean(document.activeElement.closest('#login'))")
    assert page.evaluate(
        "() => { document.querySelector('#tabbtn-history').focus(); return document.activeElement.id }"
    ) != ("tabbtn-history")
    page.keyboard.press("Escape")
    expect(dialog).to_be_visible()
    page.fill("#login-token", "wrong-token-0123456789")
    page.keyboard.press("Enter")
    expect(page.locator("#login-error")).to_have_text("Неверный токен.")
    login(page, OTHER_TOKEN)
    expect(page.locator("#operator")).to_have_text("second")

    tabs = page.locator("#tabs [role=tab]")
    expect(tabs).to_have_count(6)
    expect(page.locator("#tabbtn-prompts")).to_have_attribute("aria-selected", "true")
    expect(page.locator("#tab-prompts")).to_have_attribute("role", "tabpanel")
    page.focus("#tabbtn-prompts")
    page.keyboard.press("ArrowRight")
    expect(page.locator("#tabbtn-history")).to_have_attribute("aria-selected", "true")
    expect(page.locator("#tabbtn-history")).to_be_focused()
    expect(page).to_have_url(panel.url + "/history")
    expect(page.locator("#tab-history")).to_be_visible()
    page.go_back()
    expect(page.locator("#tabbtn-prompts")).to_have_attribute("aria-selected", "true")


def test_enter_never_saves_the_review_step_and_the_skip_setting(panel: Panel, contexts: Contexts) -> None:
    page = open_panel(contexts(), panel.url)
    before = panel.prompts_file.read_bytes()
    page.fill("#field-greeting", "Незаконченное приветств")
    page.fill("#new-key", "перевод")
    page.press("#new-key", "Enter")  # adds the prompt, publishes nothing
    expect(page.locator("#field-перевод")).to_be_focused()
    page.fill("#save-message", "комментарий")
    page.press("#save-message", "Enter")
    assert panel.prompts_file.read_bytes() == before
    expect(page.locator("#confirm")).to_be_hidden()

    # Ctrl+S opens the review: the diff against what is live; cancelling writes nothing.
    page.fill("#field-перевод", "Перевожу на специалиста.")
    page.keyboard.press("Control+s")
    review = page.locator("#confirm")
    expect(review).to_be_visible()
    expect(page.locator("#review-keys li[data-key=greeting]")).to_contain_text("изменён")
    expect(page.locator("#review-keys li[data-key=перевод]")).to_contain_text("добавлен")
    expect(page.locator("#review-text")).to_contain_text('+ "greeting": "Незаконченное приветств"')
    expect(page.locator("#confirm-cancel")).to_be_focused()  # Enter here does not publish
    assert_accessible(page, "review dialog")
    page.keyboard.press("Enter")
    expect(review).to_be_hidden()
    expect(page.locator("#save-status")).to_contain_text("Сохранение отменено")
    assert panel.prompts_file.read_bytes() == before

    # Ctrl+Enter, then "Опубликовать": saved; the result is shown in the sticky bar, inside the viewport.
    page.fill("#field-greeting", "Добрый день! Метротех слушает.")
    page.keyboard.press("Control+Enter")
    page.click("#confirm-ok")
    status = page.locator("#save-status")
    expect(status).to_contain_text("Сохранено, версия")
    expect(status).to_have_attribute("aria-live", "polite")
    box = status.bounding_box()
    assert box is not None and box["y"] + box["height"] <= 800, box
    saved = doc(panel.prompts_file)
    assert saved["greeting"] == "Добрый день! Метротех слушает." and saved["перевод"] == "Перевожу на специалиста."
    assert_accessible(page, "saved")

    # "Без просмотра изменений" is remembered per operator; with it Save publishes at once.
    page.check("#skip-review")
    page.reload()
    expect(page.locator("#skip-review")).to_be_checked()
    page.fill("#field-goodbye", "До свидания!")
    page.click("#save")
    expect(page.locator("#save-status")).to_contain_text("Сохранено")
    expect(page.locator("#confirm")).to_be_hidden()
    assert doc(panel.prompts_file)["goodbye"] == "До свидания!"


def test_errors_at_their_fields_in_russian_and_the_raw_json_mode(panel: Panel, contexts: Contexts) -> None:
    page = open_panel(contexts(), panel.url)
    before = panel.prompts_file.read_bytes()
    page.fill("#field-greeting", "   ")
    save_with_review(page)
    box = page.locator('.field[data-field="greeting"]')
    expect(box).to_have_class(matching("invalid"))
    area = page.locator("#field-greeting")
    expect(area).to_have_attribute("aria-invalid", "true")
    expect(area).to_be_focused()
    expect(page.locator("#err-greeting")).to_have_text("greeting: не может быть пустым")
    expect(page.locator("#save-status")).to_contain_text("Документ не прошёл проверку")
    expect(page.locator("body")).not_to_contain_text("must not be blank")
    assert_accessible(page, "field errors")
    assert panel.prompts_file.read_bytes() == before

    # The raw view: the whole document as JSON; a syntax error is marked at its line and column.
    page.click("#view-raw")
    expect(page.locator("#view-raw")).to_have_attribute("aria-pressed", "true")
    raw = page.locator("#raw-text")
    text = raw.input_value()
    assert '"greeting": "   "' in text
    broken = text.replace('"greeting": "   ",', '"greeting": "Здравствуйте!"', 1)  # the comma is gone
    line = next(i for i, s in enumerate(broken.split("\n"), 1) if '"greeting"' in s) + 1
    raw.fill(broken)
    page.click("#save")  # not JSON: nothing to review, the server's 422 names the place
    error = page.locator("#raw-error")
    expect(error).to_contain_text(f"строка {line}, столбец")
    expect(error).to_contain_text("ожидалась запятая")
    expect(raw).to_have_attribute("aria-invalid", "true")
    expect(raw).to_be_focused()
    expect(page.locator("#raw-gutter .error-line")).to_have_text(f"▶{line}\n")
    col = int(error.get_attribute("data-col") or 0)
    offset = sum(len(s) + 1 for s in broken.split("\n")[: line - 1]) + col - 1
    assert page.evaluate("() => document.querySelector('#raw-text').selectionStart") == offset
    assert_accessible(page, "raw view with a syntax error")
    page.click("#view-form")  # cannot leave the raw view with broken JSON
    expect(page.locator("#raw-view")).to_be_visible()
    assert panel.prompts_file.read_bytes() == before

    raw.fill(broken.replace('"Здравствуйте!"', '"Здравствуйте!",', 1))
    page.click("#view-form")
    expect(page.locator("#field-greeting")).to_have_value("Здравствуйте!")
    save_with_review(page)
    expect(page.locator("#save-status")).to_contain_text("Сохранено")
    assert doc(panel.prompts_file)["greeting"] == "Здравствуйте!"


def stored_draft(page: Page) -> str | None:
    value: str | None = page.evaluate("() => localStorage.getItem('promptwatch.v1.draft.admin.default')")
    return value


def test_drafts_survive_a_reload_and_leaving_asks_first(panel: Panel, contexts: Contexts) -> None:
    page = open_panel(contexts(), panel.url)
    before = panel.prompts_file.read_bytes()
    page.click("#field-greeting")
    page.keyboard.press("End")
    page.keyboard.type(" Черновик!")
    page.wait_for_function("() => localStorage.getItem('promptwatch.v1.draft.admin.default') !== null")
    dialogs: list[str] = []
    page.on("dialog", lambda d: (dialogs.append(d.type), d.accept()))
    page.reload()
    assert dialogs == ["beforeunload"]
    banner = page.locator("#draft-banner")
    expect(banner).to_contain_text("Найден несохранённый черновик")
    assert_accessible(page, "draft offered back")
    page.click("#draft-restore")
    expect(page.locator("#field-greeting")).to_have_value(matching("Чем могу помочь? Черновик!"))
    assert panel.prompts_file.read_bytes() == before

    # Logout with unsaved changes asks; cancelling keeps the operator in.
    page.click("#logout")
    expect(page.locator("#confirm")).to_be_visible()
    page.click("#confirm-cancel")
    expect(page.locator("#login")).to_be_hidden()
    # "Отменить изменения" asks too, then restores what is live and forgets the draft.
    page.click("#discard")
    page.click("#confirm-ok")
    expect(page.locator("#field-greeting")).not_to_have_value(matching("Черновик!"))
    assert stored_draft(page) is None
    page.reload()
    expect(page.locator("#field-greeting")).to_have_value(matching("Чем могу помочь?"))
    expect(banner).to_be_hidden()
    assert dialogs == ["beforeunload"]  # nothing unsaved this time: no question


def test_where_a_save_went_live_and_the_consumer_badges(
    panel: Panel, contexts: Contexts, panel_consumer: Callable[[str], Consumer]
) -> None:
    bot = panel_consumer("metrotech-bot")
    page = open_panel(contexts(), panel.url)
    page.check("#skip-review")
    badge = page.locator('#consumer-badges li[data-service="metrotech-bot"]')
    expect(badge).to_have_attribute("data-state", "in-sync")
    expect(badge.locator(".state")).to_have_text("актуально")
    os.kill(bot.pid, signal.SIGSTOP)
    try:
        page.fill("#field-greeting", "Добрый день! Компания «Метротех», слушаю вас.")
        page.click("#save")
        expect(page.locator("#save-status")).to_contain_text("НЕ применено: metrotech-bot", timeout=15_000)
        expect(badge).to_have_attribute("data-state", "stale")
        expect(badge.locator(".state")).to_have_text("отстаёт")
        assert_accessible(page, "a consumer behind")
    finally:
        os.kill(bot.pid, signal.SIGCONT)
    expect(badge).to_have_attribute("data-state", "in-sync", timeout=15_000)
    page.fill("#field-goodbye", "Спасибо, что позвонили!")
    page.click("#save")
    expect(page.locator("#save-status")).to_contain_text("применено: metrotech-bot")
    expect(page.locator("#save-status")).to_contain_text(" мс")
    expect(badge).to_contain_text("применил за")
    assert doc(panel.prompts_file)["goodbye"] == "Спасибо, что позвонили!"


def test_the_three_way_merge_rules(panel: Panel, contexts: Contexts) -> None:
    page = open_panel(contexts(), panel.url)
    statuses = page.evaluate(
        """async () => {
            const { threeWay } = await import("/static/js/merge.js");
            const base = { system_prompt: "s", greeting: "g", fallback: "f", goodbye: "b", a: "1", fillers: ["x"] };
            const theirs = { ...base, greeting: "G-theirs", fallback: "f2", a: "1", b: "new", fillers: [] };
            delete theirs.goodbye;
            const mine = { ...base, greeting: "G-mine", fallback: "f2", a: "2", c: "mine-only" };
            const m = threeWay(base, theirs, mine);
            const keys = Object.fromEntries(m.keys.map((k) => [k.key, [k.status, k.result ?? null]]));
            return { conflicts: m.conflicts, keys };
        }"""
    )
    assert statuses["keys"] == {
        "system_prompt": ["same", "s"],
        "greeting": ["conflict", "G-mine"],  # both changed: the operator chooses (mine until then)
        "fallback": ["both", "f2"],  # the same change on both sides
        "a": ["mine", "2"],
        "b": ["theirs", "new"],  # added on disk
        "c": ["mine", "mine-only"],  # added in the draft
        "goodbye": ["theirs", None],  # removed on disk, untouched here: removed
        "fillers": ["theirs", None],  # emptied on disk (an empty list is no fillers)
    }
    assert statuses["conflicts"] == 1


def test_a_browser_that_refuses_to_keep_the_draft_says_so(panel: Panel, contexts: Contexts) -> None:
    ctx = contexts()
    ctx.add_init_script(  # a full storage: drafts are refused, everything else is kept
        """const setItem = Storage.prototype.setItem;
        Storage.prototype.setItem = function (key, value) {
          if (key.includes(".draft.")) throw new DOMException("full", "QuotaExceededError");
          return setItem.call(this, key, value);
        };"""
    )
    page = open_panel(ctx, panel.url)
    page.fill("#field-goodbye", "Черновик, который некуда сохранить")
    expect(page.locator("#save-status")).to_contain_text("Браузер не даёт сохранить черновик")
