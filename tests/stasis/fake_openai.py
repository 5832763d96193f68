"""Local fakes of the OpenAI-compatible endpoints: chat completions, transcriptions, speech.

Each endpoint has a controllable ``delay`` (seconds) and ``fail`` (an HTTP status to answer with,
or ``"hang"`` to never answer within the client's timeout).  Requests are recorded.
"""

from __future__ import annotations

import asyncio
import io
import math
import struct
import wave
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from .servers import ServerThread


@dataclass
class Behaviour:
    delay: float = 0.0
    fail: int | str | None = None
    fail_times: int | None = None  # fail only this many times, then behave
    calls: int = 0
    active: int = 0
    max_active: int = 0  # the most requests in progress at once
    requests: list[Any] = field(default_factory=list)


def utterance_of(wav: bytes) -> str:
    """The text a test put in the WAV's ``utt `` chunk (what the ARI double's recording "heard")."""
    pos = 12
    while pos + 8 <= len(wav):
        cid = wav[pos : pos + 4]
        size = int.from_bytes(wav[pos + 4 : pos + 8], "little")
        if cid == b"utt ":
            return wav[pos + 8 : pos + 8 + size].rstrip(b"\0").decode()
        pos += 8 + size + (size & 1)
    return ""


def tone_wav(seconds: float, rate: int = 24000) -> bytes:
    out = io.BytesIO()
    with wave.open(out, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        n = int(seconds * rate)
        w.writeframes(b"".join(struct.pack("<h", int(8000 * math.sin(i * 0.1))) for i in range(n)))
    return out.getvalue()


class FakeOpenAi:
    """``url`` is the ``/v1`` base for LLM_URL, STT_URL and TTS_URL."""

    def __init__(self) -> None:
        self.chat = Behaviour()
        self.stt = Behaviour()
        self.tts = Behaviour()
        self.answer: Callable[[list[dict[str, str]]], str] = lambda messages: f"Ответ на: {messages[-1]['content']}"
        app = Starlette(
            routes=[
                Route("/v1/chat/completions", self._chat, methods=["POST"]),
                Route("/v1/audio/transcriptions", self._transcribe, methods=["POST"]),
                Route("/v1/audio/speech", self._speech, methods=["POST"]),
            ]
        )
        self.server = ServerThread(app)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.port}/v1"

    def start(self) -> FakeOpenAi:
        self.server.start()
        return self

    def stop(self) -> None:
        self.server.stop()

    async def _behave(self, b: Behaviour) -> Response | None:
        b.calls += 1
        b.active += 1
        b.max_active = max(b.max_active, b.active)
        try:
            if b.delay:
                await asyncio.sleep(b.delay)
        finally:
            b.active -= 1
        if b.fail is not None and (b.fail_times is None or b.fail_times > 0):
            if b.fail_times is not None:
                b.fail_times -= 1
            if b.fail == "hang":
                await asyncio.sleep(3600)
            return JSONResponse({"error": {"message": "fake failure"}}, int(b.fail))
        return None

    async def _chat(self, request: Request) -> Response:
        body = await request.json()
        self.chat.requests.append(body)
        if (failed := await self._behave(self.chat)) is not None:
            return failed
        text = self.answer(body["messages"])
        return JSONResponse(
            {
                "id": "chatcmpl-fake",
                "object": "chat.completion",
                "model": body.get("model", ""),
                "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
            }
        )

    async def _transcribe(self, request: Request) -> Response:
        async with request.form() as form:
            upload = form["file"]
            assert not isinstance(upload, str)
            wav = await upload.read()
            self.stt.requests.append({"model": form.get("model"), "language": form.get("language"), "bytes": len(wav)})
        if (failed := await self._behave(self.stt)) is not None:
            return failed
        return JSONResponse({"text": utterance_of(wav)})

    async def _speech(self, request: Request) -> Response:
        body = await request.json()
        self.tts.requests.append(body)
        if (failed := await self._behave(self.tts)) is not None:
            return failed
        return Response(tone_wav(min(3.0, 0.05 * len(body["input"]))), media_type="audio/wav")
