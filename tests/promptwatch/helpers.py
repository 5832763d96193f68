"""Helpers of the promptwatch tests: documents of a known version, collected watcher hints."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import orjson

REPO = Path(__file__).resolve().parents[2]
PROMPTWATCH = Path(sys.executable).parent / "promptwatch"
"""The installed console script."""
POLL_INTERVAL = 0.05

BACKENDS: dict[str, dict[str, Any]] = {
    "inotify": {"mode": "inotify"},
    "poll": {"mode": "poll", "interval": POLL_INTERVAL},
}


def make_doc(version: int | str, *, size: int = 0, **extra: Any) -> bytes:
    """A valid prompts document whose greeting names ``version``, padded to at least ``size`` bytes."""
    doc: dict[str, Any] = {
        "system_prompt": "Ты — вежливый голосовой ассистент.",
        "greeting": f"Здравствуйте! Версия {version}.",
        "fillers": ["Секундочку…", "Сейчас посмотрю."],
    }
    doc.update(extra)
    data = orjson.dumps(doc, option=orjson.OPT_INDENT_2)
    if len(data) < size:
        doc["padding"] = "x" * (size - len(data) - 16)
        data = orjson.dumps(doc, option=orjson.OPT_INDENT_2)
    return data


def greeting_of(version: int | str) -> str:
    return f"Здравствуйте! Версия {version}."


class Hints:
    """Collects the ``notify(source, urgent)`` hints of a watcher."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, bool]] = []

    def __call__(self, source: str, urgent: bool) -> None:
        self.calls.append((source, urgent))

    def __len__(self) -> int:
        return len(self.calls)

    def clear(self) -> None:
        self.calls.clear()


def assert_no_temp_files(directory: Path) -> None:
    left = [p.name for p in directory.iterdir() if p.name.startswith(".pw-tmp-")]
    assert left == [], f"temp files left behind in {directory}: {left}"
