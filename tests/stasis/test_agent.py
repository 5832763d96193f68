"""The Agent: offline answers from the knowledge base, OpenAI-compatible chat with retry and fallback."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from promptwatch import Prompts, parse_document
from stasis.agent import Agent, Message, build_agent, build_messages
from stasis.backends.llm import DEFAULT_FALLBACK, OfflineLlm, OpenAiLlm
from stasis.kb import KnowledgeBase, Passage
from stasis.settings import StasisSettings

from .fake_openai import FakeOpenAi


@pytest.fixture
def prompts(prompts_file: Path) -> Prompts:
    return parse_document(prompts_file.read_bytes())


@pytest.fixture
def kb(config_dir: Path) -> Iterator[KnowledgeBase]:
    with KnowledgeBase(config_dir / "kb", hot_reload=False) as base:
        yield base


async def test_offline_answers_from_the_knowledge_base(prompts: Prompts, kb: KnowledgeBase) -> None:
    agent = Agent(OfflineLlm(), kb)
    reply = await agent.reply(prompts, [], "Сколько стоит тариф Премиум?")
    assert reply.source == "kb" and "1500 рублей" in reply.text
    assert reply.passages[0].doc == "тарифы.md" and reply.error is None
    unknown = await agent.reply(prompts, [], "Расскажите анекдот")
    assert (unknown.source, unknown.text) == ("fallback", prompts.fallback)


async def test_offline_without_a_fallback_prompt(kb: KnowledgeBase) -> None:
    bare = Prompts(system_prompt="s", greeting="g")
    reply = await Agent(OfflineLlm(), None).reply(bare, [], "что угодно")
    assert (reply.source, reply.text) == ("fallback", DEFAULT_FALLBACK)


def test_messages_carry_system_prompt_passages_history_and_caller(prompts: Prompts) -> None:
    history = [Message("user", "Привет"), Message("assistant", "Здравствуйте!")]
    messages = build_messages(prompts, [Passage("a.md", "Факт А.")], history, "Вопрос")
    assert messages[0]["role"] == "system"
    assert messages[0]["content"].startswith(prompts.system_prompt) and "[a.md] Факт А." in messages[0]["content"]
    assert messages[1:] == (
        {"role": "user", "content": "Привет"},
        {"role": "assistant", "content": "Здравствуйте!"},
        {"role": "user", "content": "Вопрос"},
    )


async def test_openai_compatible_chat(prompts: Prompts, kb: KnowledgeBase, openai: FakeOpenAi) -> None:
    llm = OpenAiLlm(openai.url, model="test-model", api_key="k", timeout=2)
    agent = Agent(llm, kb)
    try:
        reply = await agent.reply(prompts, [Message("user", "раньше")], "Когда работает офис?")
        assert (reply.source, reply.text) == ("llm", "Ответ на: Когда работает офис?")
        body = openai.chat.requests[0]
        assert body["model"] == "test-model" and body["stream"] is False
        assert "Офис работает" in body["messages"][0]["content"]
        assert body["messages"][1] == {"role": "user", "content": "раньше"}

        openai.chat.fail, openai.chat.fail_times = 503, 1  # one retry saves it
        assert (await agent.reply(prompts, [], "ещё")).source == "llm"

        openai.chat.fail, openai.chat.fail_times = 400, None  # a client error is not retried
        calls = openai.chat.calls
        reply = await agent.reply(prompts, [], "ещё раз")
        assert (reply.source, reply.text) == ("fallback", prompts.fallback)
        assert reply.error is not None and "HTTP 400" in reply.error
        assert openai.chat.calls == calls + 1
    finally:
        await llm.aclose()


async def test_unreachable_llm_falls_back(prompts: Prompts) -> None:
    llm = OpenAiLlm("http://127.0.0.1:1/v1", model="m", timeout=1)
    try:
        reply = await Agent(llm, None).reply(prompts, [], "алло")
        assert reply.source == "fallback" and reply.error is not None and "2 attempts" in reply.error
    finally:
        await llm.aclose()


async def test_build_agent_is_offline_without_llm_url(config_dir: Path, openai: FakeOpenAi) -> None:
    settings = StasisSettings(_env_file=None, prompts_path=config_dir / "prompts.json", prompts_hot_reload=False)  # type: ignore[call-arg]
    agent = build_agent(settings)
    try:
        assert isinstance(agent.llm, OfflineLlm)
        assert agent.kb is not None and agent.kb.directory == (config_dir / "kb").resolve()
    finally:
        await agent.aclose()
    online = build_agent(settings.model_copy(update={"llm_url": openai.url}))
    try:
        assert isinstance(online.llm, OpenAiLlm)
    finally:
        await online.aclose()
