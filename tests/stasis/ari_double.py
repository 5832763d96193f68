"""A test double of Asterisk 22's ARI: REST + events WebSocket on loopback, scripted like a caller.

Built to ``tests/stasis/data/asterisk-22-call-transcript.jsonl`` and its README (same directory):

- events race ahead of REST answers: ChannelStateChange before the answer's 204, PlaybackStarted
  before the play's 201, ChannelHangupRequest before the hangup's 204;
- channels arrive unanswered (``Ring``) unless placed ``Up``, by :meth:`AriDouble.place_call` or by
  ``POST /ari/channels`` (a Local channel into the dialplan: StasisStart of its ``;2`` leg before the 200);
- what the application asks of a channel (answer, play, record, continue) runs on the channel's control
  queue, one command at a time (:mod:`tests.stasis.ari_control`): a play while another plays answers
  201 ``queued`` and starts (PlaybackStarted) when the first finishes; ``DELETE /ari/playbacks/{id}``
  ends a playing one with PlaybackFinished ``done`` and the next starts; one deleted while queued
  never starts and is reported ``done`` when its turn comes;
- a sound that does not exist (or a ``.wav`` that is not 8 kHz mono 16-bit, a ``.wav16`` that is
  not 16 kHz) plays as PlaybackStarted + PlaybackFinished ``failed``, after a 201;
- ``tone:…`` plays until ``DELETE /ari/playbacks/{id}``;
- recordings: 201 ``queued`` → (an unanswered channel is answered first: ChannelStateChange) →
  RecordingStarted → RecordingFinished (``duration`` in seconds; silence
  gives ``duration: 0`` and a 44-byte WAV); ``DELETE /ari/recordings/live/{name}`` cancels one (nothing
  stored), ``POST …/live/{name}/stop`` ends it early; ``GET …/stored/{name}/file``,
  ``DELETE …/stored/{name}``; with ``recording_dir=False`` (the spool has no ``recording/``) the record
  request answers 500, as Asterisk does;
- the application hangs up (``DELETE /ari/channels/{id}``): ChannelHangupRequest (``cause`` 32, soft),
  whatever ran on the channel finishes, then StasisEnd and no ChannelDestroyed; the caller hangs up:
  ChannelHangupRequest, StasisEnd, ChannelDestroyed;
- 404 ``{"message":"Channel not found"}`` on gone channels; 401 on bad credentials (REST, and the
  WebSocket upgrade refused with HTTP 401); sockets can be dropped and the server restarted (every
  channel is gone then, as after ``core restart now``).

What a recording "hears" is scripted with :meth:`AriDouble.hear`; the text travels inside the WAV
(a RIFF ``utt `` chunk), where :mod:`tests.stasis.fake_openai`'s transcription endpoint finds it.
Durations (playbacks, speech) are multiplied by ``time_scale`` so calls run fast.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import itertools
import os
import re
import time
import wave
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from stasis.audio import silence_wav

from .ari_control import Command, Control, LiveRecording, PlayRecord, first
from .servers import ServerThread

__all__ = ["ASTERISK_ID", "AriDouble", "FakeChannel", "LiveRecording", "PlayRecord", "wait_for"]

ASTERISK_ID = "02:fc:00:00:00:01"
BUILTIN_SOUNDS = {"hello-world": 1.5, "an-error-has-occurred": 1.2, "beep": 0.3, "vm-goodbye": 0.8}
APP_HANGUP_CAUSE = 32
"""The ``cause`` of the ChannelHangupRequest an application's own hangup produces, whatever its
``reason_code`` (recorded: ``DELETE …?reason_code=16`` → cause 32 on the Local channel's leg)."""


def timestamp() -> str:
    now = datetime.now(UTC)
    return now.strftime("%Y-%m-%dT%H:%M:%S.") + f"{now.microsecond // 1000:03d}+0000"


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"message": message}, status)


