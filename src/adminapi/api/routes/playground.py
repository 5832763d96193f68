"""``/api/playground``: the Agent's answer to a caller's phrase under *draft* prompts, before saving."""

from __future__ import annotations

import asyncio
import logging

import orjson
from fastapi import APIRouter, Request

from promptwatch import DocumentError, parse_document
from stasis.agent import Agent, Message, build_llm
from stasis.kb import KnowledgeBase
from stasis.settings import StasisSettings

from ..deps import OperatorDep, SettingsDep
from ..problems import AUTH_RESPONSES, ApiError, Code, document_error, responses
from ..schemas import PassageOut, PlaygroundIn, PlaygroundOut

__all__ = ["close_agent", "router"]

logger = logging.getLogger("adminapi.playground")

router = APIRouter(prefix="/api/playground", tags=["playground"], responses=AUTH_RESPONSES)


async def _agent(request: Request, settings: SettingsDep) -> Agent:
    """One Agent per app, made on first use: the configured LLM (offline when ``LLM_URL`` is unset) and the
    knowledge base the panel manages."""
    agent: Agent | None = getattr(request.app.state, "agent", None)
    if agent is not None:
        return agent
    lock: asyncio.Lock = request.app.state.agent_lock
    async with lock:
        agent = getattr(request.app.state, "agent", None)
        if agent is None:
            llm = build_llm(await asyncio.to_thread(StasisSettings.load))  # reads the .env file: off the loop
            kb = await asyncio.to_thread(
                KnowledgeBase,
                settings.knowledge_base_dir,
                hot_reload=settings.prompts_hot_reload,
                mode=settings.prompts_watch_mode,
                interval=settings.reload_interval,
            )
            agent = Agent(llm, kb)
            request.app.state.agent = agent
            logger.info("playground agent ready: llm=%s kb=%s", llm.name, settings.knowledge_base_dir)
    return agent


async def close_agent(state: object) -> None:
    agent: Agent | None = getattr(state, "agent", None)
    if agent is not None:
        setattr(state, "agent", None)  # noqa: B010 - state is Starlette's State
        await agent.aclose()


@router.post("", summary="Try draft prompts", response_model=PlaygroundOut, responses=responses(400, 413, 422))
async def playground(
    body: PlaygroundIn, request: Request, settings: SettingsDep, _operator: OperatorDep
) -> PlaygroundOut:
    """Nothing is saved: the draft is validated like a save (422 with paths) and answered by the Agent."""
    try:
        prompts = parse_document(orjson.dumps(body.prompts), source="draft")
    except DocumentError as e:
        raise document_error(e) from None
    except orjson.JSONEncodeError as e:
        raise ApiError(Code.INVALID_DOCUMENT, f"draft: {e}") from None
    agent = await _agent(request, settings)
    history = [Message(m.role, m.text) for m in body.history]
    reply = await agent.reply(prompts, history, body.text)
    return PlaygroundOut(
        text=reply.text,
        source=reply.source,
        passages=[PassageOut(doc=p.doc, text=p.text, score=p.score) for p in reply.passages],
        llm_ms=reply.llm_ms,
        error=reply.error,
        backend=agent.llm.name,
    )
