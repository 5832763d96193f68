"""The caller's side of a conversation, as the call flow sees it: say, listen, transfer, hang up.

:class:`stasis.ari_line.AriLine` implements it on an Asterisk channel, :class:`stasis.console.ConsoleLine`
on a terminal.  Every method raises :class:`CallHungUp` once the caller is gone.
"""

from __future__ import annotations

import asyncio
import re
from abc import ABC, abstractmethod
from collections.abc import Awaitable
from dataclasses import dataclass
from typing import TypeVar

from .errors import StasisError

__all__ = ["CallHungUp", "Heard", "Line", "Said", "split_sentences"]

T = TypeVar("T")


class CallHungUp(StasisError):
    """The caller hung up (or the channel left Stasis)."""


@dataclass(frozen=True, slots=True)
class Heard:
    """What the caller said (``text``; "" for nothing), pressed (``digits``) and how long STT took."""

    text: str = ""
    digits: str = ""
    stt_ms: float | None = None
    error: str | None = None


@dataclass(frozen=True, slots=True)
class Said:
    """How saying something went: ms until the first audio was ready, and any TTS error."""

    tts_ms: float | None = None
    error: str | None = None


_SENTENCE_END = re.compile(r"(?<=[.!?…])\s+")


def split_sentences(text: str, *, min_chars: int = 20) -> list[str]:
    """Sentences of ``text``; very short ones are joined to the next so each is worth a synthesis."""
    out: list[str] = []
    carry = ""
    for part in _SENTENCE_END.split(" ".join(text.split())):
        carry = f"{carry} {part}".strip() if carry else part
        if len(carry) >= min_chars:
            out.append(carry)
            carry = ""
    if carry:
        if out and len(carry) < min_chars // 2:
            out[-1] = f"{out[-1]} {carry}"
        else:
            out.append(carry)
    return out


class Line(ABC):
    """One caller.  ``hungup`` is set the moment the caller is gone."""

    call_id: str
    caller_number: str = ""
    caller_name: str = ""
    console: bool = False
    """A call made in ``stasis console`` (marked so in the call log), not by a caller on Asterisk."""

    def __init__(self) -> None:
        self.hungup = asyncio.Event()
        self.said: list[str] = []
        """The sentences of the latest :meth:`say` the caller has begun to hear (a reply cut short
        by a hangup or a shutdown is logged as far as it got)."""

    async def guard(self, awaitable: Awaitable[T], timeout: float | None = None) -> T:
        """Await ``awaitable`` unless the caller hangs up first (:class:`CallHungUp`) or time runs out."""
        if self.hungup.is_set():
            if asyncio.iscoroutine(awaitable):
                awaitable.close()
            raise CallHungUp(self.call_id)
        task = asyncio.ensure_future(awaitable)
        hang = asyncio.ensure_future(self.hungup.wait())
        try:
            done, _ = await asyncio.wait({task, hang}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        finally:
            hang.cancel()
        if task in done:
            return task.result()
        task.cancel()
        if self.hungup.is_set():
            raise CallHungUp(self.call_id)
        raise TimeoutError(f"call {self.call_id}: no result within {timeout}s")

    @abstractmethod
    async def answer(self) -> bool:
        """Answer if not answered yet; True when this call answered it."""

    @abstractmethod
    async def say(self, text: str, *, fallback: str | None = None) -> Said:
        """Speak ``text`` (sentence by sentence); on a TTS failure speak ``fallback`` instead.
        Starts :attr:`said` afresh and adds each sentence as it begins to play."""

    @abstractmethod
    async def listen(self) -> Heard:
        """The caller's next utterance."""

    async def interrupt(self) -> None:
        """Stop at once whatever the caller is hearing or being recorded for, so that what is said
        next (the goodbye of a call cut short) starts without waiting for it.  Nothing by default."""
        return None

    async def transfer(self) -> bool:
        """Hand the caller to an operator; False when no operator is configured."""
        return False

    @abstractmethod
    async def hangup(self) -> None:
        """Hang up (quietly when the caller already did)."""
