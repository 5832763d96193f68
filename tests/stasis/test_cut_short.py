"""Calls cut short against Asterisk's one-at-a-time playback queue (as the ARI double now models it).

Against a real Asterisk 22, SIGTERM with ``CALL_GRACE_SECONDS=0`` while a reply sentence played left the
goodbye queued behind that sentence, and the goodbye's timeout (counted from the request) cut it off.
These tests replay that case and its neighbours: the shutdown while listening, the caller hanging up
mid-answer, a playback that must wait for its turn, and Asterisk unable to record.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from promptwatch import write_document
from stasis import ari_line
from stasis.ari.client import AriClient
from stasis.ari_line import AriLine
from stasis.backends.stt import NoStt
from stasis.backends.tts import OpenAiTts, SpeechCache
from stasis.calllog import CallDetail, CallLog
from stasis.line import split_sentences
from stasis.settings import StasisSettings

from .ari_control import PlayRecord
from .ari_double import AriDouble, wait_for
from .conftest import RunningService
from .fake_openai import FakeOpenAi

Start = Callable[..., RunningService]
Make = Callable[..., StasisSettings]

# The fake TTS speaks 0.05 s per character, at most 3 s: the first sentence plays 3 s, the goodbye 1.55 s.
LONG_SENTENCE = "Первое предложение ответа очень длинное и звучит целых три секунды, если его не прервать."
REPLY = LONG_SENTENCE + " Второе предложение так и не прозвучит."
GOODBYE = "Спасибо за звонок! До свидания."


def logged(svc: RunningService, call_id: str) -> CallDetail:
    def get() -> CallDetail | None:
        log = CallLog(svc.settings.calllog_path, readonly=True)
        try:
            detail = log.get_call(call_id)
        finally:
            log.close()
        return detail if detail is not None and detail.end_reason is not None else None

    result: CallDetail = wait_for(get, 15, f"call {call_id} logged as ended")
    return result


def playing(svc: RunningService, ari: AriDouble, channel_id: str, text: str) -> PlayRecord | None:
    """The playback of ``text`` on the channel once it has started."""
    speech = svc.service.speech
    assert speech is not None
    for record in list(ari.channels[channel_id].played):
        if speech.texts.get(record.media) == text and record.started_at is not None:
            return record
    return None


def heard_for_a_while(svc: RunningService, ari: AriDouble, channel_id: str, text: str) -> PlayRecord:
    """The playback of ``text`` once it has played 0.5 s (long after the bot learnt it started)."""

    def check() -> PlayRecord | None:
        record = playing(svc, ari, channel_id, text)
        return record if record is not None and time.monotonic() - (record.started_at or 0) > 0.5 else None

    result: PlayRecord = wait_for(check, message=f"{text!r} playing")
    return result


def texts(svc: RunningService, ari: AriDouble, channel_id: str) -> list[str]:
    speech = svc.service.speech
    assert speech is not None
    return [speech.texts.get(p.media, p.media) for p in ari.channels[channel_id].played]


@pytest.fixture
def short_greeting(prompts_file: Path) -> None:
    """A greeting that plays in a moment, so that the tests can run Asterisk's clock at real speed."""
    data = orjson.loads(prompts_file.read_bytes())
    data.update(greeting="Да?", goodbye=GOODBYE)
    write_document(prompts_file, orjson.dumps(data))


