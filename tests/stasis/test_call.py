"""Calls through the ARI double: the flow, pinned snapshots, fillers, fallbacks, hangups, limits."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import orjson

from promptwatch import sha256_hex, write_document
from stasis.calllog import CallDetail, CallLog
from stasis.line import split_sentences
from stasis.service import speech_texts
from stasis.settings import StasisSettings

from .ari_double import AriDouble, wait_for
from .conftest import RunningService, needs_espeak
from .fake_openai import FakeOpenAi

Start = Callable[..., RunningService]
Make = Callable[..., StasisSettings]


def heard(svc: RunningService, ari: AriDouble, channel_id: str) -> list[str]:
    """What the caller heard on ``channel_id``, one entry per file played (a phrase is said sentence
    by sentence: compare with :func:`pieces`)."""
    speech = svc.service.speech
    assert speech is not None
    return [speech.texts.get(p.media, p.media) for p in ari.channels[channel_id].played]


def pieces(*phrases: str) -> list[str]:
    """The files saying ``phrases`` are played as."""
    return [piece for text in phrases for piece in split_sentences(text)]


def call_record(svc: RunningService, call_id: str, timeout: float = 15.0) -> CallDetail:
    """The call's row once it has ended."""

    def get() -> CallDetail | None:
        log = CallLog(svc.settings.calllog_path, readonly=True)
        try:
            detail = log.get_call(call_id)
        finally:
            log.close()
        return detail if detail is not None and detail.end_reason is not None else None

    result: CallDetail = wait_for(get, timeout, f"call {call_id} logged as ended")
    return result


def edit(path: Path, **changes: object) -> str:
    data = orjson.loads(path.read_bytes())
    data.update(changes)
    raw = orjson.dumps(data, option=orjson.OPT_INDENT_2)
    sha, _ = write_document(path, raw)
    return sha


@needs_espeak
def test_full_call(ari: AriDouble, make_settings: Make, start_service: Start, prompts_file: Path) -> None:
    svc = start_service(make_settings(tts_backend="espeak"))
    prompts = orjson.loads(prompts_file.read_bytes())
    ch = ari.place_call("79001234567", "Иван")  # arrives unanswered (Ring)
    ari.hear(ch, "Сколько стоит доставка по Москве?", "Спасибо, до свидания")
    detail = call_record(svc, ch)

    assert ari.channels[ch].answered == 1
    assert ari.channels[ch].hung_up_by == "app"
    said = heard(svc, ari, ch)
    greeting, goodbye = pieces(prompts["greeting"]), pieces(prompts["goodbye"])
    assert said[: len(greeting)] == greeting
    assert any("Доставка оборудования по Москве" in s for s in said[len(greeting) : -len(goodbye)])
    assert said[-len(goodbye) :] == goodbye
    assert all(p.state == "done" for p in ari.channels[ch].played)
    assert detail.prompts_sha256 == sha256_hex(prompts_file.read_bytes())
    assert (detail.caller_number, detail.caller_name) == ("79001234567", "Иван")
    assert detail.end_reason == "goodbye"
    assert detail.answered_at is not None and detail.ended_at is not None
    assert [t.caller_text for t in detail.turns] == ["Сколько стоит доставка по Москве?", "Спасибо, до свидания"]
    first = detail.turns[0]
    assert "Доставка оборудования" in first.bot_text
    assert first.stt_ms is not None and first.llm_ms is not None and first.tts_ms is not None
    assert first.error is None
    # the recordings were fetched for STT and deleted afterwards
    wait_for(lambda: not ari.stored, message="stored recordings deleted")
    # every phrase file is what Asterisk plays: 8 kHz mono 16-bit .wav
    assert svc.service.speech is not None
    assert all(p.suffix == ".wav" for p in svc.service.speech.directory.iterdir())