@dataclass
class FakeChannel:
    id: str
    name: str
    state: str
    caller_number: str
    caller_name: str
    created: str = field(default_factory=timestamp)
    gone: bool = False
    hung_up_by: str | None = None  # "caller" or "app"
    continued_to: tuple[str, str, str] | None = None
    played: list[PlayRecord] = field(default_factory=list)
    heard: deque[str] = field(default_factory=deque)
    recordings: int = 0
    recording: LiveRecording | None = None
    answered: int = 0
    control: Control | None = field(default=None, repr=False)

    def json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "state": self.state,
            "protocol_id": "",
            "caller": {"name": self.caller_name, "number": self.caller_number},
            "connected": {"name": self.caller_name, "number": self.caller_number},
            "accountcode": "",
            "dialplan": {"context": "stasis-in", "exten": "s", "priority": 2, "app_name": "Stasis", "app_data": ""},
            "creationtime": self.created,
            "language": "ru",
        }

    @property
    def media_played(self) -> list[str]:
        return [p.media for p in self.played]


@dataclass
class _Client:
    websocket: WebSocket
    app: str
    queue: asyncio.Queue[bytes | None] = field(default_factory=asyncio.Queue)


class AriDouble:
    """Start with :meth:`start` (or as a context manager); :attr:`url` is the ARI_URL."""

    def __init__(
        self,
        *,
        user: str = "asterisk",
        password: str = "secret",
        time_scale: float = 0.01,
        silence_timeout: float = 5.0,
        speech_seconds: float = 1.0,
        recording_dir: bool = True,
        port: int = 0,
    ) -> None:
        self.user = user
        self.password = password
        self.time_scale = time_scale
        self.silence_timeout = silence_timeout
        self.speech_seconds = speech_seconds
        self.recording_dir = recording_dir
        """Whether ``recording/`` exists in Asterisk's spool directory (without it ``record`` answers 500)."""
        self.answer_delay = 0.0
        """Seconds each REST answer is held back after the request took effect (a loaded Asterisk)."""
        self.channels: dict[str, FakeChannel] = {}
        self.stored: dict[str, bytes] = {}
        self.requests: list[tuple[str, str, dict[str, str], int]] = []
        self.broken: set[str] = set()
        """Channel ids whose requests all answer 500 (an Asterisk-side failure on one call)."""
        self.events: list[dict[str, Any]] = []
        self.ws_connects = 0
        self.marks: list[tuple[float, str, str]] = []
        """(monotonic time, what, channel id): ``heard`` when a recording with speech finished,
        ``play`` when a play request arrived — for measuring turn latency."""
        self.ws_rejected = 0
        self._clients: list[_Client] = []
        self._ids = itertools.count(1)
        self._epoch = int(time.time())
        self._playbacks: dict[str, tuple[FakeChannel, PlayRecord]] = {}
        self._live: dict[str, LiveRecording] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        app = Starlette(
            routes=[
                Route("/ari/{path:path}", self._rest, methods=["GET", "POST", "DELETE", "PUT"]),
                WebSocketRoute("/ari/events", self._events),
            ]
        )
        self.server = ServerThread(app, port=port)
        self.server.before_stop = self._before_stop

    # -- lifecycle

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.port}"

    def start(self) -> AriDouble:
        self.server.start()
        return self

    def stop(self) -> None:
        self.server.stop()

    def restart(self) -> None:
        """Asterisk restarts: every socket drops and every channel is gone, then the same port answers again."""
        self.server.stop()
        self.server.start()

    def __enter__(self) -> AriDouble:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def connected_clients(self) -> int:
        return len(self._clients)

    @property
    def busy(self) -> bool:
        """Something is still under way: a hangup, or a command running or queued on a channel."""
        controls = [c.control for c in list(self.channels.values()) if c.control is not None]
        return bool(self._tasks) or any(not c.idle and not c.task.done() for c in controls)

    async def _before_stop(self) -> None:
        """Asterisk goes away: sockets close, channels and what runs on them vanish without events."""
        await self._close_clients()
        for channel in self.channels.values():
            channel.gone = True
            if channel.control is not None:
                channel.control.cancel()
        tasks = [c.control.task for c in self.channels.values() if c.control is not None] + list(self._tasks)
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=5)
        self._playbacks.clear()
        self._live.clear()

    # -- the caller's side (thread-safe: each runs in the double's loop)

    def place_call(self, number: str = "79001234567", name: str = "Иван", *, state: str = "Ring") -> str:
        """A call enters Stasis (StasisStart); returns the channel id."""
        return self.server.call(self._place_call(number, name, state))

    def hear(self, channel_id: str, *texts: str) -> None:
        """What the caller will say to the next recordings: text, "" for silence, or ``dtmf:DIGITS``
        to press keys once the recording has started."""
        self.server.call(self._hear(channel_id, texts))

    def press(self, channel_id: str, digits: str) -> None:
        """The caller presses DTMF ``digits``."""
        self.server.call(self._press(channel_id, digits))

    def hangup(self, channel_id: str) -> None:
        """The caller hangs up."""
        self.server.call(self._hangup(self.channels[channel_id], cause=16, by="caller"))

    def drop_sockets(self) -> None:
        """Every event WebSocket drops (as on an Asterisk restart)."""
        self.server.call(self._close_clients())

    def set_credentials(self, user: str, password: str) -> None:
        self.user, self.password = user, password

    def requests_to(self, method: str, suffix: str) -> list[tuple[str, str, dict[str, str], int]]:
        return [r for r in list(self.requests) if r[0] == method and r[1].endswith(suffix)]

    def playback(self, playback_id: str) -> PlayRecord:
        """A playback by id, on any channel."""
        return next(p for ch in list(self.channels.values()) for p in list(ch.played) if p.id == playback_id)

    # -- internals: events

    def _event(self, kind: str, app: str | None = None, **body: Any) -> dict[str, Any]:
        event = {"type": kind, "timestamp": timestamp(), **body, "asterisk_id": ASTERISK_ID}
        event["application"] = app or "*"
        return event

    async def _emit(self, kind: str, **body: Any) -> None:
        """Send an event to every connected application and wait until it is on the wire."""
        clients = list(self._clients)
        for client in clients:
            event = self._event(kind, client.app, **body)
            self.events.append(event)
            client.queue.put_nowait(orjson.dumps(event))
        if not clients:
            self.events.append(self._event(kind, None, **body))
        for client in clients:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(5):
                    await client.queue.join()

    async def _events(self, websocket: WebSocket) -> None:
        if not self._authorized(websocket.headers.get("authorization"), websocket.query_params.get("api_key")):
            self.ws_rejected += 1
            await websocket.send_denial_response(JSONResponse({"message": "Authentication required"}, 401))
            return
        app = websocket.query_params.get("app", "")
        await websocket.accept()
        client = _Client(websocket, app)
        self._clients.append(client)
        self.ws_connects += 1
        receiver = asyncio.ensure_future(self._drain(websocket))
        try:
            while True:
                getter = asyncio.ensure_future(client.queue.get())
                done, _ = await asyncio.wait({getter, receiver}, return_when=asyncio.FIRST_COMPLETED)
                if getter not in done:
                    getter.cancel()
                    break
                data = getter.result()
                if data is None:
                    client.queue.task_done()
                    break
                try:
                    await websocket.send_text(data.decode())
                finally:
                    client.queue.task_done()
        except (WebSocketDisconnect, RuntimeError, OSError):
            pass
        finally:
            receiver.cancel()
            if client in self._clients:
                self._clients.remove(client)
            while not client.queue.empty():
                client.queue.get_nowait()
                client.queue.task_done()
            with contextlib.suppress(Exception):
                await websocket.close(1011)

    async def _drain(self, websocket: WebSocket) -> None:
        with contextlib.suppress(WebSocketDisconnect, RuntimeError, OSError):
            while True:
                await websocket.receive_text()

    async def _close_clients(self) -> None:
        for client in list(self._clients):
            self._clients.remove(client)
            client.queue.put_nowait(None)

    def _spawn(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # -- internals: channels entering and leaving Stasis

    async def _enter_stasis(self, channel: FakeChannel) -> None:
        self.channels[channel.id] = channel
        channel.control = Control(channel.id)
        await self._emit("StasisStart", args=[], channel=channel.json())

    async def _place_call(self, number: str, name: str, state: str) -> str:
        n = next(self._ids)
        channel = FakeChannel(f"{self._epoch}.{n}", f"Local/s@stasis-in-{n:08x};2", state, number, name)
        await self._enter_stasis(channel)
        return channel.id

    async def _hear(self, channel_id: str, texts: tuple[str, ...]) -> None:
        channel = self.channels[channel_id]
        channel.heard.extend(texts)
        if channel.recording is not None:
            channel.recording.wake.set()

    async def _press(self, channel_id: str, digits: str) -> None:
        channel = self.channels[channel_id]
        for digit in digits:
            await self._emit("ChannelDtmfReceived", digit=digit, duration_ms=100, channel=channel.json())
            rec = channel.recording
            if rec is not None and (rec.terminate_on == "any" or digit in rec.terminate_on):
                rec.end()

    async def _hangup(self, channel: FakeChannel, *, cause: int, by: str) -> None:
        """ChannelHangupRequest; the command running on the channel ends (its final event goes out);
        StasisEnd.  The app's own hangup is not followed by ChannelDestroyed (as recorded); the
        caller's is."""
        if channel.gone:
            return
        channel.gone = True
        channel.hung_up_by = by
        if by == "app":
            await self._emit("ChannelHangupRequest", cause=APP_HANGUP_CAUSE, soft=True, channel=channel.json())
        else:
            await self._emit("ChannelHangupRequest", cause=cause, soft=False, channel=channel.json())
        if channel.control is not None:
            await channel.control.close()
        await self._emit("StasisEnd", channel=channel.json())
        if by != "app":
            await self._emit("ChannelDestroyed", cause=cause, cause_txt="Normal Clearing", channel=channel.json())

    # -- internals: REST

    def _authorized(self, header: str | None, api_key: str | None) -> bool:
        if api_key is not None:
            return api_key == f"{self.user}:{self.password}"
        if not header or not header.startswith("Basic "):
            return False
        try:
            return base64.b64decode(header[6:]).decode() == f"{self.user}:{self.password}"
        except ValueError:
            return False

    async def _rest(self, request: Request) -> Response:
        path = "/" + request.path_params["path"]
        query = dict(request.query_params)
        if not self._authorized(request.headers.get("authorization"), query.get("api_key")):
            response: Response = _error(401, "Authentication required")
        else:
            response = await self._route(request.method, path, query)
        self.requests.append((request.method, path, query, response.status_code))
        if self.answer_delay:
            await asyncio.sleep(self.answer_delay)
        return response

    def _channel(self, channel_id: str) -> FakeChannel | None:
        channel = self.channels.get(channel_id)
        return None if channel is None or channel.gone else channel

    async def _route(self, method: str, path: str, query: dict[str, str]) -> Response:
        parts = path.strip("/").split("/")
        if parts == ["asterisk", "info"] and method == "GET":
            return JSONResponse({"system": {"version": "22.10.1", "entity_id": ASTERISK_ID}})
        if parts == ["channels"] and method == "POST":
            return await self._originate(query)
        if parts[0] == "channels" and len(parts) >= 2:
            if parts[1] in self.broken:
                return _error(500, "Internal Server Error")
            channel = self._channel(parts[1])
            if channel is None:
                return _error(404, "Channel not found")
            return await self._channel_request(method, channel, parts[2] if len(parts) > 2 else "", query)
        if parts[0] == "playbacks" and len(parts) == 2 and method == "DELETE":
            return self._stop_playback(parts[1])
        if parts[:2] == ["recordings", "live"] and len(parts) >= 3:
            return self._live_recording(method, parts[2], parts[3:])
        if parts[:2] == ["recordings", "stored"] and len(parts) >= 3:
            name = parts[2]
            if name not in self.stored:
                return _error(404, "Recording not found")
            if method == "GET" and parts[3:] == ["file"]:
                return Response(self.stored[name], media_type="audio/wav")
            if method == "DELETE" and len(parts) == 3:
                del self.stored[name]
                return Response(status_code=204)
        return _error(404, "Not found")

    async def _channel_request(self, method: str, channel: FakeChannel, action: str, query: dict[str, str]) -> Response:
        if method == "DELETE" and action == "":
            # not a command: a soft hangup interrupts whatever runs on the channel
            self._spawn(self._hangup(channel, cause=int(query.get("reason_code", "16")), by="app"))
            await asyncio.sleep(0)  # ChannelHangupRequest goes out before the 204, as in the transcript
            return Response(status_code=204)
        if method == "POST" and action == "answer":
            return await self._answer(channel)
        if method == "POST" and action == "play":
            return await self._play(channel, query)
        if method == "POST" and action == "record":
            return self._record(channel, query)
        if method == "POST" and action == "continue":
            return self._continue(channel, query)
        return _error(405, "Invalid method")

    def _submit(self, channel: FakeChannel, command: Command) -> None:
        assert channel.control is not None
        channel.control.submit(command)

    async def _answer(self, channel: FakeChannel) -> Response:
        """A command Asterisk waits for (``stasis_app_send_command``): the 204 comes once it ran."""

        async def run() -> None:
            channel.answered += 1
            if channel.state != "Up":
                channel.state = "Up"
                await self._emit("ChannelStateChange", channel=channel.json())

        command = Command("answer", run)
        self._submit(channel, command)
        await command.done.wait()
        if not command.ran:
            return _error(500, "Failed to answer channel")
        return Response(status_code=204)

    def _continue(self, channel: FakeChannel, query: dict[str, str]) -> Response:
        """Queued like the rest; the 204 comes at once, StasisEnd when its turn comes."""
        target = (query.get("context", ""), query.get("extension", ""), query.get("priority", ""))

        async def run() -> None:
            channel.continued_to = target
            channel.gone = True
            assert channel.control is not None
            await channel.control.close()
            await self._emit("StasisEnd", channel=channel.json())

        self._submit(channel, Command("continue", run))
        return Response(status_code=204)

    async def _originate(self, query: dict[str, str]) -> Response:
        """``POST /ari/channels``: a Local channel into the dialplan. The ``;2`` leg runs ``Stasis()``
        unanswered (StasisStart, before the 200); the 200 describes the ``;1`` leg, ``Down``. Only this,
        as recorded, is modelled: no other endpoint technology, no ``app=``."""
        endpoint = query.get("endpoint", "")
        if not endpoint:
            return _error(400, "Endpoint must be specified")
        if not endpoint.startswith("Local/") or "@" not in endpoint or "app" in query:
            return _error(400, "the double originates Local/exten@context only")
        match = re.fullmatch(r'\s*"?([^"<]*?)"?\s*<([^>]*)>\s*', query.get("callerId", ""))
        name, number = match.groups() if match else ("", query.get("callerId", ""))
        n = next(self._ids)
        far = FakeChannel(f"{self._epoch}.{n}", f"{endpoint}-{n:08x};1", "Down", number, name)
        exten, _, context = endpoint[len("Local/") :].partition("@")
        body = {**far.json(), "dialplan": {"context": context, "exten": exten, "priority": 1}}
        body["dialplan"].update(app_name="AppDial2", app_data="(Outgoing Line)")
        near = FakeChannel(f"{self._epoch}.{next(self._ids)}", f"{endpoint}-{n:08x};2", "Ring", number, name)
        await self._enter_stasis(near)  # StasisStart before the 200, as in the transcript
        return JSONResponse(body)

    # -- internals: playbacks

    def _media_duration(self, media: str) -> float | None:
        """Seconds of audio, ``inf`` for a tone, None when Asterisk could not play it."""
        if media.startswith("tone:"):
            return float("inf")
        if not media.startswith("sound:"):
            return None
        name = media[len("sound:") :]
        if not name.startswith("/"):
            return BUILTIN_SOUNDS.get(name)
        for ext, rate in ((".wav16", 16000), (".wav", 8000)):
            candidate = Path(name + ext)
            if candidate.exists():
                try:
                    with wave.open(str(candidate), "rb") as w:
                        ok = (w.getframerate(), w.getnchannels(), w.getsampwidth()) == (rate, 1, 2)
                        seconds = w.getnframes() / w.getframerate()
                except (OSError, wave.Error, EOFError):
                    return None
                return seconds if ok and os.access(candidate, os.R_OK) else None
        return None

    async def _play(self, channel: FakeChannel, query: dict[str, str]) -> Response:
        self.marks.append((time.monotonic(), "play", channel.id))
        media = query.get("media", "")
        pid = query.get("playbackId") or f"pb-{next(self._ids)}"
        record = PlayRecord(pid, media, self._media_duration(media))
        channel.played.append(record)
        self._playbacks[pid] = (channel, record)
        body = {"id": pid, "media_uri": media, "target_uri": f"channel:{channel.id}", "language": "ru"}
        assert channel.control is not None
        starts_now = channel.control.idle and record.seconds is not None
        command = Command(
            "play",
            lambda: self._run_playback(channel, record, body),
            interrupt=record.stop.set,
            drop=lambda: self._forget_playback(pid),
        )
        self._submit(channel, command)
        if starts_now:  # PlaybackStarted before the 201, as in the transcript
            await first(record.started, command.done, timeout=5)
        return JSONResponse({**body, "state": "playing" if record.state == "playing" else "queued"}, 201)

    async def _run_playback(self, channel: FakeChannel, record: PlayRecord, body: dict[str, Any]) -> None:
        try:
            if record.canceled:  # stopped while queued: reported done, never started
                await self._finish_playback(record, body, "done")
                return
            record.state = "playing"
            record.started_at = time.monotonic()
            await self._emit("PlaybackStarted", playback={**body, "state": "playing"})
            record.started.set()
            if record.seconds is None:
                await self._finish_playback(record, body, "failed")
                return
            timeout = None if record.seconds == float("inf") else record.seconds * self.time_scale
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(timeout):
                    await record.stop.wait()
            await self._finish_playback(record, body, "done")
        finally:
            self._forget_playback(record.id)

    async def _finish_playback(self, record: PlayRecord, body: dict[str, Any], state: str) -> None:
        record.state = state
        record.finished_at = time.monotonic()
        await self._emit("PlaybackFinished", playback={**body, "state": state})

    def _forget_playback(self, playback_id: str) -> None:
        self._playbacks.pop(playback_id, None)

    def _stop_playback(self, playback_id: str) -> Response:
        entry = self._playbacks.get(playback_id)
        if entry is None:
            return _error(404, "Playback not found")
        record = entry[1]
        if record.state == "queued":
            record.canceled = True
        elif record.state == "playing":
            record.stopped = True
            record.stop.set()
        return Response(status_code=204)

    # -- internals: recordings

    def _record(self, channel: FakeChannel, query: dict[str, str]) -> Response:
        name = query.get("name", "")
        if not name:
            return _error(400, "Recording name is required")
        if not self.recording_dir:
            # Asterisk cannot create the recording under astspooldir/recording/ (ENOENT): it logs
            # "Unrecognized recording error: No such file or directory" and answers 500
            return _error(500, "Internal Server Error")
        if name in self._live:
            return _error(409, f"Recording '{name}' already exists and can not be overwritten")
        rec = LiveRecording(
            name,
            channel.id,
            query.get("format", "wav"),
            float(query.get("maxDurationSeconds", "0") or 0),
            float(query.get("maxSilenceSeconds", "0") or 0),
            query.get("terminateOn", "none"),
        )
        self._live[name] = rec
        channel.recordings += 1
        body = {"name": name, "format": rec.format, "target_uri": f"channel:{channel.id}"}
        command = Command(
            "record",
            lambda: self._run_recording(channel, rec, body),
            interrupt=rec.wake.set,
            drop=lambda: self._forget_recording(name),
        )
        self._submit(channel, command)
        return JSONResponse({**body, "state": "queued"}, 201)

    def _forget_recording(self, name: str) -> None:
        self._live.pop(name, None)

    def _live_recording(self, method: str, name: str, rest: list[str]) -> Response:
        rec = self._live.get(name)
        if rec is None:
            return _error(404, "Recording not found")
        if method == "DELETE" and not rest:
            rec.end(cancel=True)
            return Response(status_code=204)
        if method == "POST" and rest == ["stop"]:
            rec.end()
            return Response(status_code=204)
        return _error(404, "Not found")

    async def _run_recording(self, channel: FakeChannel, rec: LiveRecording, body: dict[str, Any]) -> None:
        try:
            if channel.state != "Up":  # record_file answers the channel first (ast_auto_answer)
                channel.state = "Up"
                await self._emit("ChannelStateChange", channel=channel.json())
            channel.recording = rec
            rec.state = "recording"
            await self._emit("RecordingStarted", recording={**body, "state": "recording"})
            text = await self._listen(channel, rec)
            if text and text.startswith("dtmf:"):
                await self._press(channel.id, text[len("dtmf:") :])  # the caller keys instead of speaking
                text = None
            seconds = min(self.speech_seconds, rec.max_duration or self.speech_seconds)
            if text and not rec.terminated and not channel.gone:
                rec.wake.clear()
                await first(rec.wake, timeout=seconds * self.time_scale)  # speaking, unless cut short
            if text and not rec.canceled:
                wav = silence_wav(seconds, extra_chunk=(b"utt ", text.encode()))
                duration = max(1, round(seconds))
            else:
                wav = silence_wav(0)
                duration = 0
            channel.recording = None
            if not rec.canceled:  # a canceled recording's file is deleted
                self.stored[rec.name] = wav
            if (text or rec.terminated) and not rec.canceled:
                self.marks.append((time.monotonic(), "heard", channel.id))
            rec.state = "done"
            await self._emit(
                "RecordingFinished",
                recording={
                    **body,
                    "state": "done",
                    "duration": duration,
                    "talking_duration": duration,
                    "silence_duration": 0,
                },
            )
        finally:
            channel.recording = None
            self._forget_recording(rec.name)

    async def _listen(self, channel: FakeChannel, rec: LiveRecording) -> str | None:
        """The caller's next scripted utterance, or None when the recording ends first (silence
        timeout, a terminating key, stop/cancel, hangup)."""
        deadline = time.monotonic() + self.silence_timeout
        while not channel.gone and not rec.terminated:
            if channel.heard:
                return channel.heard.popleft()
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None
            rec.wake.clear()
            await first(rec.wake, timeout=remaining)
        return None


def wait_for(predicate: Callable[[], Any], timeout: float = 10.0, message: str = "") -> Any:
    from tests.util import wait_until

    return wait_until(predicate, timeout=timeout, interval=0.005, message=message)
