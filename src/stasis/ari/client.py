"""The ARI client a call uses: REST + events, with waiters registered *before* each request.

Asterisk may send an event before the REST answer of the request that caused it (PlaybackStarted
before the play's 201).  So the client chooses the ids itself (``playbackId``, recording ``name``),
registers the waiter, then sends the request.  Channel events go to the listener registered for the
channel; a StasisStart for a new channel goes to ``on_stasis_start``.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..errors import AriError, ChannelGone, RecordingUnavailable
from .events import ConnectionState, EventStream
from .rest import AriRest

__all__ = ["AriClient", "Playback", "Recording"]

logger = logging.getLogger("stasis.ari")

EventHandler = Callable[[dict[str, Any]], None]


@dataclass(eq=False)
class Playback:
    """A playback we started; ``finished`` resolves to its final state (``done``, ``failed``…)."""

    id: str
    channel_id: str
    media: str
    started: asyncio.Future[None] = field(default_factory=lambda: asyncio.get_running_loop().create_future())
    finished: asyncio.Future[str] = field(default_factory=lambda: asyncio.get_running_loop().create_future())


@dataclass(eq=False)
class Recording:
    """A recording we started; ``finished`` resolves to the RecordingFinished ``recording`` object."""

    name: str
    channel_id: str
    finished: asyncio.Future[dict[str, Any]] = field(default_factory=lambda: asyncio.get_running_loop().create_future())


def _gone(channel_id: str) -> ChannelGone:
    return ChannelGone("EVENT", f"/channels/{channel_id}", 404, "Channel left Stasis")


class AriClient:
    """REST (:attr:`rest`) and events (:attr:`events`) of one ARI application."""

    def __init__(
        self,
        url: str,
        user: str,
        password: str,
        app: str,
        *,
        on_stasis_start: EventHandler,
        on_state: Callable[[ConnectionState], None] | None = None,
        max_delay: float = 30.0,
        base_delay: float = 0.5,
    ) -> None:
        self.app = app
        self.rest = AriRest(url, user, password)
        ws_url = "ws" + url.rstrip("/").removeprefix("http") + "/ari/events"
        self.events = EventStream(
            ws_url, app, user, password, self._on_event, on_state=on_state, max_delay=max_delay, base_delay=base_delay
        )
        self._on_stasis_start = on_stasis_start
        self._listeners: dict[str, EventHandler] = {}
        self._playbacks: dict[str, Playback] = {}
        self._recordings: dict[str, Recording] = {}
        self._ids = itertools.count(1)
        self._prefix = f"{app}-{os.getpid()}"

    @property
    def connected(self) -> bool:
        return self.events.state == "connected"

    def new_id(self, kind: str) -> str:
        """A name unique to this process: ``APP-PID-KIND-N``."""
        return f"{self._prefix}-{kind}-{next(self._ids)}"

    async def run(self) -> None:
        """Keep the event stream connected (until cancelled, or :class:`AriAuthError`)."""
        await self.events.run()

    def listen(self, channel_id: str, handler: EventHandler) -> None:
        self._listeners[channel_id] = handler

    def unlisten(self, channel_id: str) -> None:
        self._listeners.pop(channel_id, None)
        self._fail_channel(channel_id)

    # -- requests whose outcome arrives as events

    def new_playback(self, channel_id: str, media: str) -> Playback:
        """A playback of ``media``, listened for (its events may come before the REST answer);
        :meth:`start` requests it."""
        playback = Playback(self.new_id("pb"), channel_id, media)
        self._playbacks[playback.id] = playback
        return playback

    async def start(self, playback: Playback) -> None:
        """Ask Asterisk to play ``playback``.  Cancelled while waiting for the answer, it stays
        listened for: the request may have reached Asterisk (and can be stopped by id)."""
        try:
            await self.rest.play(playback.channel_id, playback.media, playback.id)
        except asyncio.CancelledError:
            raise
        except BaseException:
            self._playbacks.pop(playback.id, None)
            raise

    async def play(self, channel_id: str, media: str) -> Playback:
        """Start playing ``media``; the returned :class:`Playback` resolves when it ends."""
        playback = self.new_playback(channel_id, media)
        await self.start(playback)
        return playback

    async def stop(self, playback: Playback) -> None:
        """Stop a playback (``tone:ring`` never ends by itself); already finished is fine."""
        if playback.finished.done():
            return
        try:
            await self.rest.stop_playback(playback.id)
        except ChannelGone:
            pass

    def new_recording(self, channel_id: str) -> Recording:
        """A recording of the caller, listened for; :meth:`start_recording` requests it."""
        recording = Recording(self.new_id("utt"), channel_id)
        self._recordings[recording.name] = recording
        return recording

    async def start_recording(self, recording: Recording, *, max_seconds: int, max_silence: int) -> None:
        """Ask Asterisk to record (``#`` ends it).  A 500 is :class:`RecordingUnavailable`: Asterisk
        answers so when it cannot create the file (its spool directory has no ``recording/``).
        Cancelled while waiting for the answer, it stays listened for (and can be canceled by name)."""
        try:
            await self.rest.record(
                recording.channel_id, recording.name, max_seconds=max_seconds, max_silence=max_silence
            )
        except asyncio.CancelledError:
            raise
        except AriError as e:
            self._recordings.pop(recording.name, None)
            if type(e) is AriError and e.status == 500:
                raise RecordingUnavailable(e.method, e.path, e.status, e.message) from e
            raise
        except BaseException:
            self._recordings.pop(recording.name, None)
            raise

    async def record(self, channel_id: str, *, max_seconds: int, max_silence: int) -> Recording:
        """Start recording the caller; the :class:`Recording` resolves when done."""
        recording = self.new_recording(channel_id)
        await self.start_recording(recording, max_seconds=max_seconds, max_silence=max_silence)
        return recording

    async def cancel_recording(self, recording: Recording) -> None:
        """Stop a recording and discard what it recorded; already finished is fine."""
        if recording.finished.done():
            return
        try:
            await self.rest.cancel_recording(recording.name)
        except ChannelGone:
            pass

    # -- event dispatch

    def _on_event(self, event: dict[str, Any]) -> None:
        kind = event.get("type", "")
        if kind.startswith("Playback"):
            pb = event.get("playback") or {}
            playback = self._playbacks.get(pb.get("id", ""))
            if playback is None:
                return
            if kind == "PlaybackStarted" and not playback.started.done():
                playback.started.set_result(None)
            elif kind == "PlaybackFinished":
                self._playbacks.pop(playback.id, None)
                if not playback.started.done():
                    playback.started.set_result(None)
                if not playback.finished.done():
                    playback.finished.set_result(str(pb.get("state", "done")))
            return
        if kind.startswith("Recording"):
            rec = event.get("recording") or {}
            recording = self._recordings.get(rec.get("name", ""))
            if recording is None:
                return
            if kind in ("RecordingFinished", "RecordingFailed"):
                self._recordings.pop(recording.name, None)
                if not recording.finished.done():
                    recording.finished.set_result(rec)
            return
        channel = event.get("channel")
        channel_id = channel.get("id") if isinstance(channel, dict) else None
        if not channel_id:
            return
        listener = self._listeners.get(channel_id)
        if kind == "StasisStart" and listener is None:
            self._on_stasis_start(event)
            return
        if kind in ("StasisEnd", "ChannelDestroyed"):
            self._fail_channel(channel_id)
        if listener is not None:
            listener(event)

    def _fail_channel(self, channel_id: str) -> None:
        """The channel is gone: whatever waits on its playbacks or recordings learns it now."""
        for pid, playback in list(self._playbacks.items()):
            if playback.channel_id == channel_id:
                del self._playbacks[pid]
                for fut in (playback.started, playback.finished):
                    if not fut.done():
                        fut.set_exception(_gone(channel_id))
                        fut.exception()  # retrieved: nobody may be waiting any more
        for name, recording in list(self._recordings.items()):
            if recording.channel_id == channel_id:
                del self._recordings[name]
                if not recording.finished.done():
                    recording.finished.set_exception(_gone(channel_id))
                    recording.finished.exception()

    async def aclose(self) -> None:
        await self.rest.aclose()
