"""``stasis console``: talk to the bot in a terminal — the same Agent and call flow, no Asterisk.

Each line typed (or piped on stdin) is one caller utterance; the bot's lines are printed with a
``бот:`` prefix.  ``/new`` hangs up and starts a new call (with the prompts current at that moment),
``/quit`` or end of input ends the session; SIGINT ends the current call politely and exits 0.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import signal
import sys
import threading
from typing import TextIO

from promptwatch.labels import PRODUCTION
from promptwatch.labelset import LabelSet

from .agent import build_agent
from .call import CallFlow, FlowConfig
from .line import CallHungUp, Heard, Line, Said
from .service import flow_config
from .settings import StasisSettings

__all__ = ["ConsoleLine", "run_console"]

logger = logging.getLogger("stasis.console")

_EOF = object()


class _StdinReader:
    """Lines of ``stream`` read on a daemon thread (so a blocked read never holds up the exit)."""

    def __init__(self, stream: TextIO, loop: asyncio.AbstractEventLoop) -> None:
        self.queue: asyncio.Queue[object] = asyncio.Queue()
        self._stream = stream
        self._loop = loop
        threading.Thread(target=self._run, name="stasis-console-stdin", daemon=True).start()

    def _run(self) -> None:
        for line in iter(self._stream.readline, ""):
            self._loop.call_soon_threadsafe(self.queue.put_nowait, line.rstrip("\r\n"))
        self._loop.call_soon_threadsafe(self.queue.put_nowait, _EOF)


class ConsoleLine(Line):
    """The caller at the terminal."""

    def __init__(self, call_id: str, reader: _StdinReader, out: TextIO, *, interactive: bool) -> None:
        super().__init__()
        self.call_id = call_id
        self.caller_number = "console"
        self.caller_name = "console"
        self.reader = reader
        self.out = out
        self.interactive = interactive
        self.command: str | None = None  # "/new", "/quit" or "eof" once the caller left

    def _print(self, text: str) -> None:
        self.out.write(text + "\n")
        self.out.flush()

    async def answer(self) -> bool:
        return True

    async def say(self, text: str, *, fallback: str | None = None) -> Said:
        if self.hungup.is_set():
            raise CallHungUp(self.call_id)
        self._print(f"бот: {text}")
        return Said(0.0, None)

    async def listen(self) -> Heard:
        while True:
            if self.interactive:
                self.out.write("вы> ")
                self.out.flush()
            item = await self.guard(self.reader.queue.get())
            if item is _EOF:
                self.command = "eof"
            else:
                text = str(item).strip()
                if text in ("/new", "/quit"):
                    self.command = text
                elif text:
                    if not self.interactive:
                        self._print(f"вы: {text}")
                    return Heard(text, "", 0.0)
                else:
                    continue
            self.hungup.set()
            raise CallHungUp(self.call_id)

    async def hangup(self) -> None:
        self.hungup.set()


async def run_console(
    settings: StasisSettings, stdin: TextIO | None = None, out: TextIO | None = None, *, label: str = PRODUCTION
) -> int:
    """Conversations until ``/quit`` or EOF, on the prompts of ``label``; returns the exit code.

    A malformed or unknown label is a :class:`~promptwatch.LabelError` (the command exits 1)."""
    stdin = stdin or sys.stdin
    out = out or sys.stdout
    loop = asyncio.get_running_loop()
    labels = await asyncio.to_thread(LabelSet.from_settings, settings)
    try:
        prompts = await asyncio.to_thread(labels.get, label)
        agent = await asyncio.to_thread(build_agent, settings)
    except BaseException:
        await asyncio.to_thread(labels.close)
        raise
    config: FlowConfig = flow_config(settings)
    reader = _StdinReader(stdin, loop)
    interactive = stdin.isatty()
    stop = asyncio.Event()
    handled = False
    try:
        loop.add_signal_handler(signal.SIGINT, stop.set)
        handled = True
    except (RuntimeError, ValueError):  # not the main thread
        pass
    try:
        for n in itertools.count(1):
            line = ConsoleLine(f"console-{n}", reader, out, interactive=interactive)
            snap = prompts.current  # pinned for this call
            flow = CallFlow(line, snap, agent, config)
            hint = "; /new — новый звонок, /quit — выход" if interactive else ""
            shown = snap.short if label == PRODUCTION else f"{label} {snap.short}"
            out.write(f"— звонок {n} (промпты {shown}){hint}\n")
            out.flush()
            task = asyncio.ensure_future(flow.run())
            stopper = asyncio.ensure_future(stop.wait())
            await asyncio.wait({task, stopper}, return_when=asyncio.FIRST_COMPLETED)
            stopper.cancel()
            if not task.done():
                task.cancel()
                try:
                    await task
                except asyncio.CancelledError:
                    pass
                break
            if line.command != "/new":
                break
    finally:
        if handled:
            loop.remove_signal_handler(signal.SIGINT)
        await agent.aclose()
        await asyncio.to_thread(labels.close)
    return 0
