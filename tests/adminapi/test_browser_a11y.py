"""A phone-sized screen, axe-core on every page, one language (Russian for every code the API and the bot
can produce), dates in the operator's locale."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import BrowserContext, Page, expect

from adminapi.api.problems import Code
from promptwatch import (
    DocumentError,
    DocumentSchemaError,
    DocumentSyntaxError,
    DocumentTooLargeError,
    parse_document,
)

from .browserkit import PHONE, Panel, assert_accessible, doc, no_horizontal_scroll, open_panel

pytestmark = pytest.mark.browser

Contexts = Callable[..., BrowserContext]
SRC = Path(__file__).resolve().parents[2] / "src"
PAGES = ["/prompts", "/history", "/kb", "/calls", "/status", "/playground"]
READY = {  # what each page shows once it has loaded
    "/prompts": "#field-greeting",
    "/history": "#history-table tbody tr",
    "/kb": "#kb-table tbody tr",
    "/calls": "#calls-table tbody tr",
    "/status": "#status-table",
    "/playground": "#playground-form",
}


def test_every_page_on_a_phone_without_horizontal_scrolling(panel: Panel, contexts: Contexts) -> None:
    with panel.served.client() as client:  # history rows with every action (view, changes, rollback)
        for greeting in ("Телефон: первая", "Телефон: вторая"):
            r = client.put("/api/prompts", json={**doc(panel.prompts_file), "greeting": greeting})
            assert r.status_code == 200, r.text
    page = open_panel(contexts(viewport=PHONE), panel.url)
    expect(page.locator("#processes")).not_to_have_attribute("open", "")  # the sidebar is collapsed
    width = page.locator("#field-greeting").bounding_box()
    assert width is not None and width["width"] >= 300, width
    expect(page.locator("#save")).to_be_in_viewport()
    for path in PAGES:
        page.goto(panel.url + path)
        expect(page.locator(f"#tab-{path[1:]}")).to_be_visible()
        expect(page.locator(READY[path]).first).to_be_visible()
        assert no_horizontal_scroll(page), path
        assert_accessible(page, f"phone {path}")
    page.goto(panel.url + "/prompts")
    page.click("#processes-summary")
    expect(page.locator("#consumer-badges li").first).to_be_visible()
    page.fill("#field-greeting", "Короткое")
    page.click("#save")
    expect(page.locator("#confirm")).to_be_visible()
    assert no_horizontal_scroll(page)
    assert_accessible(page, "phone review dialog")


def used_codes() -> set[str]:
    """Every ``code`` the API can answer with."""
    return {str(c) for c in Code}


BAD_DOCUMENTS = [b"[]", b"{", b'{"greeting": "x"}', b'{"system_prompt": 1, "greeting": " "}',
           b'{"system_prompt": "s", "greeting": "g", "fillers": "x"}',
           b'{"system_prompt": "s", "greeting": "g", "fillers": ["' + b"x" * 1000 + b'"], "extra": 5}']  # fmt: skip


def document_errors() -> list[DocumentError]:
    """What the core says about each bad document (the text processes report as their last error)."""
    found: list[DocumentError] = []
    for data in BAD_DOCUMENTS:
        try:
            parse_document(data, source="/etc/metrotech/prompts.json")
        except DocumentError as e:
            found.append(e)
    found.append(DocumentTooLargeError(2_000_000, 1_048_576, source="/etc/metrotech/prompts.json"))
    return found


def document_kinds() -> set[str]:
    kinds: set[str] = set()
    for e in document_errors():
        if isinstance(e, DocumentSchemaError):
            kinds |= {f.kind for f in e.errors}
        elif isinstance(e, DocumentSyntaxError):
            kinds.add("json_syntax")
    return kinds


def request_kinds(client: httpx.Client) -> set[str]:
    answers = [
        client.get("/api/prompts/history", params={"limit": 0}),
        client.get("/api/prompts/history", params={"limit": "many"}),
        client.get("/api/prompts/history", params={"limit": 5000}),
        client.get("/api/calls", params={"since": "yesterday"}),
        client.get("/api/calls", params={"had_error": "maybe"}),
        client.post("/api/playground", json={"prompts": []}),
        client.post("/api/playground", json={"prompts": {}, "text": ""}),
        client.post("/api/playground", json={"prompts": {}, "text": "x" * 5000}),
        client.post("/api/playground", json={"prompts": {}, "text": "x", "history": [{"role": "x", "text": "y"}] * 60}),
        client.post("/api/playground", content=b"{", headers={"Content-Type": "application/json"}),
    ]
    kinds: set[str] = set()
    for r in answers:
        assert r.status_code == 422, r.text
        assert r.json()["code"] == "invalid_request"
        kinds |= {e["kind"] for e in r.json()["errors"]}
    return kinds


def end_reasons() -> set[str]:
    text = (SRC / "stasis" / "call.py").read_text(encoding="utf-8")
    return set(re.findall(r'reason = "([a-z_]+)"', text)) | set(re.findall(r'_finish\("([a-z_]+)"\)', text))


def i18n(page: Page, script: str, values: list[str]) -> dict[str, str]:
    result: dict[str, str] = page.evaluate(
        f"async (values) => {{ const m = await import('/static/js/i18n.js'); {script} }}", values
    )
    return result


def test_one_language_for_every_code_kind_and_end_reason(panel: Panel, contexts: Contexts) -> None:
    page = open_panel(contexts(), panel.url)
    codes = sorted(used_codes())
    texts = i18n(page, "return Object.fromEntries(values.map((c) => [c, m.codeText(c, 400)]));", codes)
    generic = i18n(page, "return {g: m.codeText('no-such-code', 400)};", [])["g"]
    cyrillic = re.compile("[а-яё]", re.I)
    for code, text in texts.items():
        assert cyrillic.search(text), (code, text)
        assert text != generic or code == "client_error", f"{code}: no Russian text of its own"

    with panel.served.client() as c:
        kinds = sorted(document_kinds() | request_kinds(c))
    assert {"missing", "blank", "json_syntax", "not_object", "string_too_long"} <= set(kinds)
    words = i18n(page, "return Object.fromEntries(values.map((k) => [k, m.itemText({path: 'x', kind: k})]));", kinds)
    fallback = i18n(page, "return {g: m.itemText({path: 'x', kind: 'no-such-kind'})};", [])["g"]
    untranslated = [k for k, text in words.items() if text == fallback and k not in ("invalid", "value_error")]
    assert not untranslated, untranslated

    # What a process reports about a broken file: the place kept, the words Russian.
    reported = [str(e) for e in document_errors()]
    shown = i18n(page, "return Object.fromEntries(values.map((t) => [t, m.fileErrorText(t)]));", reported)
    for english, russian in shown.items():
        assert russian.startswith("prompts.json") and cyrillic.search(russian), (english, russian)
        words = set(re.findall(r"[A-Za-z]{3,}", russian)) - {"prompts", "json", "system_prompt", "greeting", "fillers"}
        assert not words - {"system", "prompt", "extra", "JSON"}, (english, russian)

    reasons = sorted(end_reasons())
    assert {"goodbye", "no_input", "max_turns", "error"} <= set(reasons)
    said = i18n(page, "return Object.fromEntries(values.map((r) => [r, m.endReasonText(r)]));", reasons)
    assert all(cyrillic.search(t) and t != "другая причина" for t in said.values()), said


def first_history_time(ctx: BrowserContext, panel: Panel) -> str:
    page = open_panel(ctx, panel.url, "/history")
    cell = page.locator("#history-table tbody tr").first.locator("td").nth(2)
    expect(cell).not_to_have_text("")
    text: str = cell.inner_text()
    return text


def test_dates_in_the_operators_locale(panel: Panel, contexts: Contexts) -> None:
    ru = first_history_time(contexts(locale="ru-RU"), panel)
    us = first_history_time(contexts(locale="en-US"), panel)
    assert re.fullmatch(r"\d{2}\.\d{2}\.\d{4}, \d{1,2}:\d{2}:\d{2}", ru), ru
    assert re.fullmatch(r"\d{1,2}/\d{1,2}/\d{2,4}, \d{1,2}:\d{2}:\d{2}\s?[AP]M", us), us


def test_the_page_urls_are_served_and_unknown_ones_are_not(panel: Panel) -> None:
    with httpx.Client(base_url=panel.url) as c:
        for path in [*PAGES, "/history/abcdef1", "/history/diff/abcdef1/1234567", "/calls/x%2Fy", "/kb/акции.md"]:
            r = c.get(path)
            assert r.status_code == 200 and '<script type="module" src="/static/js/main.js">' in r.text, path
            assert "script-src 'self'" in r.headers["content-security-policy"]
        assert c.get("/nonsense").status_code == 404
        assert c.get("/api/nonsense").json()["code"] == "not_found"
