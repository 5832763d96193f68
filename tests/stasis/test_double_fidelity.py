"""The ARI double answers like the real Asterisk 22 of ``data/asterisk-22-call-transcript.jsonl``.

The recorded call is replayed against the double: every REST request (ids mapped to the double's)
must get the same status and a body of the same shape, and the events must come in the same order
with the same keys, including the races where an event arrives before the answer of the request that
caused it.

Events are read by a blocking WebSocket client of our own (the sans-I/O protocol of ``websockets`` on
a plain socket) in the test's thread: after each REST answer, whatever is already in the socket's
receive buffer is read at once. The double puts an event on the wire before it writes the HTTP answer,
and loopback delivers in order, so "received before the answer" is decided without any timing.
"""

from __future__ import annotations

import base64
import re
import select
import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import orjson
import pytest
from websockets.client import ClientProtocol
from websockets.frames import Frame, Opcode
from websockets.http11 import Response
from websockets.protocol import State
from websockets.uri import parse_uri

from .ari_double import AriDouble, wait_for

TRANSCRIPT = Path(__file__).resolve().parent / "data" / "asterisk-22-call-transcript.jsonl"
APP = "testapp"
TIMESTAMP = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}\+0000")
DEADLINE = 5.0

# Values that legitimately differ from the recording and are compared by type only:
# when it happened, the PBX's language setting and the dialplan's Stasis() arguments.
FREE_VALUES = {"timestamp", "creationtime", "language", "app_data"}


def load_transcript() -> list[dict[str, Any]]:
    return [orjson.loads(line) for line in TRANSCRIPT.read_bytes().splitlines() if line.strip()]


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


class EventSocket:
    """``/ari/events`` read synchronously: :meth:`drain` takes only what has already arrived."""

    def __init__(self, base_url: str, authorization: str, app: str = APP) -> None:
        url = f"ws://{urlsplit(base_url).netloc}/ari/events?app={app}&subscribeAll=false"
        self.protocol = ClientProtocol(parse_uri(url))
        self.events: list[dict[str, Any]] = []
        self.response: Response | None = None
        self.sock = socket.create_connection((urlsplit(base_url).hostname, urlsplit(base_url).port), timeout=DEADLINE)
        self.sock.setblocking(False)
        request = self.protocol.connect()
        request.headers["Authorization"] = authorization
        self.protocol.send_request(request)
        self._flush()
        self.wait(lambda: self.response is not None, "the WebSocket handshake")

    @property
    def open(self) -> bool:
        return self.protocol.state is State.OPEN

    def _flush(self) -> None:
        for data in self.protocol.data_to_send():
            if data:
                self.sock.setblocking(True)
                try:
                    self.sock.sendall(data)
                finally:
                    self.sock.setblocking(False)

    def _feed(self, data: bytes) -> None:
        if data:
            self.protocol.receive_data(data)
        else:
            self.protocol.receive_eof()
        for event in self.protocol.events_received():
            if isinstance(event, Response):
                self.response = event
            elif isinstance(event, Frame) and event.opcode is Opcode.TEXT:
                assert event.fin, "the double sends each event in one frame"
                self.events.append(orjson.loads(event.data))
        self._flush()

    def drain(self) -> None:
        """Read everything already in the socket's receive buffer, without waiting."""
        while True:
            try:
                data = self.sock.recv(65536)
            except BlockingIOError:
                return
            self._feed(data)
            if not data:
                return

    def wait(self, predicate: Callable[[], Any], what: str) -> None:
        deadline = time.monotonic() + DEADLINE
        while not predicate():
            remaining = deadline - time.monotonic()
            assert remaining > 0, f"no {what} within {DEADLINE}s; events so far: {[e['type'] for e in self.events]}"
            readable, _, _ = select.select([self.sock], [], [], remaining)
            if readable:
                self.drain()
                if self.protocol.state is State.CLOSED and not predicate():
                    raise AssertionError(f"the WebSocket closed while waiting for {what}")

    def close(self) -> None:
        if self.open:
            self.protocol.send_close(1000)
            self._flush()
            self.wait(lambda: self.protocol.state is State.CLOSED, "close handshake")
        self.sock.close()


