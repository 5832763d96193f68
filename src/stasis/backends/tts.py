"""Text-to-speech behind one small interface, cached by text hash in a directory Asterisk reads.

Backends: :class:`EspeakTts` (``espeak-ng``, offline, Russian voice) and :class:`OpenAiTts`
(``POST {TTS_URL}/audio/speech``).  :class:`SpeechCache` converts whatever they produce to what
Asterisk plays (mono 16-bit, 8 kHz ``.wav`` or 16 kHz ``.wav16``) and stores it as
``SOUNDS_DIR/tts-<hash>.<ext>``: the same text is synthesised once, concurrent requests for it share
one synthesis, and files appear atomically (written aside, then renamed).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
import shutil
import tempfile
import time
import wave
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path

from ..audio import convert_wav, extension_for, run_process, wav_info
from ..errors import TtsError
from .openai import OpenAiEndpoint

__all__ = ["EspeakTts", "OpenAiTts", "Sound", "SpeechCache", "TtsBackend"]

logger = logging.getLogger("stasis.tts")

TOUCH_AFTER = 86400.0  # refresh a used file's mtime at most daily, so pruning keeps what is in use
MEMORY_ENTRIES = 4096  # sound → text entries kept in memory


@dataclass(frozen=True, slots=True)
class Sound:
    """A playable file: ``media`` is the ``sound:`` URI (absolute path without extension)."""

    path: Path
    duration: float
    text: str = ""

    @property
    def media(self) -> str:
        return f"sound:{self.path.parent / self.path.name.split('.', 1)[0]}"


class TtsBackend(ABC):
    """One hook: :meth:`synthesize` returns a WAV of any format; raises :class:`TtsError`."""

    name: str = "tts"

    @property
    def cache_key(self) -> str:
        """What, besides the text, makes the audio differ (backend, voice, model)."""
        return self.name

    @abstractmethod
    async def synthesize(self, text: str) -> bytes:
        """WAV bytes speaking ``text``."""

    async def aclose(self) -> None:  # noqa: B027 - optional hook
        """Release connections."""


class EspeakTts(TtsBackend):
    """``espeak-ng -v VOICE -s SPEED`` (Debian package ``espeak-ng``)."""

    def __init__(self, *, voice: str = "ru", speed: int = 160, timeout: float = 10.0) -> None:
        exe = shutil.which("espeak-ng")
        if exe is None:
            raise TtsError("tts espeak-ng", "espeak-ng is not installed (apt-get install espeak-ng)")
        self.exe = exe
        self.voice = voice
        self.speed = speed
        self.timeout = timeout
        self.name = f"tts espeak-ng:{voice}"

    @property
    def cache_key(self) -> str:
        return f"espeak-ng:{self.voice}:{self.speed}"

    async def synthesize(self, text: str) -> bytes:
        with tempfile.TemporaryDirectory(prefix="stasis-espeak-") as tmp:
            out = Path(tmp) / "out.wav"
            args = [self.exe, "-v", self.voice, "-s", str(self.speed), "-w", str(out), "--stdin"]
            try:
                rc, _, err = await run_process(args, text.encode(), timeout=self.timeout)
            except TimeoutError:
                raise TtsError(self.name, f"timed out after {self.timeout:.1f}s") from None
            if rc != 0 or not out.exists():
                raise TtsError(self.name, f"exit {rc}: {err.decode(errors='replace').strip()[:200]}")
            return out.read_bytes()


class OpenAiTts(TtsBackend):
    """An OpenAI-compatible ``/audio/speech`` endpoint asked for WAV; ``base_url`` ends in ``/v1``."""

    def __init__(
        self,
        base_url: str,
        *,
        model: str = "tts-1",
        voice: str = "alloy",
        api_key: str | None = None,
        timeout: float = 10.0,
        retries: int = 1,
    ) -> None:
        self.endpoint = OpenAiEndpoint(
            "tts", base_url, error=TtsError, api_key=api_key, timeout=timeout, retries=retries
        )
        self.base_url = self.endpoint.base_url
        self.name = self.endpoint.name
        self.model = model
        self.voice = voice

    @property
    def cache_key(self) -> str:
        return f"openai:{self.base_url}:{self.model}:{self.voice}"

    async def synthesize(self, text: str) -> bytes:
        body = {"model": self.model, "voice": self.voice, "input": text, "response_format": "wav"}
        response = await self.endpoint.post("/audio/speech", json=body)
        return response.content

    async def aclose(self) -> None:
        await self.endpoint.aclose()


class SpeechCache:
    """Text → :class:`Sound` in ``directory``, synthesised by ``backend`` at most once per text."""

    def __init__(self, backend: TtsBackend, directory: Path, *, rate: int = 8000, concurrency: int = 4) -> None:
        self.backend = backend
        self.directory = Path(os.path.abspath(directory))
        self.rate = rate
        self.extension = extension_for(rate)
        self._semaphore = asyncio.Semaphore(concurrency)
        self._inflight: dict[Path, asyncio.Future[Sound]] = {}
        self._durations: dict[Path, float] = {}
        self.texts: dict[str, str] = {}
        """``sound:`` URI → the text it speaks, for every sound this cache handed out."""

    def path_for(self, text: str) -> Path:
        key = hashlib.sha256(f"{self.backend.cache_key}\0{self.rate}\0{text}".encode()).hexdigest()[:32]
        return self.directory / f"tts-{key}{self.extension}"

    def cached(self, text: str) -> Sound | None:
        """The sound for ``text`` when it is already on disk (its mtime is refreshed daily on use)."""
        path = self.path_for(text)
        duration = self._durations.get(path)
        if duration is not None:
            try:
                mtime = path.stat().st_mtime
            except OSError:
                duration = None
            else:
                if time.time() - mtime > TOUCH_AFTER:
                    with contextlib.suppress(OSError):
                        os.utime(path)
                return self._remember(Sound(path, duration, text))
        try:
            duration = wav_info(path.read_bytes()).duration
        except (OSError, EOFError, wave.Error):
            return None  # not there yet, or damaged: synthesise it again
        self._durations[path] = duration
        return self._remember(Sound(path, duration, text))

    def _remember(self, sound: Sound) -> Sound:
        if sound.media not in self.texts and len(self.texts) >= MEMORY_ENTRIES:
            self.texts.pop(next(iter(self.texts)))
            oldest = next(iter(self._durations), None)
            if oldest is not None:
                del self._durations[oldest]
        self.texts[sound.media] = sound.text
        return sound

    def prune(self, max_age: float) -> int:
        """Delete cached files unused for ``max_age`` seconds (one-off LLM replies); returns how many."""
        cutoff = time.time() - max_age
        removed = 0
        try:
            entries = list(os.scandir(self.directory))
        except FileNotFoundError:
            return 0
        for entry in entries:
            if not entry.name.startswith(("tts-", ".tts-")):
                continue
            try:
                if entry.stat().st_mtime < cutoff:
                    os.unlink(entry.path)
                    removed += 1
            except FileNotFoundError:
                continue
        if removed:
            self._durations.clear()
            logger.info("removed %d unused sound files from %s", removed, self.directory)
        return removed

    async def get(self, text: str) -> Sound:
        """The sound for ``text``, synthesising it when needed (raises :class:`TtsError`)."""
        text = " ".join(text.split())
        if not text:
            raise TtsError(self.backend.name, "nothing to say")
        sound = self.cached(text)
        if sound is not None:
            return sound
        path = self.path_for(text)
        pending = self._inflight.get(path)
        if pending is not None:
            return await asyncio.shield(pending)
        future: asyncio.Future[Sound] = asyncio.get_running_loop().create_future()
        self._inflight[path] = future
        try:
            sound = await self._synthesize(text, path)
        except BaseException as e:
            future.set_exception(e if isinstance(e, Exception) else TtsError(self.backend.name, "cancelled"))
            future.exception()
            raise
        finally:
            self._inflight.pop(path, None)
        future.set_result(sound)
        return sound

    async def _synthesize(self, text: str, path: Path) -> Sound:
        async with self._semaphore:
            raw = await self.backend.synthesize(text)
            try:
                data = await convert_wav(raw, self.rate)
                duration = wav_info(data).duration
            except Exception as e:
                raise TtsError(self.backend.name, f"unusable audio: {e}") from e
        self.directory.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.directory, prefix=".tts-", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
            os.chmod(tmp, 0o644)  # Asterisk runs as another user
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise
        self._durations[path] = duration
        return self._remember(Sound(path, duration, text))

    async def aclose(self) -> None:
        await self.backend.aclose()
