"""A :class:`~stasis.line.Line` on an Asterisk channel: play, record + STT, DTMF, hang up.

Saying a long reply synthesises its sentences concurrently and starts playing the first as soon as
it is ready.  A request on a channel that is gone (404) ends the call quietly (:class:`CallHungUp`).

Asterisk runs a channel's playbacks and recordings one after another: a playback requested while
another plays (or a recording runs) starts only when that one ends.  So a playback's timeout counts
from its PlaybackStarted, and a call cut short first stops what is in progress
(:meth:`AriLine.interrupt`), so that its goodbye starts at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any, TypeVar

from .ari.client import AriClient, Playback, Recording
from .backends.stt import SttBackend
from .backends.tts import Sound, SpeechCache
from .errors import AriError, ChannelGone, SttError, TtsError
from .line import CallHungUp, Heard, Line, Said, split_sentences

__all__ = ["ERROR_SOUND", "AriLine"]

logger = logging.getLogger("stasis.call")

T = TypeVar("T")

ERROR_SOUND = "sound:an-error-has-occurred"
PLAYBACK_MARGIN = 5.0
"""Seconds a playback may run beyond its sound's length, counted from its PlaybackStarted."""
PLAYBACK_START_TIMEOUT = 10.0
"""Seconds a playback may wait for its turn on the channel (PlaybackStarted) before it is given up."""


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
        self._playback: Playback | None = None  # the latest we started: it may still play
        self._recording: Recording | None = None  # the latest recording: it may still run
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

    async def _outcome(self, future: asyncio.Future[T], timeout: float) -> T:
        """The result of an ARI event ``future`` (TimeoutError after ``timeout``; the channel gone:
        :class:`CallHungUp`)."""
        try:
            return await self.guard(asyncio.shield(future), timeout=timeout)
        except ChannelGone as e:
            self.hungup.set()
            raise CallHungUp(self.call_id) from e

    async def play(self, media: str, *, timeout: float, heard_as: str | None = None) -> bool:
        """Play ``media`` to the end; False when Asterisk could not play it (state ``failed``) or it
        did not end in time.  ``timeout`` counts from PlaybackStarted (the playback may have to wait
        for its turn, at most :data:`PLAYBACK_START_TIMEOUT`); then ``heard_as`` joins :attr:`said`."""
        playback = self._playback = self.ari.new_playback(self.call_id, media)  # stoppable from now on
        try:
            await self._rest(self.ari.start(playback))
        except (AriError, CallHungUp):
            self._playback = None  # refused: nothing to stop
            raise
        waiting_for = "start"
        try:
            await self._outcome(playback.started, PLAYBACK_START_TIMEOUT)
            if heard_as is not None:
                self.said.append(heard_as)
            waiting_for = "finish"
            state = await self._outcome(playback.finished, timeout)
        except TimeoutError:
            logger.warning("call=%s playback %s of %s did not %s in time; stopping it",
                           self.call_id, playback.id, media, waiting_for)  # fmt: skip
            await self._stop(playback)
            return False
        except CallHungUp:
            if not playback.finished.done():
                playback.finished.cancel()
            raise
        if state == "failed":
            logger.warning("call=%s playback failed media=%s", self.call_id, media)
            return False
        return True

    async def _stop(self, playback: Playback) -> None:
        try:
            await self.ari.stop(playback)
        except AriError as e:
            logger.warning("call=%s could not stop playback %s: %s", self.call_id, playback.id, e)

    async def _cancel(self, recording: Recording) -> None:
        try:
            await self.ari.cancel_recording(recording)
        except AriError as e:
            logger.warning("call=%s could not cancel recording %s: %s", self.call_id, recording.name, e)

    async def interrupt(self) -> None:
        """Stop the playback in progress (``DELETE /playbacks/{id}``) and cancel a recording in
        progress: Asterisk would play anything requested next only after them."""
        playback, self._playback = self._playback, None
        recording, self._recording = self._recording, None
        if self.hungup.is_set():
            return
        if playback is not None and not playback.finished.done():
            logger.info("call=%s stopping playback %s of %s", self.call_id, playback.id, playback.media)
            await self._stop(playback)
        if recording is not None and not recording.finished.done():
            logger.info("call=%s canceling recording %s", self.call_id, recording.name)
            await self._cancel(recording)

    async def _play_sound(self, sound: Sound, text: str) -> bool:
        return await self.play(sound.media, timeout=sound.duration + PLAYBACK_MARGIN, heard_as=text)

    async def say(self, text: str, *, fallback: str | None = None) -> Said:
        started = time.monotonic()
        self.said = []
        sentences = split_sentences(text) or [text]
        tasks = [asyncio.ensure_future(self.speech.get(s)) for s in sentences]
        tts_ms: float | None = None
        error: str | None = None
        try:
            for sentence, task in zip(sentences, tasks, strict=True):
                try:
                    sound = await self.guard(asyncio.shield(task))
                except TtsError as e:
                    error = str(e)
                    logger.warning("call=%s tts failed: %s", self.call_id, e)
                    await self._say_fallback(fallback if fallback and fallback != text else None)
                    break
                if tts_ms is None:
                    tts_ms = (time.monotonic() - started) * 1000
                await self._play_sound(sound, sentence)
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
                pieces = split_sentences(fallback) or [fallback]
                for piece in pieces:
                    cached = self.speech.cached(piece)
                    sounds.append(cached if cached is not None else await self.guard(self.speech.get(piece)))
            except TtsError as e:
                logger.warning("call=%s tts failed for the fallback too: %s", self.call_id, e)
            else:
                for piece, sound in zip(pieces, sounds, strict=True):
                    await self._play_sound(sound, piece)
                return
        await self.play(ERROR_SOUND, timeout=10)

    async def listen(self) -> Heard:
        digits: list[str] = []
        self._digits = digits
        started = time.monotonic()
        try:
            recording = self._recording = self.ari.new_recording(self.call_id)  # cancelable from now on
            try:
                await self._rest(
                    self.ari.start_recording(
                        recording, max_seconds=self.record_max_seconds, max_silence=self.record_silence_seconds
                    )
                )
            except (AriError, CallHungUp):
                self._recording = None  # refused: nothing to cancel
                raise
            try:
                result = await self._outcome(recording.finished, self.record_max_seconds + PLAYBACK_MARGIN)
            except TimeoutError:
                logger.warning("call=%s recording %s did not finish; canceling it", self.call_id, recording.name)
                await self._cancel(recording)
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
