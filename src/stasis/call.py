"""The call flow: one pinned prompts snapshot from greeting to goodbye.

    greeting → loop { listen → (goodbye? operator?) → Agent reply (filler while slow) → say }
             → goodbye → hang up

A prompt edit during a call changes the next call, never this one: the flow reads only the
:class:`~promptwatch.Snapshot` it was given.  Each turn is written to the call log (never blocking),
with the STT/LLM/TTS timings and any backend error; a turn cut short (hangup, shutdown, failure) is
written too, with what the caller said and as much of the answer as was played.  The caller never
hears silence because a backend failed: the ``fallback`` prompt is spoken instead.  A call ended by
the service (shutdown, failure) first stops what is playing or recording, so its goodbye starts at once.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from promptwatch.snapshot import Snapshot

from .agent import Agent, Message, Reply
from .backends.llm import fallback_text
from .calllog import Turn
from .line import CallHungUp, Heard, Line

__all__ = ["DEFAULT_BUSY", "DEFAULT_GOODBYE", "DEFAULT_OPERATOR", "CallFlow", "FlowConfig", "is_goodbye"]

logger = logging.getLogger("stasis.call")

DEFAULT_GOODBYE = "До свидания!"
DEFAULT_BUSY = "Извините, сейчас все линии заняты. Пожалуйста, перезвоните позже."
DEFAULT_OPERATOR = "Соединяю с оператором."


class CallLogSink(Protocol):
    """The write side of the call log (:class:`stasis.calllog.CallLogWriter`)."""

    def start_call(self, call_id: str, **kwargs: object) -> None: ...
    def answer_call(self, call_id: str, answered_at: float) -> None: ...
    def add_turn(self, call_id: str, turn: Turn) -> None: ...
    def end_call(self, call_id: str, **kwargs: object) -> None: ...


class FlowMetrics(Protocol):
    def observe_stage(self, stage: str, seconds: float) -> None: ...
    def call_ended(self, reason: str) -> None: ...


@dataclass(slots=True)
class _OpenTurn:
    """The turn in progress, from the caller's words until its answer has been said."""

    started_at: float
    heard: Heard
    text: str
    reply: Reply | None = None


@dataclass(frozen=True, slots=True)
class FlowConfig:
    max_turns: int = 10
    filler_after: float = 1.2
    no_input_limit: int = 2
    reply_timeout: float = 30.0
    goodbye_phrases: tuple[str, ...] = ("до свидания", "пока", "всего доброго")
    operator_digit: str | None = None


def is_goodbye(text: str, phrases: Sequence[str]) -> bool:
    """Does the caller take their leave?  (A goodbye phrase as whole words in ``text``.)"""
    words = " ".join("".join(c if c.isalnum() else " " for c in text.lower().replace("ё", "е")).split())
    padded = f" {words} "
    return any(f" {p} " in padded for p in phrases if p)


