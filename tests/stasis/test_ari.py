"""The ARI client against the double: races, failed playbacks, tones, recordings, 404, 401, reconnects."""

from __future__ import annotations

import asyncio
import io
import wave
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pytest

from promptwatch import write_document
from stasis.ari.client import AriClient
from stasis.ari.events import backoff_delay
from stasis.errors import AriAuthError, ChannelGone
from stasis.settings import StasisSettings

from .ari_double import AriDouble, wait_for
from .conftest import RunningService

Start = Callable[..., RunningService]
Make = Callable[..., StasisSettings]


async def async_wait(predicate: Callable[[], Any], timeout: float = 5.0) -> Any:
    async with asyncio.timeout(timeout):
        while not (value := predicate()):
            await asyncio.sleep(0.005)
    return value


def wav(path: Path, rate: int, seconds: float = 0.2) -> None:
    out = io.BytesIO()
    with wave.open(out, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(b"\0\0" * int(rate * seconds))
    path.write_bytes(out.getvalue())


@pytest.mark.parametrize(
    ("attempt", "low", "high"), [(0, 0.25, 0.5), (1, 0.5, 1.0), (3, 2.0, 4.0), (10, 15.0, 30.0), (100, 15.0, 30.0)]
)
def test_backoff_is_capped_exponential_with_jitter(attempt: int, low: float, high: float) -> None:
    assert backoff_delay(attempt, rng=lambda: 0.0) == low
    assert backoff_delay(attempt, rng=lambda: 1.0) == high


async def test_client_against_the_double(ari: AriDouble, tmp_path: Path) -> None:
    starts: list[dict[str, Any]] = []
    events: list[dict[str, Any]] = []
    client = AriClient(ari.url, "asterisk", "secret", "metrotech", on_stasis_start=starts.append)
    runner = asyncio.ensure_future(client.run())
    try:
        await async_wait(lambda: client.connected)
        ch = await asyncio.to_thread(ari.place_call, "79001234567", "Иван")
        start = await async_wait(lambda: starts and starts[0])
        assert start["channel"]["state"] == "Ring"
        assert start["application"] == "metrotech" and start["asterisk_id"]
        client.listen(ch, events.append)
        await client.rest.answer(ch)
        await async_wait(lambda: any(e["type"] == "ChannelStateChange" for e in events))

        # PlaybackStarted arrives before the 201: the waiter registered first still sees it
        playback = await client.play(ch, "sound:hello-world")
        assert playback.started.done()
        assert await asyncio.wait_for(playback.finished, 5) == "done"

        # a missing sound: 201, then a failed PlaybackFinished
        assert await asyncio.wait_for((await client.play(ch, "sound:does-not-exist")).finished, 5) == "failed"

        # files the service wrote: 8 kHz as .wav plays, 16 kHz needs .wav16, 16 kHz named .wav fails
        wav(tmp_path / "narrow.wav", 8000)
        wav(tmp_path / "wide.wav16", 16000)
        wav(tmp_path / "wrong.wav", 16000)
        for name, state in (("narrow", "done"), ("wide", "done"), ("wrong", "failed")):
            pb = await client.play(ch, f"sound:{tmp_path / name}")
            assert await asyncio.wait_for(pb.finished, 5) == state, name

        # tone:ring never ends by itself
        ring = await client.play(ch, "tone:ring")
        await asyncio.sleep(0.05)
        assert not ring.finished.done()
        await client.stop(ring)
        assert await asyncio.wait_for(ring.finished, 5) == "done"

        # a recording: queued → RecordingStarted → RecordingFinished; stored file GET and DELETE
        await asyncio.to_thread(ari.hear, ch, "Алло")
        rec = await client.record(ch, max_seconds=5, max_silence=2)
        result = await asyncio.wait_for(rec.finished, 5)
        assert result["state"] == "done" and result["duration"] >= 1
        data = await client.rest.stored_recording(rec.name)
        assert data[:4] == b"RIFF"
        await client.rest.delete_stored_recording(rec.name)
        with pytest.raises(ChannelGone):
            await client.rest.stored_recording(rec.name)

        # the caller hangs up: waiters of the channel learn it (the playback ends, or the channel
        # left Stasis first), and requests answer 404
        waiting = await client.play(ch, "tone:ring")
        await asyncio.to_thread(ari.hangup, ch)
        try:
            assert await asyncio.wait_for(waiting.finished, 5) == "done"
        except ChannelGone:
            pass
        with pytest.raises(ChannelGone) as gone:
            await client.rest.answer(ch)
        assert gone.value.status == 404 and gone.value.message == "Channel not found"
        assert [e["type"] for e in events][-3:] == ["ChannelHangupRequest", "StasisEnd", "ChannelDestroyed"]
    finally:
        runner.cancel()
        await asyncio.gather(runner, return_exceptions=True)
        await client.aclose()


async def test_bad_credentials_rest_and_websocket(ari: AriDouble) -> None:
    client = AriClient(ari.url, "asterisk", "wrong", "metrotech", on_stasis_start=lambda e: None)
    try:
        with pytest.raises(AriAuthError) as rest:
            await client.rest.info()
        assert rest.value.status == 401
        with pytest.raises(AriAuthError):
            await asyncio.wait_for(client.run(), 5)
        assert client.events.state == "unauthorized"
        assert ari.ws_rejected == 1
    finally:
        await client.aclose()


def test_service_with_bad_credentials_exits_without_retrying(
    ari: AriDouble, make_settings: Make, start_service: Start
) -> None:
    svc = start_service(make_settings(ari_password="wrong"), wait_ari=False)
    wait_for(lambda: svc.exit_code is not None, message="service exited")
    assert svc.exit_code == 3
    assert ari.ws_rejected == 1


def test_reconnects_after_the_socket_drops(ari: AriDouble, make_settings: Make, start_service: Start) -> None:
    svc = start_service(make_settings())
    assert "ARI connected" in svc.service.status_text()
    ari.drop_sockets()
    wait_for(lambda: ari.ws_connects == 2 and svc.service.ari_state == "connected", message="reconnected")
    ch = ari.place_call()
    ari.hear(ch, "до свидания")
    wait_for(lambda: ari.channels[ch].hung_up_by == "app", message="call handled after reconnect")


def test_keeps_watching_prompts_while_asterisk_is_down(
    ari: AriDouble, make_settings: Make, start_service: Start, prompts_file: Path
) -> None:
    svc = start_service(make_settings())
    ari.stop()
    wait_for(lambda: svc.service.ari_state == "disconnected", message="noticed Asterisk is gone")
    assert "ARI disconnected" in svc.service.status_text()
    data = orjson.loads(prompts_file.read_bytes())
    data["greeting"] = "Пока Asterisk не было, приветствие сменилось."
    sha, _ = write_document(prompts_file, orjson.dumps(data))
    wait_for(lambda: svc.service.prompts and svc.service.prompts.current.sha256 == sha, message="reloaded while down")
    assert svc.service.status_text().startswith(f"prompts {sha[:8]} (")
    ari.start()  # Asterisk is back on the same port
    wait_for(lambda: svc.service.ari_state == "connected", timeout=10, message="reconnected")
    ch = ari.place_call()
    wait_for(lambda: ari.channels[ch].played, message="greeting")
    speech = svc.service.speech
    assert speech is not None
    assert speech.texts[ari.channels[ch].played[0].media].startswith("Пока Asterisk не было")
    ari.hangup(ch)
