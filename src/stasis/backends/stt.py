"""Speech-to-text behind one small interface: OpenAI-compatible transcriptions, or none (DTMF only).

:class:`OpenAiStt` posts the caller's recording (the WAV Asterisk stored) to
``{STT_URL}/audio/transcriptions`` as Whisper-compatible servers expect (multipart ``file``,
``model``, ``language``) with a timeout and one retry.
"""

from __future__ import annotations

import asyncio
import logging
import time
from abc import ABC, abstractmethod

import httpx

from ..errors import SttError

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
        self.base_url = base_url.rstrip("/")
        self.name = f"stt {self.base_url}"
        self.model = model
        self.language = language
        self.timeout = timeout
        self.retries = retries
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._client = httpx.AsyncClient(base_url=self.base_url, headers=headers, timeout=httpx.Timeout(timeout))

    async def transcribe(self, wav: bytes) -> str:
        data = {"model": self.model, "response_format": "json"}
        if self.language:
            data["language"] = self.language
        last = "no attempt"
        for attempt in range(self.retries + 1):
            if attempt:
                logger.warning("%s: %s; retrying once", self.name, last)
            started = time.monotonic()
            try:
                async with asyncio.timeout(self.timeout):
                    response = await self._client.post(
                        "/audio/transcriptions", data=data, files={"file": ("utterance.wav", wav, "audio/wav")}
                    )
            except (TimeoutError, httpx.TimeoutException):
                last = f"timed out after {time.monotonic() - started:.1f}s"
                continue
            except httpx.HTTPError as e:
                last = f"{type(e).__name__}: {e}"
                continue
            if response.status_code == 429 or response.status_code >= 500:
                last = f"HTTP {response.status_code}"
                continue
            if response.status_code != 200:
                raise SttError(self.name, f"HTTP {response.status_code}: {response.text[:200]}")
            try:
                text = response.json()["text"]
            except (ValueError, KeyError, TypeError) as e:
                raise SttError(self.name, f"unexpected response ({type(e).__name__}: {e})") from e
            return str(text).strip()
        raise SttError(self.name, f"{last} ({self.retries + 1} attempts)")

    async def aclose(self) -> None:
        await self._client.aclose()