def settle(ari: AriDouble, events: EventSocket) -> None:
    """Everything the double set going has run and its events are read: what has not arrived now
    was never sent (an event is on the wire before the double's task that sent it ends)."""
    wait_for(lambda: not ari.busy, timeout=DEADLINE, message="the double's pending work done")
    events.drain()


@pytest.fixture
def transcript() -> list[dict[str, Any]]:
    return load_transcript()


@pytest.fixture
def events(ari: AriDouble) -> Iterator[EventSocket]:
    ws = EventSocket(ari.url, basic(ari.user, ari.password))
    assert ws.open
    wait_for(lambda: ari.connected_clients == 1, timeout=DEADLINE, message="the double sends to the socket")
    try:
        yield ws
    finally:
        ws.close()


@pytest.fixture
def rest(ari: AriDouble) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=ari.url, auth=(ari.user, ari.password), timeout=DEADLINE) as client:
        yield client


class Ids:
    """Recorded ids and channel names → the double's."""

    def __init__(self) -> None:
        self.map: dict[str, str] = {}

    def learn(self, recorded: dict[str, Any], actual: dict[str, Any]) -> None:
        for key in ("id", "name"):
            if isinstance(recorded.get(key), str) and isinstance(actual.get(key), str):
                known = self.map.setdefault(recorded[key], actual[key])
                assert known == actual[key], f"{recorded[key]!r} is {known!r} and {actual[key]!r}"

    def __call__(self, value: Any) -> Any:
        if isinstance(value, str):
            if value.startswith("channel:"):
                return "channel:" + self.map.get(value[len("channel:") :], value[len("channel:") :])
            return self.map.get(value, value)
        return value

    def path(self, path: str) -> str:
        return "/".join(self(part) for part in path.split("/"))


def same_shape(recorded: Any, actual: Any, ids: Ids, where: str) -> None:
    """Same keys and types everywhere; same values too, except ids (mapped) and :data:`FREE_VALUES`."""
    assert type(actual) is type(recorded), f"{where}: {actual!r} is not a {type(recorded).__name__}"
    if isinstance(recorded, dict):
        assert sorted(actual) == sorted(recorded), f"{where}: keys {sorted(actual)} != recorded {sorted(recorded)}"
        for key, value in recorded.items():
            if key in FREE_VALUES:
                assert type(actual[key]) is type(value), f"{where}.{key}: {actual[key]!r} vs recorded {value!r}"
                if key in ("timestamp", "creationtime"):
                    assert TIMESTAMP.fullmatch(actual[key]), f"{where}.{key}: {actual[key]!r}"
            else:
                same_shape(value, actual[key], ids, f"{where}.{key}")
    elif isinstance(recorded, list):
        assert len(actual) == len(recorded), f"{where}: {actual!r} vs recorded {recorded!r}"
        for i, (r, a) in enumerate(zip(recorded, actual, strict=True)):
            same_shape(r, a, ids, f"{where}[{i}]")
    else:
        assert actual == ids(recorded), f"{where}: {actual!r}, recorded {recorded!r}"


def caused_by(event: dict[str, Any], rest: dict[str, Any]) -> bool:
    """Whether ``event`` is the effect of the request ``rest`` (and so may race ahead of its answer)."""
    kind, method, parts = event["type"], rest["method"], rest["path"].strip("/").split("/")
    if method == "POST" and parts == ["ari", "channels"]:
        return kind == "StasisStart"
    if method == "POST" and parts[-1] == "answer":
        return kind == "ChannelStateChange"
    if method == "POST" and parts[-1] == "play":
        return kind.startswith("Playback") and event["playback"]["id"] == rest["query"].get("playbackId")
    if method == "POST" and parts[-1] == "record":
        return kind.startswith("Recording") and event["recording"]["name"] == rest["query"].get("name")
    if method == "DELETE" and parts[:2] == ["ari", "channels"] and len(parts) == 3:
        return kind in ("ChannelHangupRequest", "StasisEnd")
    return False


