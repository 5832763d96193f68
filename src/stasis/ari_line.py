"""A :class:`~stasis.line.Line` on an Asterisk channel: play, record + STT, DTMF, hang up.

Saying a long reply synthesises its sentences concurrently and starts playing the first as soon as
it is ready.  A request on a channel that is gone (404) ends the call quietly (:class:`CallHungUp`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any

from .ari.client import AriClient
from .backends.stt import SttBackend
from .backends.tts import Sound, SpeechCache
from .errors import AriError, ChannelGone, SttError, TtsError
from .line import CallHungUp, Heard, Line, Said, split_sentences

__all__ = ["ERROR_SOUND", "AriLine"]

logger = logging.getLogger("stasis.call")

ERROR_SOUND = "sound:an-error-has-occurred"
PLAYBACK_MARGIN = 5.0


class AriLine(Line):
    """The caller on channel ``channel["id"]`` of ``ari``."""

    def __init__(
        self,
        ari: AriClient,
        channel: dict[str, Any],
        *,
        speech: SpeechCache,
        stt: SttBackend,
        record_max_seconds: int = 15,
        record_silence_seconds: int = 2,
        operator: tuple[str, str, int] | None = None,
    ) -> None:
        super().__init__()
        self.ari = ari
        self.call_id = str(channel["id"])
        self.state = str(channel.get("state", ""))
        caller = channel.get("caller") or {}
        self.caller_number = str(caller.get("number", ""))
        self.caller_name = str(caller.get("name", ""))
        self.speech = speech
        self.stt = stt
        self.record_max_seconds = record_max_seconds
        self.record_silence_seconds = record_silence_seconds
        self.operator = operator
        self._digits: list[str] | None = None
        self._digit_event = asyncio.Event()
        self._background: set[asyncio.Task[None]] = set()
        ari.listen(self.call_id, self._on_event)

    def _on_event(self, event: dict[str, Any]) -> None:
        kind = event.get("type")
        if kind == "ChannelDtmfReceived":
            digit = str(event.get("digit", ""))
            logger.info("call=%s dtmf %s", self.call_id, digit)
            if self._digits is not None:
                self._digits.append(digit)
                self._digit_event.set()
        elif kind == "ChannelStateChange":
            self.state = str((event.get("channel") or {}).get("state", self.state))
        elif kind in ("ChannelHangupRequest", "StasisEnd", "ChannelDestroyed"):
            if not self.hungup.is_set():
                logger.info("call=%s hangup event=%s cause=%s", self.call_id, kind, event.get("cause", ""))
            self.hungup.set()

    async def _rest(self, coro: Any) -> Any:
        try:
            return await self.guard(coro)
        except ChannelGone as e:
            self.hungup.set()
            raise CallHungUp(self.call_id) from e

    async def answer(self) -> bool:
        if self.state == "Up":
            return False
        await self._rest(self.ari.rest.answer(self.call_id))
        self.state = "Up"
        return True

    async def play(self, media: str, *, timeout: float) -> bool:
        """Play ``media`` to the end; False when Asterisk could not play it (state ``failed``)."""
        playback = await self._rest(self.ari.play(self.call_id, media))
        try:
            state = await self.guard(asyncio.shield(playback.finished), timeout=timeout)
        except ChannelGone as e:
            self.hungup.set()
            raise CallHungUp(self.call_id) from e
        except TimeoutError:
            logger.warning("call=%s playback %s of %s did not finish; stopping it", self.call_id, playback.id, media)
            with contextlib.suppress(AriError):
                await self.ari.stop(playback)
            return False
        except CallHungUp:
            if not playback.finished.done():
                playback.finished.cancel()
            raise
        if state == "failed":
            logger.warning("call=%s playback failed media=%s", self.call_id, media)
            return False
        return True

    async def _play_sound(self, sound: Sound) -> bool:
        return await self.play(sound.media, timeout=sound.duration + PLAYBACK_MARGIN)

    async def say(self, text: str, *, fallback: str | None = None) -> Said:
        started = time.monotonic()
        sentences = split_sentences(text) or [text]
        tasks = [asyncio.ensure_future(self.speech.get(s)) for s in sentences]
        tts_ms: float | None = None
        error: str | None = None
        try:
            for task in tasks:
                try:
                    sound = await self.guard(asyncio.shield(task))
                except TtsError as e:
                    error = str(e)
                    logger.warning("call=%s tts failed: %s", self.call_id, e)
                    await self._say_fallback(fallback if fallback and fallback != text else None)
                    break
                if tts_ms is None:
                    tts_ms = (time.monotonic() - started) * 1000
                await self._play_sound(sound)
        finally:
            for task in tasks:
                if not task.done():
                    task.cancel()
                elif not task.cancelled():
                    task.exception()  # retrieved
        return Said(tts_ms, error)

    async def _say_fallback(self, fallback: str | None) -> None:
        if fallback:
            try:
                sounds = []
                for piece in split_sentences(fallback) or [fallback]:
                    cached = self.speech.cached(piece)
                    sounds.append(cached if cached is not None else await self.guard(self.speech.get(piece)))
            except TtsError as e:
                logger.warning("call=%s tts failed for the fallback too: %s", self.call_id, e)
            else:
                for sound in sounds:
                    await self._play_sound(sound)
                return
        await self.play(ERROR_SOUND, timeout=10)

    async def listen(self) -> Heard:
        digits: list[str] = []
        self._digits = digits
        started = time.monotonic()
        try:
            recording = await self._rest(
                self.ari.record(
                    self.call_id, max_seconds=self.record_max_seconds, max_silence=self.record_silence_seconds
                )
            )
            try:
                result = await self.guard(
                    asyncio.shield(recording.finished), timeout=self.record_max_seconds + PLAYBACK_MARGIN
                )
            except ChannelGone as e:
                self.hungup.set()
                raise CallHungUp(self.call_id) from e
            except TimeoutError:
                logger.warning("call=%s recording %s did not finish", self.call_id, recording.name)
                result = {"duration": 0}
        finally:
            self._digits = None
        pressed = "".join(digits)
        heard_audio = bool(result.get("duration")) or bool(result.get("talking_duration"))
        if pressed.replace("#", "") or not heard_audio or not self.stt.enabled:
            self._forget(recording.name)
            return Heard("", pressed)
        try:
            wav = await self._rest(self.ari.rest.stored_recording(recording.name))
            text = await self.guard(self.stt.transcribe(wav))
        except SttError as e:
            logger.warning("call=%s stt failed: %s", self.call_id, e)
            return Heard("", pressed, (time.monotonic() - started) * 1000, str(e))
        finally:
            self._forget(recording.name)
        return Heard(text, pressed, (time.monotonic() - started) * 1000)

    def _forget(self, name: str) -> None:
        """Delete the stored recording in the background (the caller does not wait for it)."""

        async def delete() -> None:
            try:
                await self.ari.rest.delete_stored_recording(name)
            except AriError as e:
                logger.debug("call=%s could not delete recording %s: %s", self.call_id, name, e)

        task = asyncio.ensure_future(delete())
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def transfer(self) -> bool:
        if self.operator is None:
            return False
        context, extension, priority = self.operator
        await self._rest(self.ari.rest.continue_in_dialplan(self.call_id, context, extension, priority))
        logger.info("call=%s transferred to %s,%s,%d", self.call_id, context, extension, priority)
        return True

    async def hangup(self) -> None:
        if not self.hungup.is_set():
            with contextlib.suppress(ChannelGone):
                await self.ari.rest.hangup(self.call_id)
        self.hungup.set()

    async def close(self) -> None:
        """Stop listening to the channel's events; wait for background deletions."""
        self.ari.unlisten(self.call_id)
        if self._background:
            await asyncio.wait(set(self._background), timeout=5)