@pytest.mark.usefixtures("short_greeting")
def test_shutdown_during_a_long_sentence_stops_it_and_the_goodbye_plays_whole_at_once(
    ari: AriDouble, openai: FakeOpenAi, make_settings: Make, start_service: Start
) -> None:
    ari.time_scale = 1.0  # sounds play for their real length
    ari.speech_seconds = 0.1
    openai.answer = lambda messages: REPLY
    assert split_sentences(REPLY)[0] == LONG_SENTENCE
    svc = start_service(make_settings(llm_url=openai.url, call_grace_seconds=0))
    ch = ari.place_call()
    ari.hear(ch, "Расскажите подробно")
    sentence = heard_for_a_while(svc, ari, ch, LONG_SENTENCE)
    assert sentence.seconds is not None and sentence.seconds >= 2.9

    stopped_at = time.monotonic()
    assert svc.stop() == 0  # what SIGTERM does: the grace period is 0, the call is cancelled at once

    goodbye = playing(svc, ari, ch, GOODBYE)
    assert goodbye is not None, texts(svc, ari, ch)
    # the sentence was stopped (DELETE /playbacks/{id}), so the goodbye started at once, not after it
    assert sentence.stopped and sentence.state == "done"
    assert goodbye.started_at is not None and goodbye.started_at - stopped_at < 1.0
    assert sentence.started_at is not None and goodbye.started_at < sentence.started_at + sentence.seconds
    # … and played whole: not stopped, not cut by a timeout or the hangup
    assert goodbye.state == "done" and not goodbye.stopped
    assert goodbye.seconds is not None and goodbye.played_seconds is not None
    assert goodbye.played_seconds >= goodbye.seconds * ari.time_scale - 0.02
    assert ari.channels[ch].hung_up_by == "app"
    assert texts(svc, ari, ch)[-2:] == [LONG_SENTENCE, GOODBYE]  # the second sentence never played

    # the turn cut short is in the call log: what the caller said, and the answer as far as it was played
    detail = logged(svc, ch)
    assert detail.end_reason == "shutdown" and detail.turn_count == 1
    turn = detail.turns[0]
    assert (turn.caller_text, turn.bot_text) == ("Расскажите подробно", LONG_SENTENCE)
    assert turn.error == "cut short: service stopping" and turn.llm_ms is not None


def test_shutdown_while_listening_cancels_the_recording_before_the_goodbye(
    ari: AriDouble, make_settings: Make, start_service: Start
) -> None:
    ari.silence_timeout = 30  # the caller says nothing: the recording would run on
    svc = start_service(make_settings(call_grace_seconds=0))
    ch = ari.place_call()
    wait_for(lambda: ari.channels[ch].recording is not None, message="the bot listens")
    stopped_at = time.monotonic()
    assert svc.stop() == 0
    assert time.monotonic() - stopped_at < 10
    canceled = [r for r in ari.requests if r[0] == "DELETE" and r[1].startswith("/recordings/live/")]
    assert [status for *_, status in canceled] == [204]
    assert not ari.stored  # canceled: nothing was kept
    detail = logged(svc, ch)
    assert detail.end_reason == "shutdown" and detail.turn_count == 0  # nothing was said: no turn
    assert texts(svc, ari, ch)[-1] == orjson.loads(svc.settings.prompts_path.read_bytes())["goodbye"]


@pytest.mark.usefixtures("short_greeting")
def test_caller_hanging_up_mid_answer_still_logs_the_turn(
    ari: AriDouble, openai: FakeOpenAi, make_settings: Make, start_service: Start
) -> None:
    ari.time_scale = 1.0
    ari.speech_seconds = 0.1
    openai.answer = lambda messages: REPLY
    svc = start_service(make_settings(llm_url=openai.url))
    ch = ari.place_call()
    ari.hear(ch, "Расскажите подробно")
    heard_for_a_while(svc, ari, ch, LONG_SENTENCE)
    ari.hangup(ch)
    detail = logged(svc, ch)
    assert detail.end_reason == "caller_hangup" and detail.turn_count == 1
    turn = detail.turns[0]
    assert (turn.caller_text, turn.bot_text, turn.error) == (
        "Расскажите подробно",
        LONG_SENTENCE,
        "cut short: caller hung up",
    )


def test_record_refused_by_asterisk_ends_the_call_with_a_clear_error(
    ari: AriDouble, make_settings: Make, start_service: Start, prompts_file: Path, caplog: pytest.LogCaptureFixture
) -> None:
    prompts = orjson.loads(prompts_file.read_bytes())
    ari.recording_dir = False  # the spool has no recording/: POST …/record answers 500
    svc = start_service(make_settings())
    ch = ari.place_call()
    detail = logged(svc, ch)
    assert detail.end_reason == "error"
    assert ari.channels[ch].hung_up_by == "app"
    spoken = texts(svc, ari, ch)
    assert spoken[-len(split_sentences(prompts["fallback"])) :] == split_sentences(prompts["fallback"])
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR and f"call={ch}" in r.getMessage()]
    assert len(errors) == 1, errors
    assert "RecordingUnavailable" in errors[0] and "/record → 500" in errors[0]
    assert "recording/ directory exists in its spool directory" in errors[0]
    assert "Traceback" not in caplog.text


# -- one line, against the double directly


