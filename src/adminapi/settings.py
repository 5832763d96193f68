"""Settings of the admin panel: the core's ``PROMPTS_*`` plus ``ADMIN_*``, ``KB_*`` and ``CALLLOG_PATH``.

One ``.env`` (or systemd ``EnvironmentFile=``) configures the whole stack; see :class:`PromptsSettings`.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr

from promptwatch import PromptsSettings
from promptwatch.settings import BOT_SERVICE, PANEL_SERVICE

__all__ = ["AdminSettings"]


class AdminSettings(PromptsSettings):
    """Everything the admin panel reads from the environment."""

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
    admin_service_name: str = PANEL_SERVICE
    """The name the panel's own watcher reports in the status directory."""
    admin_history_retention: int = Field(default=100, ge=2, le=100_000)
    admin_wait_max_ms: int = Field(default=10_000, ge=0, le=600_000)
    """The cap on ``?wait_ms=``."""
    admin_header_timeout: float = Field(default=10.0, gt=0, le=300)
    """Seconds a client has to send a request's line and headers (on a new or kept-alive connection)."""
    admin_body_timeout: float = Field(default=30.0, gt=0, le=3600)
    """Seconds a client has to send a request's body (which is at most the route's size cap)."""
    admin_max_connections: int = Field(default=512, ge=8, le=100_000)
    """Open connections at most (lowered to fit ``RLIMIT_NOFILE``); beyond it the one waiting longest for its
    headers is dropped."""
    admin_expected_consumers: str = f"{BOT_SERVICE},{PANEL_SERVICE}"
    """The services the status page expects (comma-separated): one not running is shown as missing."""

    @property
    def expected_consumers(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(n.strip() for n in self.admin_expected_consumers.split(",") if n.strip()))

    @property
    def token_file(self) -> Path:
        return self.admin_token_file if self.admin_token_file is not None else self.state_dir / "admin-token"

    @property
    def history_path(self) -> Path:
        return self.state_dir / "history.sqlite3"
