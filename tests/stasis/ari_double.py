"""A test double of Asterisk 22's ARI: REST + events WebSocket on loopback, scripted like a caller.

Built to ``asterisk-22-call-transcript.jsonl`` and its README:

- events race ahead of REST answers: ChannelStateChange before the answer's 204, PlaybackStarted
  before the play's 201, ChannelHangupRequest before the hangup's 204;
- channels arrive unanswered (``Ring``) unless placed ``Up``, by :meth:`AriDouble.place_call` or by
  ``POST /ari/channels`` (a Local channel into the dialplan: StasisStart of its ``;2`` leg before the 200);
- a sound that does not exist (or a ``.wav`` that is not 8 kHz mono 16-bit, a ``.wav16`` that is
  not 16 kHz) plays as PlaybackStarted + PlaybackFinished ``failed``, after a 201;
- ``tone:…`` plays until ``DELETE /ari/playbacks/{id}``;
- recordings: 201 ``queued`` → RecordingStarted → RecordingFinished (``duration`` in seconds; silence
  gives ``duration: 0`` and a 44-byte WAV); ``GET …/stored/{name}/file``, ``DELETE …/stored/{name}``;
- application arguments (``Stasis(app,label=staging)``) in StasisStart ``args`` and the channel's
  ``dialplan.app_data``; channel variables by ``GET …/channels/{id}/variable`` (404
  ``{"message":"Provided variable was not found"}`` when unset);
- 404 ``{"message":"Channel not found"}`` on gone channels; 401 on bad credentials (REST, and the
  WebSocket upgrade refused with HTTP 401); sockets can be dropped and the server restarted.

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

from .servers import ServerThread

ASTERISK_ID = "02:fc:00:00:00:01"
BUILTIN_SOUNDS = {"hello-world": 1.5, "an-error-has-occurred": 1.2, "beep": 0.3, "vm-goodbye": 0.8}


def timestamp() -> str:
    now = datetime.now(UTC)
    return now.strftime("%Y-%m-%dT%H:%M:%S.") + f"{now.microsecond // 1000:03d}+0000"


@dataclass
class PlayRecord:
    id: str
    media: str
    state: str = "playing"  # final: done / failed
    stopped: bool = False


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
    recording: Recording | None = None
    answered: int = 0
    app_data: str = ""
    """What the dialplan passed to ``Stasis()``: ``metrotech,label=staging``."""
    variables: dict[str, str] = field(default_factory=dict)
    """Channel variables the dialplan set (``Set(PROMPTS_LABEL=staging)``)."""

    def json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "state": self.state,
            "protocol_id": "",
            "caller": {"name": self.caller_name, "number": self.caller_number},
            "connected": {"name": self.caller_name, "number": self.caller_number},
            "accountcode": "",
            "dialplan": {
                "context": "stasis-in",
                "exten": "s",
                "priority": 2,
                "app_name": "Stasis",
                "app_data": self.app_data,
            },
            "creationtime": self.created,
            "language": "ru",
        }

    @property
    def media_played(self) -> list[str]:
        return [p.media for p in self.played]


@dataclass
class Recording:
    name: str
    channel: FakeChannel
    max_duration: float
    max_silence: float
    terminate_on: str
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    terminated: bool = False


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
        port: int = 0,
    ) -> None:
        self.user = user
        self.password = password
        self.time_scale = time_scale
        self.silence_timeout = silence_timeout
        self.speech_seconds = speech_seconds
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
        self._playbacks: dict[str, tuple[FakeChannel, PlayRecord, asyncio.Event]] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        app = Starlette(
            routes=[
                Route("/ari/{path:path}", self._rest, methods=["GET", "POST", "DELETE", "PUT"]),
                WebSocketRoute("/ari/events", self._events),
            ]
        )
        self.server = ServerThread(app, port=port)
        self.server.before_stop = self._close_clients

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
        """Asterisk restarts: every socket drops, then the same port answers again."""
        self.server.stop()
        self.server.start()

    def __enter__(self) -> AriDouble:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def connected_clients(self) -> int:
        return len(self._clients)

    # -- the caller's side (thread-safe: each runs in the double's loop)

    def place_call(
        self,
        number: str = "79001234567",
        name: str = "Иван",
        *,
        state: str = "Ring",
        args: tuple[str, ...] = (),
        variables: dict[str, str] | None = None,
    ) -> str:
        """A call enters Stasis (StasisStart); returns the channel id.

        ``args`` are the application arguments after the app name, as in ``Stasis(metrotech,label=staging)``:
        Asterisk sends them as the StasisStart ``args`` list of strings (``["label=staging"]``) and shows the
        whole ``app_data`` in the channel's ``dialplan``.  ``variables`` are channel variables the dialplan
        set before ``Stasis()``, answered by ``GET /ari/channels/{id}/variable?variable=NAME``."""
        return self.server.call(self._place_call(number, name, state, tuple(args), dict(variables or {})))

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

    # -- internals: the caller

    async def _place_call(
        self, number: str, name: str, state: str, args: tuple[str, ...], variables: dict[str, str]
    ) -> str:
        n = next(self._ids)
        channel = FakeChannel(f"{self._epoch}.{n}", f"Local/s@stasis-in-{n:08x};2", state, number, name)
        app = self._clients[0].app if self._clients else "metrotech"
        channel.app_data = ",".join((app, *args))
        channel.variables = variables
        self.channels[channel.id] = channel
        await self._emit("StasisStart", args=list(args), channel=channel.json())
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
                rec.terminated = True
                rec.wake.set()

    async def _hangup(self, channel: FakeChannel, *, cause: int, by: str) -> None:
        if channel.gone:
            return
        channel.gone = True
        channel.hung_up_by = by
        await self._emit("ChannelHangupRequest", cause=cause, soft=by == "app", channel=channel.json())
        for ch, _record, stop in list(self._playbacks.values()):
            if ch is channel:
                stop.set()
        if channel.recording is not None:
            channel.recording.wake.set()
        await asyncio.sleep(0)
        await self._emit("StasisEnd", channel=channel.json())
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
            response: Response = JSONResponse({"message": "Authentication required"}, 401)
        else:
            response = await self._route(request.method, path, query)
        self.requests.append((request.method, path, query, response.status_code))
        return response

    def _channel(self, channel_id: str) -> FakeChannel | None:
        channel = self.channels.get(channel_id)
        return None if channel is None or channel.gone else channel

    async def _route(self, method: str, path: str, query: dict[str, str]) -> Response:
        parts = path.strip("/").split("/")
        not_found = JSONResponse({"message": "Channel not found"}, 404)
        if parts == ["asterisk", "info"] and method == "GET":
            return JSONResponse({"system": {"version": "22.10.1", "entity_id": ASTERISK_ID}})
        if parts == ["channels"] and method == "POST":
            return await self._originate(query)
        if parts[0] == "channels" and len(parts) >= 2 and parts[1] in self.broken:
            return JSONResponse({"message": "Internal Server Error"}, 500)
        if parts[0] == "channels" and len(parts) >= 2:
            channel = self._channel(parts[1])
            if channel is None:
                return not_found
            action = parts[2] if len(parts) > 2 else ""
            if method == "POST" and action == "answer":
                channel.answered += 1
                if channel.state != "Up":
                    channel.state = "Up"
                    await self._emit("ChannelStateChange", channel=channel.json())
                return Response(status_code=204)
            if method == "DELETE" and action == "":
                cause = int(query.get("reason_code", "16"))
                self._spawn(self._hangup(channel, cause=cause, by="app"))
                await asyncio.sleep(0)  # ChannelHangupRequest goes out before the 204, as in the transcript
                return Response(status_code=204)
            if method == "POST" and action == "play":
                return await self._play(channel, query)
            if method == "POST" and action == "record":
                return await self._record(channel, query)
            if method == "GET" and action == "variable":
                return self._variable(channel, query)
            if method == "POST" and action == "continue":
                channel.continued_to = (query.get("context", ""), query.get("extension", ""), query.get("priority", ""))
                channel.gone = True
                self._spawn(self._emit("StasisEnd", channel=channel.json()))
                return Response(status_code=204)
            return JSONResponse({"message": "Invalid method"}, 405)
        if parts[0] == "playbacks" and len(parts) == 2 and method == "DELETE":
            entry = self._playbacks.get(parts[1])
            if entry is None:
                return JSONResponse({"message": "Playback not found"}, 404)
            entry[1].stopped = True
            entry[2].set()
            return Response(status_code=204)
        if parts[:2] == ["recordings", "stored"] and len(parts) >= 3:
            name = parts[2]
            if name not in self.stored:
                return JSONResponse({"message": "Recording not found"}, 404)
            if method == "GET" and parts[3:] == ["file"]:
                return Response(self.stored[name], media_type="audio/wav")
            if method == "DELETE" and len(parts) == 3:
                del self.stored[name]
                return Response(status_code=204)
        return JSONResponse({"message": "Not found"}, 404)

    def _variable(self, channel: FakeChannel, query: dict[str, str]) -> Response:
        """``GET /ari/channels/{id}/variable?variable=NAME`` as Asterisk 22 answers it (``resource_channels.c``):
        400 without a name, 404 ``Provided variable was not found`` when unset, else 200 ``{"value": …}``."""
        name = query.get("variable", "")
        if not name:
            return JSONResponse({"message": "Variable name is required"}, 400)
        if name not in channel.variables:
            return JSONResponse({"message": "Provided variable was not found"}, 404)
        return JSONResponse({"value": channel.variables[name]})

    async def _originate(self, query: dict[str, str]) -> Response:
        """``POST /ari/channels``: a Local channel into the dialplan. The ``;2`` leg runs ``Stasis()``
        unanswered (StasisStart, before the 200); the 200 describes the ``;1`` leg, ``Down``. Only this,
        as recorded, is modelled: no other endpoint technology, no ``app=``."""
        endpoint = query.get("endpoint", "")
        if not endpoint:
            return JSONResponse({"message": "Endpoint must be specified"}, 400)
        if not endpoint.startswith("Local/") or "@" not in endpoint or "app" in query:
            return JSONResponse({"message": "the double originates Local/exten@context only"}, 400)
        match = re.fullmatch(r'\s*"?([^"<]*?)"?\s*<([^>]*)>\s*', query.get("callerId", ""))
        name, number = match.groups() if match else ("", query.get("callerId", ""))
        n = next(self._ids)
        far = FakeChannel(f"{self._epoch}.{n}", f"{endpoint}-{n:08x};1", "Down", number, name)
        exten, _, context = endpoint[len("Local/") :].partition("@")
        body = {**far.json(), "dialplan": {"context": context, "exten": exten, "priority": 1}}
        body["dialplan"].update(app_name="AppDial2", app_data="(Outgoing Line)")
        near = FakeChannel(f"{self._epoch}.{next(self._ids)}", f"{endpoint}-{n:08x};2", "Ring", number, name)
        self.channels[near.id] = near
        await self._emit("StasisStart", args=[], channel=near.json())  # before the 200, as in the transcript
        return JSONResponse(body)

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
        record = PlayRecord(pid, media)
        channel.played.append(record)
        body = {"id": pid, "media_uri": media, "target_uri": f"channel:{channel.id}", "language": "ru"}
        duration = self._media_duration(media)
        if duration is None:
            record.state = "failed"
            self._spawn(self._fail_playback(body))
            return JSONResponse({**body, "state": "queued"}, 201)
        stop = asyncio.Event()
        self._playbacks[pid] = (channel, record, stop)
        await self._emit("PlaybackStarted", playback={**body, "state": "playing"})
        self._spawn(self._run_playback(channel, record, body, duration, stop))
        return JSONResponse({**body, "state": "playing"}, 201)

    async def _fail_playback(self, body: dict[str, Any]) -> None:
        await self._emit("PlaybackStarted", playback={**body, "state": "playing"})
        await self._emit("PlaybackFinished", playback={**body, "state": "failed"})

    async def _run_playback(
        self, channel: FakeChannel, record: PlayRecord, body: dict[str, Any], duration: float, stop: asyncio.Event
    ) -> None:
        timeout = None if duration == float("inf") else duration * self.time_scale
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                await stop.wait()
        self._playbacks.pop(record.id, None)
        record.state = "done"
        await self._emit("PlaybackFinished", playback={**body, "state": "done"})

    async def _record(self, channel: FakeChannel, query: dict[str, str]) -> Response:
        name = query.get("name", "")
        if not name:
            return JSONResponse({"message": "Recording name is required"}, 400)
        rec = Recording(
            name,
            channel,
            float(query.get("maxDurationSeconds", "0") or 0),
            float(query.get("maxSilenceSeconds", "0") or 0),
            query.get("terminateOn", "none"),
        )
        channel.recordings += 1
        channel.recording = rec
        body = {"name": name, "format": query.get("format", "wav"), "target_uri": f"channel:{channel.id}"}
        self._spawn(self._run_recording(rec, body))
        return JSONResponse({**body, "state": "queued"}, 201)

    async def _run_recording(self, rec: Recording, body: dict[str, Any]) -> None:
        channel = rec.channel
        await asyncio.sleep(0)
        await self._emit("RecordingStarted", recording={**body, "state": "recording"})
        text: str | None = None
        deadline = time.monotonic() + self.silence_timeout
        while not channel.gone and not rec.terminated:
            if channel.heard:
                text = channel.heard.popleft()
                break
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            rec.wake.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(remaining):
                    await rec.wake.wait()
        if text and text.startswith("dtmf:"):
            await self._press(channel.id, text[len("dtmf:") :])  # the caller keys instead of speaking
            text = None
        if text:
            seconds = min(self.speech_seconds, rec.max_duration or self.speech_seconds)
            await asyncio.sleep(seconds * self.time_scale)
            wav = silence_wav(seconds, extra_chunk=(b"utt ", text.encode()))
            duration = max(1, round(seconds))
        else:
            wav = silence_wav(0)
            duration = 0
        channel.recording = None
        self.stored[rec.name] = wav
        if text or rec.terminated:
            self.marks.append((time.monotonic(), "heard", channel.id))
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


def wait_for(predicate: Callable[[], Any], timeout: float = 10.0, message: str = "") -> Any:
    from tests.util import wait_until

    return wait_until(predicate, timeout=timeout, interval=0.005, message=message)