def test_prompt_edit_mid_call_changes_only_the_next_call(
    ari: AriDouble, make_settings: Make, start_service: Start, prompts_file: Path
) -> None:
    svc = start_service(make_settings())
    old = orjson.loads(prompts_file.read_bytes())
    old_sha = sha256_hex(prompts_file.read_bytes())
    ch1 = ari.place_call()
    wait_for(lambda: heard(svc, ari, ch1) == pieces(old["greeting"]), message="first greeting")

    new_sha = edit(prompts_file, greeting="Новое приветствие!", goodbye="Новое прощание.")
    assert svc.service.prompts is not None
    wait_for(lambda: svc.service.prompts and svc.service.prompts.current.sha256 == new_sha, message="reloaded")
    ari.hear(ch1, "до свидания")
    first = call_record(svc, ch1)
    assert heard(svc, ari, ch1) == pieces(old["greeting"], old["goodbye"])
    assert first.prompts_sha256 == old_sha

    ch2 = ari.place_call()
    ari.hear(ch2, "до свидания")
    second = call_record(svc, ch2)
    assert heard(svc, ari, ch2) == pieces("Новое приветствие!", "Новое прощание.")
    assert second.prompts_sha256 == new_sha


def test_knowledge_base_upload_changes_the_offline_answer(
    ari: AriDouble, make_settings: Make, start_service: Start, config_dir: Path
) -> None:
    svc = start_service(make_settings())
    question = "Какой у вас адрес офиса?"
    ch1 = ari.place_call()
    ari.hear(ch1, question, "до свидания")
    before = call_record(svc, ch1).turns[0].bot_text
    assert "Лесная" not in before

    assert svc.service.kb is not None
    old_sha = svc.service.kb.current.sha256
    (config_dir / "kb" / "адрес.md").write_text("# Адрес\n\nНаш адрес офиса: Москва, улица Лесная, дом 5.\n")
    wait_for(lambda: svc.service.kb and svc.service.kb.current.sha256 != old_sha, message="kb reloaded")

    ch2 = ari.place_call()
    ari.hear(ch2, question, "до свидания")
    assert "улица Лесная, дом 5" in call_record(svc, ch2).turns[0].bot_text


def test_filler_while_the_llm_is_slow(
    ari: AriDouble, openai: FakeOpenAi, make_settings: Make, start_service: Start, prompts_file: Path
) -> None:
    fillers = orjson.loads(prompts_file.read_bytes())["fillers"]
    openai.chat.delay = 0.6
    svc = start_service(make_settings(llm_url=openai.url, filler_after_ms=100))
    ch = ari.place_call()
    ari.hear(ch, "Расскажите про тарифы", "до свидания")
    detail = call_record(svc, ch)
    greeting = pieces(orjson.loads(prompts_file.read_bytes())["greeting"])
    said = heard(svc, ari, ch)[len(greeting) :]
    assert said[:2] == [fillers[0], "Ответ на: Расскажите про тарифы"]
    assert detail.turns[0].bot_text == "Ответ на: Расскажите про тарифы"
    assert detail.turns[0].llm_ms is not None and detail.turns[0].llm_ms >= 500
    # the model saw the system prompt with the knowledge-base passages, then the caller
    messages = openai.chat.requests[0]["messages"]
    assert messages[0]["role"] == "system" and "Тариф «Базовый»" in messages[0]["content"]
    assert messages[-1] == {"role": "user", "content": "Расскажите про тарифы"}


def test_no_filler_when_the_reply_is_quick(
    ari: AriDouble, openai: FakeOpenAi, make_settings: Make, start_service: Start, prompts_file: Path
) -> None:
    fillers = orjson.loads(prompts_file.read_bytes())["fillers"]
    svc = start_service(make_settings(llm_url=openai.url, filler_after_ms=1000))
    ch = ari.place_call()
    ari.hear(ch, "Привет", "до свидания")
    call_record(svc, ch)
    assert not set(fillers) & set(heard(svc, ari, ch))


def test_llm_timeout_speaks_the_fallback(
    ari: AriDouble, openai: FakeOpenAi, make_settings: Make, start_service: Start, prompts_file: Path
) -> None:
    prompts = orjson.loads(prompts_file.read_bytes())
    fallback = prompts["fallback"]
    openai.chat.fail = "hang"
    svc = start_service(make_settings(llm_url=openai.url, llm_timeout_seconds=0.3, filler_after_ms=5000))
    ch = ari.place_call()
    ari.hear(ch, "Что-нибудь", "до свидания")
    detail = call_record(svc, ch)
    assert heard(svc, ari, ch) == pieces(prompts["greeting"], fallback, prompts["goodbye"])
    assert openai.chat.calls == 2  # one retry
    turn = detail.turns[0]
    assert turn.bot_text == fallback
    assert turn.error is not None and "timed out" in turn.error


