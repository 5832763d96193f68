"""stasis: the Asterisk ARI call-handling service on hot-reloaded prompts (``stasis run``, ``stasis console``).

The pieces other processes use (the admin panel's playground and knowledge-base pages) are re-exported
here; the service itself is :class:`stasis.service.StasisService`.
"""

from .agent import Agent, Message, Reply, build_agent
from .errors import (
    AriAuthError,
    AriError,
    AriUnavailable,
    BackendError,
    ChannelGone,
    ConfigError,
    LlmError,
    RecordingUnavailable,
    StasisError,
    SttError,
    TtsError,
)
from .kb import KbDocument, KbSnapshot, KnowledgeBase, Passage
from .settings import StasisSettings

__all__ = [
    "Agent",
    "AriAuthError",
    "AriError",
    "AriUnavailable",
    "BackendError",
    "ChannelGone",
    "ConfigError",
    "KbDocument",
    "KbSnapshot",
    "KnowledgeBase",
    "LlmError",
    "Message",
    "Passage",
    "RecordingUnavailable",
    "Reply",
    "StasisError",
    "StasisSettings",
    "SttError",
    "TtsError",
    "build_agent",
]
