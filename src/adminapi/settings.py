"""Settings of the admin panel: the core's ``PROMPTS_*`` plus ``ADMIN_*``, ``KB_*`` and ``CALLLOG_PATH``.

One ``.env`` (or systemd ``EnvironmentFile=``) configures the whole stack; see :class:`PromptsSettings`.
"""

from __future__ import annotations

import os
from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import SettingsConfigDict

from promptwatch import PromptsSettings

__all__ = ["AdminSettings", "default_state_dir"]


def default_state_dir() -> Path:
    """``$STATE_DIRECTORY`` under systemd (``StateDirectory=``), else ``var/`` in the working directory."""
    if env := os.environ.get("STATE_DIRECTORY"):
        return Path(env.split(":")[0])
    return Path("var")


class AdminSettings(PromptsSettings):
    """Everything the admin panel reads from the environment."""

    model_config = SettingsConfigDict(env_file=".env", env_file_encoding="utf-8", extra="ignore")

    admin_host: str = "127.0.0.1"
    admin_port: int = Field(default=8000, ge=0, le=65535)
    admin_token: SecretStr | None = None
    """The operators' token.  Unset: one is generated and kept in ``admin_token_file``."""
    admin_token_name: str = Field(default="admin", min_length=1, max_length=64)
    """The author recorded in the history for saves made with ``admin_token``."""
    admin_tokens: str = ""
    """More named tokens, ``name=token`` separated by commas or newlines (each operator their own)."""
    admin_token_file: Path | None = None
    """Where a generated token is kept (mode 0600); default ``STATE_DIR/admin-token``."""
    state_dir: Path = Field(default_factory=default_state_dir)
    """The history database and the generated token live here."""
    admin_service_name: str = "adminapi"
    """The name the panel's own watcher reports in the status directory."""
    admin_history_retention: int = Field(default=100, ge=2, le=100_000)
    admin_wait_max_ms: int = Field(default=10_000, ge=0, le=600_000)
    """The cap on ``?wait_ms=``."""
    kb_max_bytes: int = Field(default=1024 * 1024, ge=1)
    calllog_path: Path = Path("var/calls.sqlite3")
    admin_expected_consumers: str = ""
    """Services that should be running (comma-separated, e.g. ``metrotech-bot``); the status names a missing one."""

    @property
    def expected_consumers(self) -> list[str]:
        return [name.strip() for name in self.admin_expected_consumers.split(",") if name.strip()]

    @property
    def token_file(self) -> Path:
        return self.admin_token_file if self.admin_token_file is not None else self.state_dir / "admin-token"

    @property
    def history_path(self) -> Path:
        return self.state_dir / "history.sqlite3"

    @property
    def prompts_file(self) -> Path:
        """The prompts path made absolute (as consumers report it in their status)."""
        return Path(os.path.abspath(self.prompts_path))
