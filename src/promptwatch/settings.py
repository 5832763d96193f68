"""Settings shared by every process of the stack, from the environment and ``.env`` (pydantic-settings).

Everything two processes must agree on is declared here once: the prompts file, the state directory
(``STATE_DIR``, else systemd's ``STATE_DIRECTORY``, else ``var/``), the call log and the status
directory derived from it, the knowledge base and its size limit, the document size limit.  The admin
panel (:class:`adminapi.settings.AdminSettings`) and the bot (:class:`stasis.settings.StasisSettings`)
subclass :class:`PromptsSettings`, so one ``.env`` (or systemd ``EnvironmentFile=``) configures the
whole stack and every process resolves the same paths.

:meth:`PromptsSettings.load` reads the environment and the env files of :func:`env_files`:
``$PROMPTWATCH_ENV_FILE`` when set, else ``var/.env`` (written by ``make run``) and ``.env`` in the
working directory, the latter winning.  Constructing a settings class directly reads no file.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path
from typing import Any, Self
from urllib.parse import urlsplit

from pydantic import Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from .errors import DocumentError, StartupError, UnsafeFileError
from .kbrules import KB_MAX_BYTES, is_kb_document
from .safeio import read_file
from .schema import MAX_DOCUMENT_BYTES, parse_document
from .status import default_status_dir
from .watch import WatchMode

__all__ = [
    "BOT_SERVICE",
    "MIN_RELOAD_INTERVAL_MS",
    "PANEL_SERVICE",
    "REDIS_SCHEMES",
    "RUN_ENV_FILE",
    "SYNC_SERVICE",
    "WATCH_SERVICE",
    "PromptsSettings",
    "check_interval_ms",
    "default_state_dir",
    "directory_problem",
    "settings_error",
    "env_files",
]

BOT_SERVICE = "metrotech-bot"
"""The name the bot (``stasis run``) reports in the status directory and its log lines."""
PANEL_SERVICE = "adminapi"
"""The name the admin panel's own watcher reports."""
WATCH_SERVICE = "promptwatch-watch"
"""The name ``promptwatch watch`` reports."""
SYNC_SERVICE = "metrotech-sync"
"""The name of the Redis agent (``promptwatch sync``) in its log lines and the systemd unit."""

MIN_RELOAD_INTERVAL_MS = 10
"""The shortest poll interval: below it a poller would spin a core."""
MAX_RELOAD_INTERVAL_MS = 3_600_000

REDIS_SCHEMES = ("redis", "rediss", "unix", "redis+sentinel", "rediss+sentinel")


RUN_ENV_FILE = Path("var/.env")
"""The env file ``make run`` writes, so commands run from the repository root see its stack."""


def env_files() -> tuple[Path, ...]:
    """The env files :meth:`PromptsSettings.load` reads, lowest precedence first."""
    if explicit := os.environ.get("PROMPTWATCH_ENV_FILE"):
        return (Path(explicit),)
    return (RUN_ENV_FILE, Path(".env"))


def check_interval_ms(value: int) -> int:
    """A poll interval in ms, or ValueError: the one rule for ``PROMPTS_RELOAD_INTERVAL_MS`` and ``--interval-ms``."""
    if value < MIN_RELOAD_INTERVAL_MS:
        raise ValueError(f"{value} is below the minimum of {MIN_RELOAD_INTERVAL_MS} ms")
    if value > MAX_RELOAD_INTERVAL_MS:
        raise ValueError(f"{value} is above the maximum of {MAX_RELOAD_INTERVAL_MS} ms")
    return value


def settings_error(e: ValidationError) -> StartupError:
    """One message naming every bad variable: ``invalid settings: ARI_URL: must be an http:// …``."""
    problems = "; ".join(
        f"{'_'.join(str(part) for part in err['loc']).upper() or 'settings'}: "
        + err["msg"].removeprefix("Value error, ")
        for err in e.errors(include_url=False)
    )
    return StartupError(f"invalid settings: {problems}")


def directory_problem(path: Path, what: str) -> str | None:
    """Why the process could not create files in ``path`` (created on demand if missing), or None."""
    probe = Path(os.path.abspath(path))
    while not probe.exists():
        if probe.parent == probe:
            return f"{what} {path}: no existing parent directory"
        probe = probe.parent
    if not probe.is_dir():
        return f"{what} {path}: {probe} is not a directory"
    if not os.access(probe, os.W_OK | os.X_OK):
        suffix = "" if probe == Path(os.path.abspath(path)) else f" (its parent {probe} would hold it)"
        return f"{what} {path}: not writable by uid {os.getuid()}{suffix}"
    return None


def default_state_dir() -> Path:
    """systemd's ``$STATE_DIRECTORY`` (its first entry) when ``STATE_DIR`` is unset, else ``var/``."""
    if env := os.environ.get("STATE_DIRECTORY"):
        return Path(env.split(":")[0])
    return Path("var")