def ahead_of_answers(transcript: list[dict[str, Any]]) -> dict[int, list[int]]:
    """Line of each REST exchange → the lines of events it caused that were recorded before its answer."""
    ahead: dict[int, list[int]] = {}
    for i, line in enumerate(transcript):
        if line["dir"] == "rest":
            j = i - 1
            while j >= 0 and transcript[j]["dir"] == "event" and caused_by(transcript[j]["event"], line):
                j -= 1
            ahead[i] = list(range(j + 1, i))
    return ahead


def test_the_recorded_call_replays_the_same_against_the_double(
    transcript: list[dict[str, Any]], ari: AriDouble, events: EventSocket, rest: httpx.Client
) -> None:
    ari.speech_seconds = 2.0  # the recorded utterance lasted 2 s
    recorded_events = [line["event"] for line in transcript if line["dir"] == "event"]
    number_of = {i: n for n, i in enumerate(i for i, line in enumerate(transcript) if line["dir"] == "event")}
    ahead = ahead_of_answers(transcript)
    racing = {j for lines in ahead.values() for j in lines}
    assert racing, "the recording shows events ahead of answers"
    ids = Ids()
    stasis_channel = ""
    seen_before_answer: dict[int, int] = {}  # REST line → number of events received before its answer

    for i, line in enumerate(transcript):
        if line["dir"] == "event":
            if i in racing:
                continue  # comes with the request that causes it
            event = line["event"]
            if event["type"] == "ChannelDtmfReceived":  # the far leg keys it
                ari.press(stasis_channel, event["digit"])
            n = number_of[i] + 1
            events.wait(lambda n=n: len(events.events) >= n, f"{event['type']} (event {n} of the recording)")
            continue

        if line["method"] == "POST" and line["path"].endswith("/record"):
            ari.hear(stasis_channel, "Алло")  # what the recording will hear
        query = {key: ids(value) for key, value in line["query"].items()}
        response = rest.request(line["method"], ids.path(line["path"]), params=query)
        events.drain()
        seen_before_answer[i] = len(events.events)
        where = f"{line['method']} {line['path']}"
        assert response.status_code == line["status"], f"{where}: {response.status_code} {response.text}"
        if "body" in line:
            body = response.json()
            ids.learn(line["body"], body)
            same_shape(line["body"], body, ids, where)
        elif "body_bytes" in line:
            assert response.headers["content-type"] == line["content_type"], where
            assert response.content[:4] == b"RIFF" and response.content[8:12] == b"WAVE", where
        else:
            assert response.content == b"", f"{where}: {response.content!r}"
        # the events this request caused that the recording shows ahead of its answer
        if ahead[i]:
            last = number_of[ahead[i][-1]] + 1
            events.wait(lambda last=last: len(events.events) >= last, f"the events of {where}")
            for j in ahead[i]:
                recorded = transcript[j]["event"]
                ids.learn(recorded.get("channel", {}), events.events[number_of[j]].get("channel", {}))
                if recorded["type"] == "StasisStart":
                    stasis_channel = ids(recorded["channel"]["id"])

    events.wait(lambda: len(events.events) >= len(recorded_events), "the rest of the recorded events")
    settle(ari, events)

    # the same types in the same order, and nothing after StasisEnd (no ChannelDestroyed after our hangup)
    types = [e["type"] for e in events.events]
    assert types == [e["type"] for e in recorded_events]
    assert recorded_events[-1]["type"] == "StasisEnd"

    # each event as the real one: top-level keys, asterisk_id/application/timestamp, nested objects
    for n, (recorded, actual) in enumerate(zip(recorded_events, events.events, strict=False)):
        same_shape(recorded, actual, ids, f"event {n + 1} ({recorded['type']})")
        assert actual["application"] == APP and actual["asterisk_id"] == recorded["asterisk_id"]
        assert TIMESTAMP.fullmatch(actual["timestamp"]), actual["timestamp"]

    # the races the README names come out of the double the same way, every time
    for i, lines in ahead.items():
        for j in lines:
            kind = transcript[j]["event"]["type"]
            where = f"{kind} before the answer of {transcript[i]['method']} {transcript[i]['path']}"
            if kind in ("StasisStart", "PlaybackStarted", "ChannelStateChange"):
                assert number_of[j] < seen_before_answer[i], where
    origin = next(i for i, line in enumerate(transcript) if line["dir"] == "rest" and line["path"] == "/ari/channels")
    assert [transcript[j]["event"]["type"] for j in ahead[origin]] == ["StasisStart"]
    plays = [i for i, line in enumerate(transcript) if line["dir"] == "rest" and line["path"].endswith("/play")]
    assert ["PlaybackStarted"] in [[transcript[j]["event"]["type"] for j in ahead[i]] for i in plays]

    # a missing sound: 201 queued, then PlaybackStarted and PlaybackFinished failed
    missing = [e["playback"]["state"] for e in events.events if e.get("playback", {}).get("id") == "missing-1"]
    assert missing == ["playing", "failed"]