@pytest.fixture
def line_on_a_call(ari: AriDouble, openai: FakeOpenAi, tmp_path: Path) -> Iterator[Callable[[], Any]]:
    """``async with`` the factory's result: (client, line, channel id) on an answered call."""
    import contextlib

    @contextlib.asynccontextmanager
    async def open_line() -> Any:
        starts: list[dict[str, Any]] = []
        client = AriClient(ari.url, "asterisk", "secret", "metrotech", on_stasis_start=starts.append)
        runner = asyncio.ensure_future(client.run())
        speech = SpeechCache(OpenAiTts(openai.url), tmp_path / "sounds")
        try:
            async with asyncio.timeout(10):
                while not client.connected:
                    await asyncio.sleep(0.005)
                ch = await asyncio.to_thread(ari.place_call, "79001234567", "Иван", state="Up")
                while not starts:
                    await asyncio.sleep(0.005)
            line = AriLine(client, starts[0]["channel"], speech=speech, stt=NoStt())
            yield client, line, ch
            await line.close()
        finally:
            runner.cancel()
            await asyncio.gather(runner, return_exceptions=True)
            await speech.aclose()
            await client.aclose()

    yield open_line


async def test_a_playback_times_out_from_its_start_not_from_its_request(
    ari: AriDouble, line_on_a_call: Callable[[], Any]
) -> None:
    ari.time_scale = 0.2  # hello-world: 1.5 s → 0.3 s
    async with line_on_a_call() as (client, line, ch):
        # something else plays on the channel first (a tone another party started): ours must wait
        await client.rest.play(ch, "tone:ring", "someone-else")
        task = asyncio.ensure_future(line.play("sound:hello-world", timeout=1.0))
        ours = await asyncio.to_thread(
            wait_for, lambda: len(ari.channels[ch].played) == 2 and ari.channels[ch].played[1]
        )
        # the tone holds the channel for longer than our timeout…
        await asyncio.to_thread(wait_for, lambda: time.monotonic() - ours.requested_at > 1.3)
        assert ours.state == "queued" and not task.done()
        await client.rest.stop_playback("someone-else")
        # … and ours then plays whole: 0.3 s from its PlaybackStarted, well within 1 s of it
        assert await asyncio.wait_for(task, 5) is True
        assert ours.state == "done" and not ours.stopped and not ours.canceled


async def test_a_playback_that_never_gets_its_turn_is_given_up(
    ari: AriDouble, line_on_a_call: Callable[[], Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(ari_line, "PLAYBACK_START_TIMEOUT", 0.3)
    async with line_on_a_call() as (client, line, ch):
        await client.rest.play(ch, "tone:ring", "someone-else")
        assert await asyncio.wait_for(line.play("sound:hello-world", timeout=5), 5) is False
        ours = ari.channels[ch].played[1]
        assert ours.canceled and ours.started_at is None  # DELETE while queued: it will never start
        await client.rest.stop_playback("someone-else")
        await asyncio.to_thread(wait_for, lambda: ours.state == "done", 5)
        assert ours.started_at is None


@pytest.mark.usefixtures("short_greeting")
def test_shutdown_during_the_busy_phrase_stops_it_says_goodbye_and_hangs_up(
    ari: AriDouble, make_settings: Make, start_service: Start
) -> None:
    ari.time_scale = 1.0  # the busy phrase's first sentence plays 1.7 s
    svc = start_service(make_settings(max_calls=1, call_grace_seconds=0))
    first = ari.place_call("111")
    wait_for(lambda: ari.channels[first].recording is not None, timeout=15, message="first call listening")
    busy = ari.place_call("222")
    phrase = "Извините, сейчас все линии заняты."
    record = heard_for_a_while(svc, ari, busy, phrase)
    assert svc.stop() == 0
    assert record.stopped and ari.channels[busy].hung_up_by == "app"
    assert texts(svc, ari, busy) == [phrase, GOODBYE]
    assert logged(svc, busy).end_reason == "shutdown"


async def test_a_playback_cancelled_before_its_answer_can_still_be_stopped(
    ari: AriDouble, line_on_a_call: Callable[[], Any]
) -> None:
    async with line_on_a_call() as (client, line, ch):
        ari.answer_delay = 2.0  # Asterisk has started the tone but is slow to answer the request
        task = asyncio.ensure_future(line.play("tone:ring", timeout=5))
        played = ari.channels[ch].played
        tone = await asyncio.to_thread(wait_for, lambda: played and played[0].state == "playing" and played[0])
        task.cancel()  # the call is cut short while the bot still waits for the 201
        with pytest.raises(asyncio.CancelledError):
            await task
        ari.answer_delay = 0.0
        await line.interrupt()
        assert tone.stopped
        await asyncio.to_thread(wait_for, lambda: tone.state == "done", 5)