class CallFlow:
    """Runs one call on ``line`` with the pinned ``snapshot``; :meth:`run` returns the end reason."""

    def __init__(
        self,
        line: Line,
        snapshot: Snapshot,
        agent: Agent,
        config: FlowConfig,
        *,
        calllog: CallLogSink | None = None,
        metrics: FlowMetrics | None = None,
        started_at: float | None = None,
    ) -> None:
        self.line = line
        self.snapshot = snapshot
        self.prompts = snapshot.prompts
        self.agent = agent
        self.config = config
        self.calllog = calllog
        self.metrics = metrics
        self.started_at = started_at if started_at is not None else time.time()
        self.history: list[Message] = []
        self.turns = 0
        self.end_reason: str | None = None
        self._fillers = 0
        self._open: _OpenTurn | None = None

    @property
    def call_id(self) -> str:
        return self.line.call_id

    @property
    def fallback(self) -> str:
        return fallback_text(self.prompts)

    def _log(self, event: str, *args: object, level: int = logging.INFO) -> None:
        logger.log(level, "call=%s " + event, self.call_id, *args)

    async def _say(self, text: str) -> None:
        said = await self.line.say(text, fallback=self.fallback)
        if said.error:
            self._log("tts failed, spoke the fallback: %s", said.error, level=logging.WARNING)

    def _log_start(self) -> None:
        if self.calllog is not None:
            self.calllog.start_call(
                self.call_id,
                caller_number=self.line.caller_number,
                caller_name=self.line.caller_name,
                started_at=self.started_at,
                prompts_sha256=self.snapshot.sha256,
                console=self.line.console,
            )

    async def run(self) -> str:
        """The whole call; never raises except on cancellation (shutdown), which it ends politely."""
        self._log_start()
        self._log("start caller=%s name=%r prompts=%s", self.line.caller_number, self.line.caller_name,
                  self.snapshot.short)  # fmt: skip
        reason = "error"
        try:
            reason = await self._converse()
        except CallHungUp:
            self._close_open_turn("caller hung up")
            reason = "caller_hangup"
        except asyncio.CancelledError:
            self.end_reason = "shutdown"
            self._log("ending: service stopping")
            self._close_open_turn("service stopping")
            await self._end_politely()
            self._finish("shutdown")
            raise
        except Exception as e:
            self._log("failed: %s: %s", type(e).__name__, e, level=logging.ERROR)
            logger.debug("call=%s traceback", self.call_id, exc_info=True)
            self._close_open_turn(f"{type(e).__name__}: {e}")
            reason = "error"
            await self._end_politely(self.fallback)
        self._finish(reason)
        return reason

    def _close_open_turn(self, why: str) -> None:
        """Log the turn in progress, cut short: the caller's words and the part of the answer played."""
        turn, self._open = self._open, None
        if turn is None:
            return
        reply = turn.reply
        bot_text = " ".join(self.line.said) if reply is not None else ""
        self._log("turn %d cut short (%s) after %d sentence(s) of the answer", self.turns, why,
                  len(self.line.said) if reply is not None else 0)  # fmt: skip
        errors = [turn.heard.error, reply.error if reply else None, f"cut short: {why}"]
        self._add_turn(
            turn.started_at,
            turn.heard,
            turn.text,
            bot_text=bot_text,
            llm_ms=reply.llm_ms if reply else None,
            error="; ".join(e for e in errors if e),
        )

    def _finish(self, reason: str) -> None:
        self.end_reason = reason
        if self.calllog is not None:
            self.calllog.end_call(self.call_id, ended_at=time.time(), end_reason=reason)
        if self.metrics is not None:
            self.metrics.call_ended(reason)
        self._log("end reason=%s turns=%d duration=%.1fs", reason, self.turns, time.time() - self.started_at)

    async def _end_politely(self, text: str | None = None) -> None:
        """Goodbye (or ``text``) and hang up, bounded in time, whatever state the call is in."""
        try:
            async with asyncio.timeout(15):
                if not self.line.hungup.is_set():
                    await self.line.interrupt()  # else Asterisk plays the goodbye after what is playing
                    await self._say(text or self.prompts.goodbye or DEFAULT_GOODBYE)
                await self.line.hangup()
        except (CallHungUp, TimeoutError):
            pass
        except Exception as e:
            self._log("could not end politely: %s: %s", type(e).__name__, e, level=logging.WARNING)

    async def _converse(self) -> str:
        if await self.line.answer():
            self._log("answered")
        if self.calllog is not None:
            self.calllog.answer_call(self.call_id, time.time())
        await self._say(self.prompts.greeting)
        no_input = 0
        reason = "max_turns"
        while self.turns < self.config.max_turns:
            started_at = time.time()
            heard = await self.line.listen()
            if self.metrics is not None and heard.stt_ms is not None:
                self.metrics.observe_stage("stt", heard.stt_ms / 1000)
            op = self.config.operator_digit
            if op and op in heard.digits:
                self._log("operator requested")
                await self._say(self.prompts.get("operator") or DEFAULT_OPERATOR)
                if await self.line.transfer():
                    return "operator"
                continue
            text = self._caller_text(heard)
            if not text:
                no_input += 1
                self._log("heard nothing (%d/%d)%s", no_input, self.config.no_input_limit,
                          f" stt error: {heard.error}" if heard.error else "")  # fmt: skip
                if heard.error:
                    self._add_turn(started_at, heard, "")
                if no_input >= self.config.no_input_limit:
                    reason = "no_input"
                    break
                await self._say(self.fallback)
                continue
            no_input = 0
            self._log("caller said %r", text)
            if is_goodbye(text, self.config.goodbye_phrases):
                self._add_turn(started_at, heard, text)
                reason = "goodbye"
                break
            self._open = _OpenTurn(started_at, heard, text)
            reply = await self._reply(text)
            self._open.reply = reply
            said = await self.line.say(reply.text, fallback=self.fallback)
            self._open = None
            if self.metrics is not None and said.tts_ms is not None:
                self.metrics.observe_stage("tts", said.tts_ms / 1000)
            self.history += [Message("user", text), Message("assistant", reply.text)]
            error = "; ".join(e for e in (heard.error, reply.error, said.error) if e) or None
            self._add_turn(
                started_at, heard, text, bot_text=reply.text, llm_ms=reply.llm_ms, tts_ms=said.tts_ms, error=error
            )
        await self._say(self.prompts.goodbye or DEFAULT_GOODBYE)
        await self.line.hangup()
        return reason

    def _caller_text(self, heard: Heard) -> str:
        if heard.text.strip():
            return heard.text.strip()
        digits = heard.digits.replace("#", "")
        if digits:
            return self.prompts.get(f"dtmf_{digits}") or digits
        return ""

    async def _reply(self, text: str) -> Reply:
        """The agent's reply; a filler is spoken when it takes longer than ``filler_after``."""
        task = asyncio.ensure_future(self.agent.reply(self.prompts, list(self.history), text))
        try:
            done, _ = await asyncio.wait({task}, timeout=self.config.filler_after)
            if not done and self.prompts.fillers:
                filler = self.prompts.fillers[self._fillers % len(self.prompts.fillers)]
                self._fillers += 1
                self._log("reply is slow, filler %r", filler)
                await self._say(filler)
            reply = await self.line.guard(asyncio.shield(task), timeout=self.config.reply_timeout)
        except TimeoutError:
            self._log("reply timed out after %.0fs", self.config.reply_timeout, level=logging.WARNING)
            reply = Reply(self.fallback, "fallback", (), self.config.reply_timeout * 1000, "reply timed out")
        finally:
            if not task.done():
                task.cancel()
        if self.metrics is not None:
            self.metrics.observe_stage("llm", reply.llm_ms / 1000)
        self._log("reply source=%s llm_ms=%.0f%s", reply.source, reply.llm_ms,
                  f" error: {reply.error}" if reply.error else "")  # fmt: skip
        return reply

    def _add_turn(
        self,
        started_at: float,
        heard: Heard,
        text: str,
        *,
        bot_text: str = "",
        llm_ms: float | None = None,
        tts_ms: float | None = None,
        error: str | None = None,
    ) -> None:
        turn = Turn(
            idx=self.turns,
            started_at=started_at,
            caller_text=text,
            bot_text=bot_text,
            stt_ms=heard.stt_ms,
            llm_ms=llm_ms,
            tts_ms=tts_ms,
            error=error if error is not None else heard.error,
        )
        self.turns += 1
        if self.calllog is not None:
            self.calllog.add_turn(self.call_id, turn)

    async def run_busy(self) -> str:
        """Over ``MAX_CALLS``: a short busy phrase and hang up."""
        self._log_start()
        self._log("busy: MAX_CALLS reached caller=%s", self.line.caller_number, level=logging.WARNING)
        try:
            await self.line.answer()
            await self._say(self.prompts.get("busy") or DEFAULT_BUSY)
            await self.line.hangup()
        except CallHungUp:
            pass
        except asyncio.CancelledError:
            self._log("ending: service stopping")
            await self._end_politely()
            self._finish("shutdown")
            raise
        except Exception as e:
            self._log("busy phrase failed: %s: %s", type(e).__name__, e, level=logging.WARNING)
            await self._end_politely()
        self._finish("busy")
        return "busy"