def test_requests_on_a_gone_channel_answer_404(
    transcript: list[dict[str, Any]], ari: AriDouble, events: EventSocket, rest: httpx.Client
) -> None:
    gone = transcript[-1]
    assert gone["status"] == 404
    ch = ari.place_call()
    events.wait(lambda: [e["type"] for e in events.events] == ["StasisStart"], "StasisStart")
    assert rest.post(f"/ari/channels/{ch}/answer").status_code == 204
    assert rest.delete(f"/ari/channels/{ch}", params={"reason_code": "16"}).status_code == 204
    events.wait(lambda: "StasisEnd" in [e["type"] for e in events.events], "StasisEnd")
    for method, path, params in (
        ("POST", f"/ari/channels/{ch}/answer", {}),
        ("POST", f"/ari/channels/{ch}/play", {"media": "sound:hello-world", "playbackId": "late-1"}),
        ("POST", f"/ari/channels/{ch}/record", {"name": "late-1", "format": "wav"}),
        ("POST", f"/ari/channels/{ch}/continue", {}),
        ("DELETE", f"/ari/channels/{ch}", {"reason_code": "16"}),
        ("POST", "/ari/channels/1795275311.999/answer", {}),
    ):
        response = rest.request(method, path, params=params)
        assert (response.status_code, response.json()) == (404, gone["body"]), f"{method} {path}"
        assert response.json() == {"message": "Channel not found"}


def test_bad_credentials_are_refused_on_rest_and_on_the_websocket(ari: AriDouble) -> None:
    with httpx.Client(base_url=ari.url, auth=(ari.user, "wrong"), timeout=DEADLINE) as client:
        for method, path in (
            ("GET", "/ari/asterisk/info"),
            ("POST", "/ari/channels"),
            ("GET", "/ari/recordings/stored/x/file"),
        ):
            response = client.request(method, path)
            assert (response.status_code, response.json()) == (401, {"message": "Authentication required"}), path
    with httpx.Client(base_url=ari.url, timeout=DEADLINE) as anonymous:
        response = anonymous.post("/ari/channels/1.1/answer")
        assert (response.status_code, response.json()) == (401, {"message": "Authentication required"})

    ws = EventSocket(ari.url, basic(ari.user, "wrong"))
    try:
        assert ws.response is not None and ws.response.status_code == 401
        assert not ws.open and ws.events == []
        assert ari.ws_rejected == 1 and ari.connected_clients == 0
    finally:
        ws.close()