class PromptsSettings(BaseSettings):
    """The settings every process shares.  ``PROMPTS_RELOAD_INTERVAL_SEC`` (the older name) is accepted too."""

    model_config = SettingsConfigDict(env_file=None, env_file_encoding="utf-8", extra="ignore")

    prompts_path: Path = Path("prompts.json")
    prompts_hot_reload: bool = True
    prompts_watch_mode: WatchMode = WatchMode.AUTO
    prompts_reload_interval_ms: int = 1500
    prompts_reload_interval_sec: float | None = Field(default=None, gt=0, le=3600)
    prompts_safety_interval_ms: int = Field(default=30_000, ge=100)
    prompts_status_dir: Path = Field(default_factory=default_status_dir)
    prompts_max_bytes: int = Field(default=MAX_DOCUMENT_BYTES, ge=64, le=64 * 1024 * 1024)
    """The size limit of a prompts document, for writers and readers alike."""
    kb_dir: Path | None = None
    kb_max_bytes: int = Field(default=KB_MAX_BYTES, ge=1, le=64 * 1024 * 1024)
    """The size limit of one knowledge-base file: the panel refuses bigger uploads, the bot skips them."""
    state_dir: Path = Field(default_factory=default_state_dir)
    """Where the stack keeps its state: the call log, the history, the generated token, sounds."""
    calllog_path: Path = Path("calls.sqlite3")
    """The call log (SQLite): the bot writes it, the panel reads it.  Default ``STATE_DIR/calls.sqlite3``."""

    # Several hosts: Redis distribution (unset URL: one host, everything local)
    prompts_redis_url: str | None = None
    prompts_namespace: str = Field(default="metrotech", pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
    prompts_host: str = Field(default_factory=socket.gethostname, min_length=1, max_length=253)

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

    @field_validator("prompts_reload_interval_ms")
    @classmethod
    def _interval(cls, value: int) -> int:
        return check_interval_ms(value)

    @field_validator("prompts_redis_url")
    @classmethod
    def _redis_url(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        value = value.strip()
        scheme = urlsplit(value).scheme
        if scheme not in REDIS_SCHEMES:
            allowed = ", ".join(f"{s}://" for s in REDIS_SCHEMES)
            raise ValueError(f"must start with one of {allowed}")
        return value

    @model_validator(mode="after")
    def _under_state_dir(self) -> PromptsSettings:
        """Paths left unset live in ``STATE_DIR``, so every process resolves the same ones."""
        if "calllog_path" not in self.model_fields_set:
            self.calllog_path = self.state_dir / "calls.sqlite3"
        return self

    @property
    def reload_interval(self) -> float:
        """The poll interval in seconds."""
        return self.prompts_reload_interval_ms / 1000

    @property
    def knowledge_base_dir(self) -> Path:
        """``KB_DIR``, else ``kb/`` beside the prompts file."""
        return self.kb_dir if self.kb_dir is not None else self.prompts_path.parent / "kb"

    @property
    def prompts_file(self) -> Path:
        """The prompts path made absolute (as consumers report it in their status)."""
        return Path(os.path.abspath(self.prompts_path))

    def problems(self) -> list[str]:
        """What keeps this stack from running, one message per problem naming the path (``config --check``)."""
        found: list[str] = []
        path = self.prompts_file
        try:
            content = read_file(path, limit=self.prompts_max_bytes)  # never blocks, at most the limit + 1 bytes
            parse_document(content.data, source=str(path), limit=self.prompts_max_bytes, size=content.size)
        except UnsafeFileError as e:
            found.append(f"PROMPTS_PATH {e}")
        except FileNotFoundError:
            found.append(f"PROMPTS_PATH {path}: prompts file not found")
        except OSError as e:
            found.append(f"PROMPTS_PATH {path}: cannot read: {e.strerror or e}")
        except DocumentError as e:
            found.append(f"PROMPTS_PATH: {e}")
        kb = self.knowledge_base_dir
        if kb.exists():
            try:
                names = [n for n in os.listdir(kb) if is_kb_document(n)]
            except OSError as e:
                found.append(f"KB_DIR {kb}: cannot list: {e.strerror or e}")
                names = []
            for name in names:
                if not os.access(kb / name, os.R_OK):
                    found.append(f"KB_DIR {kb / name}: not readable by uid {os.getuid()}")
        for what, directory in (("STATE_DIR", self.state_dir), ("PROMPTS_STATUS_DIR", self.prompts_status_dir)):
            if problem := directory_problem(directory, what):
                found.append(problem)
        return found

    @classmethod
    def load(cls, **overrides: Any) -> Self:
        """The settings from the environment and :func:`env_files` (``overrides`` win)."""
        return cls(_env_file=env_files(), **overrides)  # type: ignore[call-arg]
