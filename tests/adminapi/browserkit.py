"""The browser suite's toolkit: one Chromium per session, one panel server per session, logged-in pages,
axe-core checks.  The fixtures themselves live in ``conftest.py``."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
from playwright.sync_api import BrowserContext, Page, expect

from .conftest import TOKEN, Served

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-dev-shm-usage",
]
AXE = Path(__file__).parent / "vendor" / "axe.min.js"
SAMPLE = Path(__file__).resolve().parents[2] / "config"

DESKTOP = {"width": 1366, "height": 800}
PHONE = {"width": 390, "height": 844}


@dataclass
class Panel:
    """The session's panel server and its files."""

    served: Served
    root: Path
    problems: list[str] = field(default_factory=list)

    @property
    def url(self) -> str:
        return self.served.url

    @property
    def prompts_file(self) -> Path:
        return self.served.settings.prompts_file

    @property
    def kb_dir(self) -> Path:
        return self.served.settings.knowledge_base_dir

    @property
    def status_dir(self) -> Path:
        return self.served.settings.prompts_status_dir


def doc(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = orjson.loads(path.read_bytes())
    return data


def matching(text: str) -> re.Pattern[str]:
    return re.compile(f".*{re.escape(text)}.*", re.S)


def login(page: Page, token: str = TOKEN) -> None:
    expect(page.locator("#login")).to_be_visible()
    page.fill("#login-token", token)
    page.click("#login-submit")
    expect(page.locator("#login")).to_be_hidden()
    expect(page.locator("#field-system_prompt")).to_have_value(matching("Метротех"))


def open_panel(ctx: BrowserContext, url: str, path: str = "/", token: str = TOKEN) -> Page:
    """A page of the panel, logged in the way an operator does it (the token typed once)."""
    page = ctx.new_page()
    page.goto(url + path)
    login(page, token)
    expect(page.locator("#conn")).to_have_attribute("data-state", "online")
    return page


def axe_violations(page: Page) -> list[dict[str, Any]]:
    """axe-core's critical and serious violations on the page as it is now."""
    found: list[dict[str, Any]] = page.evaluate(
        """async () => {
            const r = await axe.run(document, { resultTypes: ["violations"] });
            return r.violations.filter((v) => v.impact === "critical" || v.impact === "serious")
              .map((v) => ({ id: v.id, impact: v.impact, nodes: v.nodes.slice(0, 5).map((n) => n.target.join(" ")) }));
        }"""
    )
    return found


def assert_accessible(page: Page, state: str) -> None:
    violations = axe_violations(page)
    assert not violations, f"{state}: {violations}"


def no_horizontal_scroll(page: Page) -> bool:
    """Neither the page nor any box in it (a table's wrapper, a diff) scrolls sideways."""
    result: bool = page.evaluate(
        """() => document.documentElement.scrollWidth <= window.innerWidth
          && [...document.querySelectorAll(".table-wrap, pre")].every((n) => n.scrollWidth <= n.clientWidth + 1)"""
    )
    return result


def save_with_review(page: Page) -> None:
    """Press Save and publish from the review dialog."""
    page.click("#save")
    expect(page.locator("#confirm")).to_be_visible()
    page.click("#confirm-ok")