def test_stt_failure_speaks_the_fallback(
    ari: AriDouble, openai: FakeOpenAi, make_settings: Make, start_service: Start, prompts_file: Path
) -> None:
    prompts = orjson.loads(prompts_file.read_bytes())
    openai.stt.fail = 500
    openai.stt.fail_times = 2  # the first utterance (and its retry) fail
    svc = start_service(make_settings())
    ch = ari.place_call()
    ari.hear(ch, "Неразборчиво", "до свидания")
    detail = call_record(svc, ch)
    assert heard(svc, ari, ch) == pieces(prompts["greeting"], prompts["fallback"], prompts["goodbye"])
    assert detail.end_reason == "goodbye"
    assert detail.turns[0].error is not None and "HTTP 500" in detail.turns[0].error


def test_tts_failure_speaks_the_presynthesised_fallback(
    ari: AriDouble, openai: FakeOpenAi, make_settings: Make, start_service: Start, prompts_file: Path
) -> None:
    prompts = orjson.loads(prompts_file.read_bytes())
    svc = start_service(make_settings())
    speech = svc.service.speech
    assert speech is not None
    wait_for(lambda: all(speech.cached(p) for p in pieces(prompts["fallback"])), message="fallback pre-synthesised")
    openai.tts.fail = 503
    ch = ari.place_call()
    ari.hear(ch, "Сколько стоит доставка", "до свидания")
    detail = call_record(svc, ch)
    assert heard(svc, ari, ch) == pieces(prompts["greeting"], prompts["fallback"], prompts["goodbye"])
    assert detail.turns[0].error is not None and "HTTP 503" in detail.turns[0].error


def test_caller_hangs_up_during_playback(ari: AriDouble, make_settings: Make, start_service: Start) -> None:
    ari.time_scale = 1.0  # the greeting plays for real seconds
    svc = start_service(make_settings())
    ch = ari.place_call()
    wait_for(lambda: ari.channels[ch].played, message="greeting playing")
    ari.hangup(ch)
    detail = call_record(svc, ch, timeout=5)
    assert detail.end_reason == "caller_hangup"
    assert ari.channels[ch].hung_up_by == "caller"
    assert len(ari.channels[ch].played) == 1
    assert ari.channels[ch].recordings == 0
    # no request on the gone channel (the PROMPTS_LABEL lookup's 404 is Asterisk's answer for an unset variable)
    assert not [r for r in ari.requests if ch in r[1] and r[3] == 404 and not r[1].endswith("/variable")]


def test_request_on_a_gone_channel_ends_the_call_quietly(
    ari: AriDouble, make_settings: Make, start_service: Start
) -> None:
    svc = start_service(make_settings())
    ch = ari.place_call()
    wait_for(lambda: ari.channels[ch].recordings, message="listening")
    ari.channels[ch].gone = True  # hung up, but the events were lost
    ari.hear(ch, "Сколько стоит доставка")
    detail = call_record(svc, ch)
    assert detail.end_reason == "caller_hangup"
    assert [r for r in ari.requests if ch in r[1] and r[3] == 404]
    # the service goes on taking calls
    ch2 = ari.place_call()
    ari.hear(ch2, "до свидания")
    assert call_record(svc, ch2).end_reason == "goodbye"


def test_max_calls_busy_phrase(ari: AriDouble, make_settings: Make, start_service: Start) -> None:
    svc = start_service(make_settings(max_calls=1))
    ch1 = ari.place_call("111")
    wait_for(lambda: ari.channels[ch1].recordings, message="first call listening")
    ch2 = ari.place_call("222")
    busy = call_record(svc, ch2)
    assert busy.end_reason == "busy"
    assert ari.channels[ch2].hung_up_by == "app"
    assert heard(svc, ari, ch2) == pieces("Извините, сейчас все линии заняты. Пожалуйста, перезвоните позже.")
    assert not ari.channels[ch1].gone
    ari.hear(ch1, "до свидания")
    assert call_record(svc, ch1).end_reason == "goodbye"


def test_dtmf_only_and_operator(ari: AriDouble, make_settings: Make, start_service: Start, prompts_file: Path) -> None:
    prompts = orjson.loads(prompts_file.read_bytes())
    svc = start_service(make_settings(stt_backend="none", operator_context="operators"))
    ch = ari.place_call()
    wait_for(lambda: ari.channels[ch].recordings, message="listening")
    ari.press(ch, "0#")
    detail = call_record(svc, ch)
    assert detail.end_reason == "operator"
    assert heard(svc, ari, ch) == pieces(prompts["greeting"], prompts["operator"])
    assert ari.channels[ch].continued_to == ("operators", "s", "1")


