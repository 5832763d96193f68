"""Settings shared by every process, from the environment and ``.env`` (pydantic-settings).

The admin API and the Stasis service subclass :class:`PromptsSettings` with their own fields, so
one ``.env`` (or systemd ``EnvironmentFile=``) configures the whole stack.
"""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from .status import default_status_dir
from .watch import WatchMode

__all__ = ["PromptsSettings"]


class PromptsSettings(BaseSettings):
    """``PROMPTS_*`` settings.  ``PROMPTS_RELOAD_INTERVAL_SEC`` (the older name) is accepted too."""

    model_config = SettingsConfigDict(env_file=".env", env_file_encoding="utf-8", extra="ignore")

    prompts_path: Path = Path("prompts.json")
    prompts_hot_reload: bool = True
    prompts_watch_mode: WatchMode = WatchMode.AUTO
    prompts_reload_interval_ms: int = Field(default=1500, ge=10, le=3_600_000)
    prompts_reload_interval_sec: float | None = Field(default=None, gt=0, le=3600)
    prompts_safety_interval_ms: int = Field(default=30_000, ge=100)
    prompts_status_dir: Path = Field(default_factory=default_status_dir)
    kb_dir: Path | None = None
    prompts_redis_url: str | None = None
    """Several hosts: ``redis://``, ``rediss://``, ``unix://`` or ``redis+sentinel://h:p[,h:p]/service``.
    Unset: a single host, nothing talks to Redis."""
    prompts_namespace: str = Field(default="metrotech", min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.-]+$")
    """The prefix of every Redis key: one Redis serves several bots."""
    prompts_host: str = Field(default_factory=socket.gethostname, min_length=1, max_length=253, pattern=r"^[^\s:]+$")
    """This host's name in the status of every host and in the history (default the hostname)."""

    @field_validator("prompts_redis_url")
    @classmethod
    def _blank_url_is_unset(cls, value: str | None) -> str | None:
        return value.strip() or None if value is not None else None

    @model_validator(mode="before")
    @classmethod
    def _legacy_interval(cls, data: Any) -> Any:
        if isinstance(data, dict):
            keys = {k.lower() for k in data}
            if "prompts_reload_interval_sec" in keys and "prompts_reload_interval_ms" not in keys:
                sec = next(v for k, v in data.items() if k.lower() == "prompts_reload_interval_sec")
                try:
                    ms = round(float(sec) * 1000)
                except (TypeError, ValueError):
                    raise ValueError(f"PROMPTS_RELOAD_INTERVAL_SEC={sec!r} is not a number of seconds") from None
                data = {**data, "prompts_reload_interval_ms": ms}
        return data

    @property
    def reload_interval(self) -> float:
        """The poll interval in seconds."""
        return self.prompts_reload_interval_ms / 1000

    @property
    def knowledge_base_dir(self) -> Path:
        """``KB_DIR``, else ``kb/`` beside the prompts file."""
        return self.kb_dir if self.kb_dir is not None else self.prompts_path.parent / "kb"