# What the recording does not show, as README.md (beside the transcript) reports it from the bot's
# own calls against the real Asterisk 22.10.1 and Asterisk's res_stasis_playback/res_stasis_recording.


def media_events(events: EventSocket) -> list[tuple[str, str, str]]:
    """(type, playback id or recording name, state) of every playback and recording event so far."""
    out = []
    for e in events.events:
        item = e.get("playback") or e.get("recording")
        if item is not None:
            out.append((e["type"], item.get("id", item.get("name", "")), item["state"]))
    return out


def up_channel(ari: AriDouble, events: EventSocket) -> str:
    channel = ari.place_call(state="Up")
    events.wait(lambda: any(e["type"] == "StasisStart" for e in events.events), "StasisStart")
    events.events.clear()
    return channel


def play(rest: httpx.Client, channel: str, media: str, playback_id: str) -> httpx.Response:
    response = rest.post(f"/ari/channels/{channel}/play", params={"media": media, "playbackId": playback_id})
    assert response.status_code == 201, response.text
    return response


def test_playbacks_on_a_channel_play_one_after_another(ari: AriDouble, events: EventSocket, rest: httpx.Client) -> None:
    ch = up_channel(ari, events)
    assert play(rest, ch, "tone:ring", "pb-1").json()["state"] == "playing"
    events.drain()
    assert media_events(events) == [("PlaybackStarted", "pb-1", "playing")]  # before the 201
    # a second and third play while the first plays: 201 at once, "queued", and they do not start
    assert play(rest, ch, "tone:ring", "pb-2").json()["state"] == "queued"
    assert play(rest, ch, "sound:hello-world", "pb-3").json()["state"] == "queued"
    assert rest.delete("/ari/playbacks/pb-2").status_code == 204  # stopped while queued: it never starts
    assert [ari.playback(p).state for p in ("pb-1", "pb-2", "pb-3")] == ["playing", "queued", "queued"]
    events.drain()
    assert media_events(events) == [("PlaybackStarted", "pb-1", "playing")]

    # DELETE ends the one playing ("done"); the queued ones follow, in order
    assert rest.delete("/ari/playbacks/pb-1").status_code == 204
    settle(ari, events)
    assert media_events(events) == [
        ("PlaybackStarted", "pb-1", "playing"),
        ("PlaybackFinished", "pb-1", "done"),
        ("PlaybackFinished", "pb-2", "done"),
        ("PlaybackStarted", "pb-3", "playing"),
        ("PlaybackFinished", "pb-3", "done"),
    ]
    first, canceled, third = (ari.playback(p) for p in ("pb-1", "pb-2", "pb-3"))
    assert first.stopped and canceled.canceled and canceled.started_at is None and not third.stopped
    assert third.started_at is not None and first.finished_at is not None and third.started_at >= first.finished_at
    # a finished playback is gone
    response = rest.delete("/ari/playbacks/pb-1")
    assert (response.status_code, response.json()) == (404, {"message": "Playback not found"})


def test_a_missing_sound_behind_a_playback_fails_in_its_turn(
    ari: AriDouble, events: EventSocket, rest: httpx.Client
) -> None:
    ch = up_channel(ari, events)
    play(rest, ch, "tone:ring", "pb-1")
    assert play(rest, ch, "sound:does-not-exist", "pb-2").json()["state"] == "queued"
    assert ari.playback("pb-2").state == "queued"
    assert rest.delete("/ari/playbacks/pb-1").status_code == 204
    settle(ari, events)
    assert media_events(events)[1:] == [
        ("PlaybackFinished", "pb-1", "done"),
        ("PlaybackStarted", "pb-2", "playing"),
        ("PlaybackFinished", "pb-2", "failed"),
    ]


