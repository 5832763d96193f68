"""Settings of the Stasis service: the core ``PROMPTS_*`` settings plus ARI, backends and paths.

Read from the environment and the same ``.env`` as the rest of the stack (pydantic-settings).
Field names map to upper-case environment variables: ``ari_url`` ← ``ARI_URL``.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, field_validator, model_validator

from promptwatch.settings import BOT_SERVICE, PromptsSettings, directory_problem

__all__ = ["StasisSettings"]


class StasisSettings(PromptsSettings):
    """Everything ``stasis run`` and ``stasis console`` need."""

    # Asterisk REST Interface
    ari_url: str = "http://127.0.0.1:8088"
    ari_user: str = "asterisk"
    ari_password: SecretStr = SecretStr("asterisk")
    ari_app: str = "metrotech"
    ari_reconnect_max_seconds: float = Field(default=30.0, gt=0)

    # Calls
    max_calls: int = Field(default=20, ge=1)
    max_turns: int = Field(default=10, ge=1)
    call_grace_seconds: float = Field(default=20.0, ge=0)
    filler_after_ms: int = Field(default=1200, ge=0)
    record_max_seconds: int = Field(default=15, ge=1)
    record_silence_seconds: int = Field(default=2, ge=1)
    no_input_limit: int = Field(default=2, ge=1)
    operator_digit: str | None = "0"
    operator_context: str | None = None
    operator_extension: str = "s"
    operator_priority: int = 1
    goodbye_words: str = "до свидания,пока,всего доброго,всего хорошего,больше ничего,goodbye,bye"

    # LLM: an OpenAI-compatible chat-completions endpoint, or offline (knowledge base) when unset
    llm_url: str | None = None
    llm_api_key: SecretStr | None = None
    llm_model: str = "gpt-4o-mini"
    llm_timeout_seconds: float = Field(default=8.0, gt=0)
    llm_max_tokens: int = Field(default=200, ge=1)
    llm_temperature: float = Field(default=0.3, ge=0, le=2)

    # Speech-to-text: OpenAI-compatible /audio/transcriptions, or none (DTMF only)
    stt_backend: Literal["openai", "none"] = "none"
    stt_url: str | None = None
    stt_api_key: SecretStr | None = None
    stt_model: str = "whisper-1"
    stt_language: str = "ru"
    stt_timeout_seconds: float = Field(default=8.0, gt=0)

    # Text-to-speech: espeak-ng (offline) or OpenAI-compatible /audio/speech
    tts_backend: Literal["espeak", "openai"] = "espeak"
    tts_url: str | None = None
    tts_api_key: SecretStr | None = None
    tts_model: str = "tts-1"
    tts_voice: str = "alloy"
    tts_timeout_seconds: float = Field(default=10.0, gt=0)
    tts_sample_rate: Literal[8000, 16000] = 8000
    espeak_voice: str = "ru"
    espeak_speed: int = Field(default=160, ge=80, le=450)

    # Paths and observability
    sounds_dir: Path = Path("sounds")
    """The synthesised phrases; default ``STATE_DIR/sounds``."""
    sounds_max_age_days: float = Field(default=14.0, gt=0)
    metrics_port: int | None = Field(default=None, ge=0, le=65535)
    metrics_host: str = "127.0.0.1"
    service_name: str = BOT_SERVICE

    @field_validator("ari_url", "llm_url", "stt_url", "tts_url")
    @classmethod
    def _strip_slash(cls, value: str | None) -> str | None:
        if value is None:
            return None
        value = value.strip().rstrip("/")
        if not value:
            return None
        if not value.startswith(("http://", "https://")):
            raise ValueError("must be an http:// or https:// URL")
        return value

    @field_validator("operator_digit", "operator_context")
    @classmethod
    def _empty_is_none(cls, value: str | None) -> str | None:
        return value or None

    @model_validator(mode="after")
    def _sounds_under_state_dir(self) -> StasisSettings:
        """SOUNDS_DIR defaults to ``sounds/`` in STATE_DIR (CALLLOG_PATH is the core's, likewise)."""
        if "sounds_dir" not in self.model_fields_set:
            self.sounds_dir = self.state_dir / "sounds"
        return self

    def problems(self) -> list[str]:
        """The shared checks, plus the ARI URL, the TTS programs and the bot's own directories."""
        found = super().problems()
        if not urlsplit(self.ari_url).hostname:
            found.append(f"ARI_URL {self.ari_url!r}: no host")
        if self.tts_backend == "espeak" and shutil.which("espeak-ng") is None:
            found.append("TTS_BACKEND=espeak: espeak-ng is not installed (apt-get install espeak-ng)")
        if self.tts_backend == "openai" and self.tts_url is None:
            found.append("TTS_BACKEND=openai: TTS_URL is not set")
        if self.stt_backend == "openai" and self.stt_url is None:
            found.append("STT_BACKEND=openai: STT_URL is not set")
        for what, directory in (("SOUNDS_DIR", self.sounds_dir), ("CALLLOG_PATH", self.calllog_path.parent)):
            if problem := directory_problem(directory, what):
                found.append(problem)
        return found

    @property
    def goodbye_phrases(self) -> tuple[str, ...]:
        return tuple(p.strip().lower() for p in self.goodbye_words.split(",") if p.strip())

    @property
    def ari_ws_url(self) -> str:
        """The events WebSocket URL (``ws://…/ari/events``) of :attr:`ari_url`."""
        return "ws" + self.ari_url.removeprefix("http") + "/ari/events"
