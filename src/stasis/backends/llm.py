"""Language-model backends behind one small interface: OpenAI-compatible chat completions, and offline.

:class:`OpenAiLlm` speaks ``POST {LLM_URL}/chat/completions`` (OpenAI, vLLM, llama.cpp server,
Ollama's ``/v1``…) with a per-attempt timeout and one retry on timeouts, connection errors, 429 and
5xx.  :class:`OfflineLlm` needs no network: it answers with the best-matching knowledge-base passage,
else the prompts' ``fallback``.
"""

from __future__ import annotations

import logging
import re
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, Literal

import httpx

from promptwatch.schema import Prompts

from ..errors import LlmError
from ..kb import Passage
from .openai import OpenAiEndpoint

__all__ = [
    "DEFAULT_FALLBACK",
    "LlmAnswer",
    "LlmBackend",
    "LlmRequest",
    "OfflineLlm",
    "OpenAiLlm",
    "fallback_text",
]

logger = logging.getLogger("stasis.llm")

DEFAULT_FALLBACK = "Извините, я не могу сейчас ответить. Попробуйте, пожалуйста, позже."
MAX_OFFLINE_CHARS = 320

AnswerSource = Literal["llm", "kb", "fallback"]


def fallback_text(prompts: Prompts) -> str:
    """The spoken fallback: the prompts' ``fallback``, else a built-in phrase."""
    return prompts.fallback or DEFAULT_FALLBACK


@dataclass(frozen=True, slots=True)
class LlmRequest:
    """What the agent asks: OpenAI-style ``messages`` (system first), and what they were built from."""

    prompts: Prompts
    messages: tuple[dict[str, str], ...]
    passages: tuple[Passage, ...]
    caller_text: str


@dataclass(frozen=True, slots=True)
class LlmAnswer:
    text: str
    source: AnswerSource


class LlmBackend(ABC):
    """One hook: :meth:`complete`.  Raises :class:`LlmError` when no answer can be had."""

    name: str = "llm"

    @abstractmethod
    async def complete(self, request: LlmRequest) -> LlmAnswer:
        """The model's answer to ``request``."""

    async def aclose(self) -> None:  # noqa: B027 - optional hook
        """Release connections."""


def _first_sentences(text: str, limit: int = MAX_OFFLINE_CHARS) -> str:
    if len(text) <= limit:
        return text
    out = ""
    for sentence in re.split(r"(?<=[.!?…])\s+", text):
        if out and len(out) + len(sentence) + 1 > limit:
            break
        out = f"{out} {sentence}".strip()
    return out[:limit]


class OfflineLlm(LlmBackend):
    """Answers from the best knowledge-base passage; else the ``fallback`` prompt.  Never fails."""

    name = "offline"

    async def complete(self, request: LlmRequest) -> LlmAnswer:
        if request.passages:
            return LlmAnswer(_first_sentences(request.passages[0].text), "kb")
        return LlmAnswer(fallback_text(request.prompts), "fallback")


class OpenAiLlm(LlmBackend):
    """An OpenAI-compatible chat-completions endpoint; ``base_url`` ends in ``/v1`` (or equivalent)."""

    def __init__(
        self,
        base_url: str,
        *,
        model: str,
        api_key: str | None = None,
        timeout: float = 8.0,
        max_tokens: int = 200,
        temperature: float = 0.3,
        retries: int = 1,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.endpoint = OpenAiEndpoint(
            "llm", base_url, error=LlmError, api_key=api_key, timeout=timeout, retries=retries, transport=transport
        )
        self.base_url = self.endpoint.base_url
        self.name = self.endpoint.name
        self.model = model
        self.max_tokens = max_tokens
        self.temperature = temperature

    async def complete(self, request: LlmRequest) -> LlmAnswer:
        body: dict[str, Any] = {
            "model": self.model,
            "messages": list(request.messages),
            "max_tokens": self.max_tokens,
            "temperature": self.temperature,
            "stream": False,
        }
        response = await self.endpoint.post("/chat/completions", json=body)
        try:
            text = response.json()["choices"][0]["message"]["content"]
        except (ValueError, KeyError, IndexError, TypeError) as e:
            raise self.endpoint.unexpected(e) from e
        if not isinstance(text, str) or not text.strip():
            raise LlmError(self.name, "empty answer")
        return LlmAnswer(text.strip(), "llm")

    async def aclose(self) -> None:
        await self.endpoint.aclose()
