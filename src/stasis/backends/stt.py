"""Speech-to-text behind one small interface: OpenAI-compatible transcriptions, or none (DTMF only).

:class:`OpenAiStt` posts the caller's recording (the WAV Asterisk stored) to
``{STT_URL}/audio/transcriptions`` as Whisper-compatible servers expect (multipart ``file``,
``model``, ``language``) with a timeout and one retry.
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod

from ..errors import SttError
from .openai import OpenAiEndpoint

__all__ = ["NoStt", "OpenAiStt", "SttBackend"]

logger = logging.getLogger("stasis.stt")


class SttBackend(ABC):
    """One hook: :meth:`transcribe`; raises :class:`SttError` on failure."""

    name: str = "stt"
    enabled: bool = True

    @abstractmethod
    async def transcribe(self, wav: bytes) -> str:
        """The text spoken in ``wav`` ("" for silence)."""

    async def aclose(self) -> None:  # noqa: B027 - optional hook
        """Release connections."""


class NoStt(SttBackend):
    """No speech recognition: the caller answers with DTMF digits."""

    name = "none"
    enabled = False

    async def transcribe(self, wav: bytes) -> str:
        return ""


class OpenAiStt(SttBackend):
    """An OpenAI-compatible ``/audio/transcriptions`` endpoint; ``base_url`` ends in ``/v1``."""

    def __init__(
        self,
        base_url: str,
        *,
        model: str = "whisper-1",
        language: str | None = "ru",
        api_key: str | None = None,
        timeout: float = 8.0,
        retries: int = 1,
    ) -> None:
        self.endpoint = OpenAiEndpoint(
            "stt", base_url, error=SttError, api_key=api_key, timeout=timeout, retries=retries
        )
        self.base_url = self.endpoint.base_url
        self.name = self.endpoint.name
        self.model = model
        self.language = language

    async def transcribe(self, wav: bytes) -> str:
        data = {"model": self.model, "response_format": "json"}
        if self.language:
            data["language"] = self.language
        response = await self.endpoint.post(
            "/audio/transcriptions", data=data, files={"file": ("utterance.wav", wav, "audio/wav")}
        )
        try:
            text = response.json()["text"]
        except (ValueError, KeyError, TypeError) as e:
            raise self.endpoint.unexpected(e) from e
        return str(text).strip()

    async def aclose(self) -> None:
        await self.endpoint.aclose()