def test_silence_ends_the_call_after_the_limit(ari: AriDouble, make_settings: Make, start_service: Start) -> None:
    ari.silence_timeout = 0.05
    svc = start_service(make_settings(no_input_limit=2))
    ch = ari.place_call()
    detail = call_record(svc, ch)
    assert detail.end_reason == "no_input"
    assert ari.channels[ch].recordings == 2


def test_max_turns(ari: AriDouble, make_settings: Make, start_service: Start) -> None:
    svc = start_service(make_settings(max_turns=2))
    ch = ari.place_call()
    ari.hear(ch, "Тарифы", "Доставка", "Часы работы")
    detail = call_record(svc, ch)
    assert detail.end_reason == "max_turns"
    assert len(detail.turns) == 2


def test_metrics_endpoint(ari: AriDouble, make_settings: Make, start_service: Start, prompts_file: Path) -> None:
    import httpx

    svc = start_service(make_settings(metrics_port=0))
    ch = ari.place_call()
    ari.hear(ch, "Сколько стоит доставка", "до свидания")
    call_record(svc, ch)
    port = svc.service.metrics_port
    assert port

    def scrape() -> str:
        return httpx.get(f"http://127.0.0.1:{port}/metrics").text

    text = wait_for(lambda: 'stasis_calls_total{reason="goodbye"} 1.0' in scrape() and scrape(), message="metrics")
    assert "stasis_active_calls 0.0" in text
    assert "stasis_ari_connected 1.0" in text
    assert f'stasis_prompts_info{{sha256="{sha256_hex(prompts_file.read_bytes())}"}} 1.0' in text
    for stage in ("stt", "llm", "tts"):
        assert f'stasis_turn_stage_seconds_count{{stage="{stage}"}}' in text


def test_long_reply_is_synthesised_in_parallel_by_sentence(
    ari: AriDouble, openai: FakeOpenAi, make_settings: Make, start_service: Start
) -> None:
    reply = "Первое предложение ответа довольно длинное. Второе предложение тоже длинное. И третье, последнее."
    openai.answer = lambda messages: reply
    svc = start_service(make_settings(llm_url=openai.url))
    speech = svc.service.speech
    assert speech is not None
    assert svc.service.prompts is not None
    phrases = speech_texts(svc.service.prompts.current)
    wait_for(lambda: all(speech.cached(p) for p in phrases), message="pre-synthesis done")
    openai.tts.delay = 0.3
    openai.tts.max_active = 0
    ch = ari.place_call()
    ari.hear(ch, "Расскажите подробно", "до свидания")
    detail = call_record(svc, ch)
    said = heard(svc, ari, ch)
    assert said[-4:-1] == split_sentences(reply) and len(split_sentences(reply)) == 3
    assert openai.tts.max_active == 3  # all three sentences synthesised at once
    tts_ms = detail.turns[0].tts_ms
    assert tts_ms is not None and tts_ms >= 300  # time to the first sentence's audio


def test_prompt_edit_presynthesises_the_new_phrases(
    openai: FakeOpenAi, make_settings: Make, start_service: Start, prompts_file: Path
) -> None:
    svc = start_service(make_settings())
    speech = svc.service.speech
    assert speech is not None
    new = "Новое приветствие для первого звонка после правки."
    assert speech.cached(new) is None
    edit(prompts_file, greeting=new, fillers=["Минуточку, уточняю."])
    wait_for(lambda: speech.cached(new) and speech.cached("Минуточку, уточняю."), message="pre-synthesised")
    assert {"Новое приветствие для первого звонка после правки.", "Минуточку, уточняю."} <= {
        r["input"] for r in openai.tts.requests
    }


def test_a_failing_call_does_not_disturb_the_others(ari: AriDouble, make_settings: Make, start_service: Start) -> None:
    svc = start_service(make_settings())
    good = ari.place_call("111")
    wait_for(lambda: ari.channels[good].recordings, message="good call listening")
    ari.broken.add(bad := ari.place_call("222"))
    assert call_record(svc, bad).end_reason == "error"
    ari.hear(good, "Сколько стоит доставка", "до свидания")
    assert call_record(svc, good).end_reason == "goodbye"
    wait_for(lambda: not svc.service.calls, message="no call left")
    assert "0 calls" in svc.service.status_text()