def test_a_recording_waits_for_the_playback_and_can_be_canceled(
    ari: AriDouble, events: EventSocket, rest: httpx.Client
) -> None:
    ch = up_channel(ari, events)
    play(rest, ch, "tone:ring", "pb-1")
    params = {"name": "utt-1", "format": "wav", "maxDurationSeconds": "15", "terminateOn": "#"}
    response = rest.post(f"/ari/channels/{ch}/record", params=params)
    assert (response.status_code, response.json()["state"]) == (201, "queued")
    assert ari.channels[ch].recording is None  # not started: the playback holds the channel
    assert rest.delete("/ari/playbacks/pb-1").status_code == 204
    wait_for(lambda: ari.channels[ch].recording is not None, timeout=DEADLINE, message="recording started")
    assert rest.delete("/ari/recordings/live/utt-1").status_code == 204  # cancel: ended, file discarded
    settle(ari, events)
    assert media_events(events)[1:] == [
        ("PlaybackFinished", "pb-1", "done"),
        ("RecordingStarted", "utt-1", "recording"),
        ("RecordingFinished", "utt-1", "done"),
    ]
    assert rest.get("/ari/recordings/stored/utt-1/file").status_code == 404
    response = rest.delete("/ari/recordings/live/utt-1")
    assert (response.status_code, response.json()) == (404, {"message": "Recording not found"})


def test_recording_an_unanswered_channel_answers_it_first(
    ari: AriDouble, events: EventSocket, rest: httpx.Client
) -> None:
    ch = ari.place_call()  # Ring
    events.wait(lambda: any(e["type"] == "StasisStart" for e in events.events), "StasisStart")
    params = {"name": "utt-1", "format": "wav", "terminateOn": "#"}
    assert rest.post(f"/ari/channels/{ch}/record", params=params).status_code == 201
    events.wait(lambda: any(e["type"] == "RecordingStarted" for e in events.events), "RecordingStarted")
    assert rest.delete("/ari/recordings/live/utt-1").status_code == 204
    settle(ari, events)
    kinds = [e["type"] for e in events.events]
    assert kinds == ["StasisStart", "ChannelStateChange", "RecordingStarted", "RecordingFinished"]
    assert events.events[1]["channel"]["state"] == "Up"


def test_record_answers_500_when_the_spool_has_no_recording_dir(
    ari: AriDouble, events: EventSocket, rest: httpx.Client
) -> None:
    ch = up_channel(ari, events)
    ari.recording_dir = False
    response = rest.post(f"/ari/channels/{ch}/record", params={"name": "utt-1", "format": "wav"})
    assert (response.status_code, response.json()) == (500, {"message": "Internal Server Error"})
    settle(ari, events)
    assert events.events == [] and ari.channels[ch].recordings == 0


def test_hangups_as_asterisk_reports_them(ari: AriDouble, events: EventSocket, rest: httpx.Client) -> None:
    # the application hangs up while a sound plays and another is queued: ChannelHangupRequest (cause 32,
    # soft), the playing one finishes, the queued one never starts, StasisEnd, and no ChannelDestroyed
    ch = up_channel(ari, events)
    play(rest, ch, "tone:ring", "pb-1")
    play(rest, ch, "tone:ring", "pb-2")
    assert rest.delete(f"/ari/channels/{ch}", params={"reason_code": "16"}).status_code == 204
    settle(ari, events)
    summary = [(e["type"], e.get("cause"), e.get("soft"), (e.get("playback") or {}).get("id")) for e in events.events]
    assert summary == [
        ("PlaybackStarted", None, None, "pb-1"),
        ("ChannelHangupRequest", 32, True, None),
        ("PlaybackFinished", None, None, "pb-1"),
        ("StasisEnd", None, None, None),
    ]
    assert ari.playback("pb-2").started_at is None
    assert rest.delete("/ari/playbacks/pb-2").status_code == 404

    # the caller hangs up: the channel is destroyed too
    events.events.clear()
    ch = up_channel(ari, events)
    ari.hangup(ch)
    settle(ari, events)
    assert [e["type"] for e in events.events] == ["ChannelHangupRequest", "StasisEnd", "ChannelDestroyed"]
