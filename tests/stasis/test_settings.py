from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from stasis.settings import StasisSettings


def settings(**values: object) -> StasisSettings:
    return StasisSettings(_env_file=None, **values)  # type: ignore[arg-type]


def test_defaults() -> None:
    s = settings()
    assert s.ari_url == "http://127.0.0.1:8088" and s.ari_ws_url == "ws://127.0.0.1:8088/ari/events"
    assert s.calllog_path == Path("var/calls.sqlite3") and s.sounds_dir == Path("var/sounds")
    assert s.stt_backend == "none" and s.tts_backend == "espeak" and s.llm_url is None


def test_paths_follow_state_dir_unless_set(monkeypatch: pytest.MonkeyPatch) -> None:
    assert settings(state_dir="/srv/bot").calllog_path == Path("/srv/bot/calls.sqlite3")
    monkeypatch.setenv("STATE_DIR", "/var/lib/metrotech")
    monkeypatch.setenv("CALLLOG_PATH", "/data/calls.db")
    s = StasisSettings(_env_file=None)  # type: ignore[call-arg]
    assert s.sounds_dir == Path("/var/lib/metrotech/sounds") and s.calllog_path == Path("/data/calls.db")


def test_env_and_validation(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ARI_URL", "https://pbx.example:8089/")
    monkeypatch.setenv("LLM_URL", "")
    monkeypatch.setenv("OPERATOR_DIGIT", "")
    s = StasisSettings(_env_file=None)  # type: ignore[call-arg]
    assert s.ari_ws_url == "wss://pbx.example:8089/ari/events"
    assert s.llm_url is None and s.operator_digit is None
    with pytest.raises(ValidationError, match="http"):
        settings(llm_url="localhost:8000")
    with pytest.raises(ValidationError):
        settings(max_calls=0)
    assert settings(goodbye_words=" Пока , до свидания ,").goodbye_phrases == ("пока", "до свидания")
