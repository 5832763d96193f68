"""The Agent: from the caller's phrase to the bot's reply, on one pinned prompts snapshot.

The model's input is the snapshot's ``system_prompt``, the knowledge-base passages that best match
the caller's phrase, the call's history and the phrase itself.  A backend failure never leaves the
caller in silence: the reply is then the ``fallback`` prompt, with the error recorded.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from promptwatch.schema import Prompts

from .backends.llm import LlmBackend, LlmRequest, OfflineLlm, OpenAiLlm, fallback_text
from .errors import LlmError
from .kb import KnowledgeBase, Passage

if TYPE_CHECKING:
    from .settings import StasisSettings

__all__ = ["Agent", "Message", "Reply", "build_agent", "build_llm", "build_messages"]

logger = logging.getLogger("stasis.agent")

MAX_HISTORY_MESSAGES = 20


@dataclass(frozen=True, slots=True)
class Message:
    """One utterance of the conversation so far."""

    role: Literal["user", "assistant"]
    text: str


@dataclass(frozen=True, slots=True)
class Reply:
    """The bot's answer: its ``text``, where it came from, the passages used, timing and any error."""

    text: str
    source: Literal["llm", "kb", "fallback"]
    passages: tuple[Passage, ...] = ()
    llm_ms: float = 0.0
    error: str | None = None


def build_messages(
    prompts: Prompts, passages: Sequence[Passage], history: Sequence[Message], caller_text: str
) -> tuple[dict[str, str], ...]:
    """OpenAI-style chat messages: system (prompt + passages), the recent history, the caller."""
    system = prompts.system_prompt
    if passages:
        facts = "\n\n".join(f"[{p.doc}] {p.text}" for p in passages)
        system += f"\n\nСведения из базы знаний (отвечай по ним):\n{facts}"
    messages = [{"role": "system", "content": system}]
    messages += [{"role": m.role, "content": m.text} for m in list(history)[-MAX_HISTORY_MESSAGES:]]
    messages.append({"role": "user", "content": caller_text})
    return tuple(messages)


class Agent:
    """Answers the caller with ``llm``, grounded in ``kb`` (optional)."""

    def __init__(self, llm: LlmBackend, kb: KnowledgeBase | None, *, k: int = 3) -> None:
        self.llm = llm
        self.kb = kb
        self.k = k

    async def reply(self, prompts: Prompts, history: Sequence[Message], caller_text: str) -> Reply:
        """The reply to ``caller_text`` under ``prompts`` (the call's pinned snapshot)."""
        passages = tuple(self.kb.search(caller_text, self.k)) if self.kb is not None else ()
        request = LlmRequest(prompts, build_messages(prompts, passages, history, caller_text), passages, caller_text)
        started = time.monotonic()
        try:
            answer = await self.llm.complete(request)
        except LlmError as e:
            ms = (time.monotonic() - started) * 1000
            logger.warning("llm failed, answering with the fallback: %s", e)
            return Reply(fallback_text(prompts), "fallback", passages, ms, str(e))
        ms = (time.monotonic() - started) * 1000
        return Reply(answer.text, answer.source, passages, ms, None)

    async def aclose(self) -> None:
        """Close the backend's connections and stop watching the knowledge base."""
        await self.llm.aclose()
        if self.kb is not None:
            self.kb.close()


def build_llm(settings: StasisSettings) -> LlmBackend:
    """``OpenAiLlm`` when ``LLM_URL`` is set, else :class:`OfflineLlm`."""
    if not settings.llm_url:
        return OfflineLlm()
    return OpenAiLlm(
        settings.llm_url,
        model=settings.llm_model,
        api_key=settings.llm_api_key.get_secret_value() if settings.llm_api_key else None,
        timeout=settings.llm_timeout_seconds,
        max_tokens=settings.llm_max_tokens,
        temperature=settings.llm_temperature,
    )


def build_agent(settings: StasisSettings, *, kb: KnowledgeBase | None = None) -> Agent:
    """The agent the settings describe; watches ``settings.knowledge_base_dir`` unless ``kb`` is given."""
    if kb is None:
        kb = KnowledgeBase.from_settings(settings)
    return Agent(build_llm(settings), kb)
