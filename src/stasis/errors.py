"""Typed errors of the Stasis service.

Every error names what it is about: the backend and its URL, the ARI request (method, path,
status), the setting.  Library code raises these; only ``stasis.cli.main`` maps them to exit codes.

Hierarchy::

    StasisError
    ├── ConfigError          unusable settings (names the setting)
    ├── BackendError         a speech or language backend failed (names the backend)
    │   ├── LlmError
    │   ├── SttError
    │   └── TtsError
    └── AriError             the Asterisk REST Interface refused or failed a request
        ├── AriAuthError     401: bad ARI_USER / ARI_PASSWORD (fatal, never retried)
        ├── ChannelGone      404 on a channel: the caller hung up (ends that call quietly)
        ├── AriUnavailable   Asterisk cannot be reached (connection refused, timeout)
        └── RecordingUnavailable  500 on record: Asterisk cannot write recordings (spool's recording/ missing)
"""

from __future__ import annotations

__all__ = [
    "AriAuthError",
    "AriError",
    "AriUnavailable",
    "BackendError",
    "ChannelGone",
    "ConfigError",
    "LlmError",
    "RecordingUnavailable",
    "SttError",
    "StasisError",
    "TtsError",
]


class StasisError(Exception):
    """Base class of every error the Stasis service raises."""


class ConfigError(StasisError):
    """A setting cannot be used; the message names it."""


class BackendError(StasisError):
    """A backend (``backend`` names it, e.g. ``llm http://…/v1``) failed or timed out."""

    def __init__(self, backend: str, reason: str) -> None:
        self.backend = backend
        self.reason = reason
        super().__init__(f"{backend}: {reason}")


class LlmError(BackendError):
    """The language model did not answer."""


class SttError(BackendError):
    """Speech-to-text failed."""


class TtsError(BackendError):
    """Text-to-speech failed."""


class AriError(StasisError):
    """An ARI request failed: ``method path`` → ``status`` (0 when there was no answer)."""

    def __init__(self, method: str, path: str, status: int, message: str) -> None:
        self.method = method
        self.path = path
        self.status = status
        self.message = message
        super().__init__(f"ARI {method} {path} → {status}: {message}" if status else f"ARI {method} {path}: {message}")


class AriAuthError(AriError):
    """401: the ARI credentials are wrong.  Retrying cannot help."""


class ChannelGone(AriError):
    """404 on a channel (or its playback/recording): the call is over."""


class AriUnavailable(AriError):
    """Asterisk could not be reached."""


class RecordingUnavailable(AriError):
    """500 on ``POST /channels/{id}/record``: Asterisk cannot create recordings, most often because
    the ``recording/`` directory under its spool directory (``astspooldir``) does not exist."""

    HINT = (
        "Asterisk cannot record: make sure the recording/ directory exists in its spool directory"
        " (astspooldir in asterisk.conf, usually /var/spool/asterisk/recording) and Asterisk can write it"
    )

    def __init__(self, method: str, path: str, status: int, message: str) -> None:
        super().__init__(method, path, status, f"{message}. {self.HINT}")
