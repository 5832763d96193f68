"""Building the agent from the settings: one place, for ``promptwatch sync`` and the tests alike."""

from __future__ import annotations

import os
from pathlib import Path

from pydantic import Field

from ..errors import StartupError
from ..settings import PromptsSettings
from .agent import SyncAgent
from .connect import RedisUrlError, client, parse_url, redact
from .documents import DocumentSet
from .state import SyncState
from .store import SyncStore

__all__ = ["SyncSettings", "open_agent"]


class SyncSettings(PromptsSettings):
    """The core's settings (``STATE_DIR`` keeps the agreed versions) plus the agent's heartbeat."""

    prompts_sync_heartbeat_ms: int = Field(default=5000, ge=100, le=600_000)
    """How often the agent refreshes its host record in Redis; the record expires after three of these."""

    def problems(self) -> list[str]:
        """The core's problems, and a Redis URL the agent could not use (``promptwatch config --check``)."""
        found = super().problems()
        if self.prompts_redis_url:
            try:
                parse_url(self.prompts_redis_url)
            except RedisUrlError as e:
                found.append(str(e))
        return found


def open_agent(settings: SyncSettings, file: Path | None = None) -> SyncAgent:
    """The agent for ``file`` (default ``PROMPTS_PATH``); :class:`StartupError` without a usable URL."""
    if not settings.prompts_redis_url:
        raise StartupError("PROMPTS_REDIS_URL is not set: there is nothing to synchronise with")
    try:
        target = parse_url(settings.prompts_redis_url)
    except RedisUrlError as e:
        raise StartupError(str(e)) from None
    block = 5.0
    main = Path(os.path.abspath(file if file is not None else settings.prompts_path))
    if not main.parent.is_dir():
        raise StartupError(f"{main.parent}: the prompts directory does not exist")
    namespace = settings.prompts_namespace
    return SyncAgent(
        SyncStore(client(target), namespace),
        SyncStore(client(target, block=block), namespace),
        DocumentSet(
            main,
            Path(os.path.abspath(settings.kb_dir or main.parent / "kb")),
            limit=settings.prompts_max_bytes,
            kb_limit=settings.kb_max_bytes,
        ),
        SyncState(settings.state_dir, namespace),
        host=settings.prompts_host,
        status_dir=settings.prompts_status_dir,
        redis_url=redact(settings.prompts_redis_url),
        block=block,
        heartbeat=settings.prompts_sync_heartbeat_ms / 1000,
        safety_interval=settings.prompts_safety_interval_ms / 1000,
        watch_mode=settings.prompts_watch_mode,
    )
