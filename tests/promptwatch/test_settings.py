"""PromptsSettings: environment, ``.env``, the legacy interval name."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from pydantic import ValidationError

from promptwatch import PromptsSettings, WatchMode


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    """No PROMPTS_* from the outside, and a working directory without a ``.env``."""
    for name in [
        "PROMPTS_PATH",
        "PROMPTS_HOT_RELOAD",
        "PROMPTS_WATCH_MODE",
        "PROMPTS_RELOAD_INTERVAL_MS",
        "PROMPTS_RELOAD_INTERVAL_SEC",
        "PROMPTS_SAFETY_INTERVAL_MS",
        "PROMPTS_STATUS_DIR",
        "KB_DIR",
        "RUNTIME_DIRECTORY",
        "PROMPTWATCH_ENV_FILE",
    ]:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)
    yield


def test_defaults() -> None:
    s = PromptsSettings()
    assert s.prompts_path == Path("prompts.json")
    assert s.prompts_hot_reload is True
    assert s.prompts_watch_mode is WatchMode.AUTO
    assert s.prompts_reload_interval_ms == 1500
    assert s.reload_interval == 1.5
    assert s.prompts_safety_interval_ms == 30_000
    assert s.knowledge_base_dir == Path("kb")


def test_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PROMPTS_PATH", "/etc/metrotech/prompts.json")
    monkeypatch.setenv("PROMPTS_HOT_RELOAD", "false")
    monkeypatch.setenv("PROMPTS_WATCH_MODE", "poll")
    monkeypatch.setenv("PROMPTS_RELOAD_INTERVAL_MS", "250")
    monkeypatch.setenv("PROMPTS_STATUS_DIR", str(tmp_path / "st"))
    s = PromptsSettings()
    assert s.prompts_path == Path("/etc/metrotech/prompts.json")
    assert s.prompts_hot_reload is False
    assert s.prompts_watch_mode is WatchMode.POLL
    assert s.reload_interval == 0.25
    assert s.prompts_status_dir == tmp_path / "st"
    assert s.knowledge_base_dir == Path("/etc/metrotech/kb")


def test_dotenv_file(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("PROMPTS_PATH=/srv/prompts.json\nPROMPTS_WATCH_MODE=inotify\nKB_DIR=/srv/kb\n")
    s = PromptsSettings.load()
    assert s.prompts_path == Path("/srv/prompts.json")
    assert s.prompts_watch_mode is WatchMode.INOTIFY
    assert s.knowledge_base_dir == Path("/srv/kb")


@pytest.mark.parametrize(("sec", "ms"), [("2", 2000), ("0.5", 500), ("1.5", 1500)])
def test_legacy_interval_in_seconds(monkeypatch: pytest.MonkeyPatch, sec: str, ms: int) -> None:
    monkeypatch.setenv("PROMPTS_RELOAD_INTERVAL_SEC", sec)
    assert PromptsSettings().prompts_reload_interval_ms == ms


def test_legacy_interval_in_a_dotenv_file(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("PROMPTS_HOT_RELOAD=true\nPROMPTS_RELOAD_INTERVAL_SEC=3\n")
    assert PromptsSettings.load().reload_interval == 3.0


def test_the_new_name_wins_over_the_legacy_one(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PROMPTS_RELOAD_INTERVAL_SEC", "9")
    monkeypatch.setenv("PROMPTS_RELOAD_INTERVAL_MS", "700")
    assert PromptsSettings().prompts_reload_interval_ms == 700


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("PROMPTS_WATCH_MODE", "fanotify"),
        ("PROMPTS_RELOAD_INTERVAL_MS", "0"),
        ("PROMPTS_RELOAD_INTERVAL_MS", "soon"),
        ("PROMPTS_RELOAD_INTERVAL_SEC", "-1"),
        ("PROMPTS_RELOAD_INTERVAL_SEC", "abc"),
    ],
)
def test_bad_values_are_rejected(monkeypatch: pytest.MonkeyPatch, name: str, value: str) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(ValidationError):
        PromptsSettings()


def test_status_dir_under_systemd(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RUNTIME_DIRECTORY", "/run/metrotech:/run/other")
    assert PromptsSettings().prompts_status_dir == Path("/run/metrotech/status")
