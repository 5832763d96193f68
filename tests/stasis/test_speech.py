"""Speech: espeak-ng and OpenAI-compatible TTS converted to what Asterisk plays, cached by text."""

from __future__ import annotations

import asyncio
import wave
from pathlib import Path

import pytest

from stasis.audio import _python_convert, convert_wav, silence_wav, wav_info
from stasis.backends.stt import OpenAiStt
from stasis.backends.tts import EspeakTts, OpenAiTts, SpeechCache, TtsBackend
from stasis.errors import SttError, TtsError
from stasis.line import split_sentences

from .conftest import needs_espeak
from .fake_openai import FakeOpenAi, tone_wav


class Counting(TtsBackend):
    name = "counting"

    def __init__(self) -> None:
        self.texts: list[str] = []

    async def synthesize(self, text: str) -> bytes:
        self.texts.append(text)
        await asyncio.sleep(0.01)
        return tone_wav(0.2, rate=22050)


def assert_playable(path: Path, rate: int) -> float:
    with wave.open(str(path), "rb") as w:
        assert (w.getframerate(), w.getnchannels(), w.getsampwidth(), w.getcomptype()) == (rate, 1, 2, "NONE")
        return w.getnframes() / rate


@needs_espeak
@pytest.mark.parametrize(("rate", "ext"), [(8000, ".wav"), (16000, ".wav16")])
async def test_espeak_output_is_what_asterisk_plays(tmp_path: Path, rate: int, ext: str) -> None:
    cache = SpeechCache(EspeakTts(voice="ru"), tmp_path / "sounds", rate=rate)
    sound = await cache.get("Здравствуйте! Вы позвонили в компанию «Метротех».")
    assert sound.path.suffix == ext and sound.path.parent == tmp_path / "sounds"
    assert sound.media == f"sound:{tmp_path / 'sounds' / sound.path.name.split('.')[0]}"
    seconds = assert_playable(sound.path, rate)
    assert 1.0 < seconds < 10 and abs(seconds - sound.duration) < 0.01
    assert sound.path.stat().st_mode & 0o044 == 0o044  # readable by the asterisk user
    assert [p.name for p in (tmp_path / "sounds").iterdir()] == [sound.path.name]  # no temp files left


async def test_openai_tts_is_converted_and_cached(tmp_path: Path, openai: FakeOpenAi) -> None:
    tts = OpenAiTts(openai.url, model="tts-1", voice="alloy", api_key="k", timeout=3)
    cache = SpeechCache(tts, tmp_path, rate=8000)
    try:
        sound = await cache.get("Добрый день")
        assert_playable(sound.path, 8000)
        assert openai.tts.requests[0] == {
            "model": "tts-1",
            "voice": "alloy",
            "input": "Добрый день",
            "response_format": "wav",
        }
        again = await cache.get("Добрый   день")  # same text once whitespace is normalised
        assert again.path == sound.path and openai.tts.calls == 1
        assert cache.texts[sound.media] == "Добрый день"
        openai.tts.fail = 500
        with pytest.raises(TtsError, match="HTTP 500"):
            await cache.get("Другой текст")
        assert openai.tts.calls == 3  # one retry
    finally:
        await cache.aclose()


async def test_concurrent_requests_for_one_text_synthesise_once(tmp_path: Path) -> None:
    backend = Counting()
    cache = SpeechCache(backend, tmp_path, rate=16000)
    sounds = await asyncio.gather(*(cache.get("Одна фраза") for _ in range(5)), cache.get("Другая фраза"))
    assert len({s.path for s in sounds[:5]}) == 1
    assert sorted(backend.texts) == ["Другая фраза", "Одна фраза"]
    assert all(s.path.suffix == ".wav16" for s in sounds)
    # a new cache over the same directory finds the files (the service restarted)
    fresh = SpeechCache(Counting(), tmp_path, rate=16000)
    assert fresh.cached("Одна фраза") is not None


async def test_conversion_with_and_without_sox() -> None:
    stereo_44k = tone_wav(0.5, rate=44100)
    for data in (await convert_wav(stereo_44k, 8000), _python_convert(stereo_44k, 8000)):
        info = wav_info(data)
        assert (info.rate, info.channels, info.sample_width) == (8000, 1, 2)
        assert abs(info.duration - 0.5) < 0.01
    already = silence_wav(0.1, 8000)
    assert await convert_wav(already, 8000) is already


def test_split_sentences_for_parallel_tts() -> None:
    text = "Да. Тариф «Базовый» стоит 500 рублей в месяц. Тариф «Премиум» стоит 1500 рублей! Ещё вопросы?"
    assert split_sentences(text) == [
        "Да. Тариф «Базовый» стоит 500 рублей в месяц.",
        "Тариф «Премиум» стоит 1500 рублей!",
        "Ещё вопросы?",
    ]
    assert split_sentences("Коротко.") == ["Коротко."]
    assert split_sentences("   ") == []


async def test_openai_stt(openai: FakeOpenAi) -> None:
    stt = OpenAiStt(openai.url, model="whisper-1", language="ru", timeout=2)
    try:
        wav = silence_wav(0.5, extra_chunk=(b"utt ", "Алло, это Иван".encode()))
        assert await stt.transcribe(wav) == "Алло, это Иван"
        assert openai.stt.requests[0] == {"model": "whisper-1", "language": "ru", "bytes": len(wav)}
        openai.stt.delay = 5
        with pytest.raises(SttError, match="timed out"):
            stt.timeout = 0.2
            await stt.transcribe(wav)
    finally:
        await stt.aclose()


async def test_prune_removes_only_files_unused_for_long(tmp_path: Path) -> None:
    import os
    import time

    cache = SpeechCache(Counting(), tmp_path, rate=8000)
    old = await cache.get("Старый ответ")
    used = await cache.get("Приветствие")
    (tmp_path / "unrelated.txt").write_text("x")
    week_ago = time.time() - 7 * 86400
    for sound in (old, used):
        os.utime(sound.path, (week_ago, week_ago))
    assert cache.cached("Приветствие") is not None  # used now: its mtime is refreshed
    assert cache.prune(3 * 86400) == 1
    assert not old.path.exists() and used.path.exists() and (tmp_path / "unrelated.txt").exists()
    assert cache.cached("Старый ответ") is None


@needs_espeak
async def test_cancelled_synthesis_leaves_no_process_or_file(tmp_path: Path) -> None:
    import gc

    cache = SpeechCache(EspeakTts(voice="ru"), tmp_path, rate=8000)
    task = asyncio.ensure_future(cache.get("Очень длинный текст. " * 200))
    await asyncio.sleep(0.05)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    gc.collect()  # a process left running would warn (ResourceWarning is an error here)
    assert list(tmp_path.iterdir()) == []
