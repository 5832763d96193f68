"""``stasis console``: talk to the bot in a terminal — the same Agent and call flow, no Asterisk.

Each line typed (or piped on stdin) is one caller utterance; the bot's lines are printed with a
``бот:`` prefix.  A call ends as on the phone (the caller's goodbye, ``MAX_TURNS``, silences) or with
``/new``; the console goes on, and the next line starts a new call with the prompts current at that
moment (``/new`` starts it at once).  ``/quit`` or end of input (Ctrl-D) ends the console; SIGINT
ends the current call politely and exits 0.  Every call is written to the call log like a real one,
marked ``console``.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sqlite3
import sys
import threading
import time
from typing import Any, TextIO

from promptwatch.snapshot import HotPrompts

from .agent import build_agent
from .call import CallFlow, FlowConfig
from .calllog import CallLog, CallLogWriter
from .line import CallHungUp, Heard, Line, Said
from .service import flow_config
from .settings import StasisSettings

__all__ = ["ConsoleLine", "run_console"]

logger = logging.getLogger("stasis.console")

_EOF = object()
_COMMANDS = ("/new", "/quit")


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

    async def next(self) -> str | None:
        """The next non-blank line, stripped; None at end of input."""
        while True:
            item = await self.queue.get()
            if item is _EOF:
                self.queue.put_nowait(_EOF)  # the end stays the end for whoever reads next
                return None
            text = str(item).strip()
            if text:
                return text


class ConsoleLine(Line):
    """The caller at the terminal.  ``first`` is an utterance already typed (it started the call)."""

    console = True

    def __init__(
        self, call_id: str, reader: _StdinReader, out: TextIO, *, interactive: bool, first: str | None = None
    ) -> None:
        super().__init__()
        self.call_id = call_id
        self.caller_number = "console"
        self.caller_name = "console"
        self.reader = reader
        self.out = out
        self.interactive = interactive
        self.first = first
        self.command: str | None = None  # "/new", "/quit" or "eof" once the caller left

    def _print(self, text: str) -> None:
        self.out.write(text + "\n")
        self.out.flush()

    async def answer(self) -> bool:
        return True

    async def say(self, text: str, *, fallback: str | None = None) -> Said:
        if self.hungup.is_set():
            raise CallHungUp(self.call_id)
        self.said = [text]
        self._print(f"бот: {text}")
        return Said(0.0, None)

    async def listen(self) -> Heard:
        if self.first is not None:
            text, self.first = self.first, None
        else:
            if self.interactive:
                self.out.write("вы> ")
                self.out.flush()
            line = await self.guard(self.reader.next())
            if line is None or line in _COMMANDS:
                self.command = line or "eof"
                self.hungup.set()
                raise CallHungUp(self.call_id)
            text = line
        if not self.interactive:
            self._print(f"вы: {text}")
        return Heard(text, "", 0.0)

    async def hangup(self) -> None:
        self.hungup.set()


def _open_calllog(settings: StasisSettings) -> tuple[CallLog, CallLogWriter] | None:
    """The call log the service writes; when it cannot be opened the console still runs (and says so)."""
    try:
        calllog = CallLog(settings.calllog_path)
    except (OSError, sqlite3.Error) as e:
        print(f"stasis: call log {settings.calllog_path}: {e}; console calls are not logged", file=sys.stderr)
        return None
    return calllog, CallLogWriter(calllog)


def _close_calllog(opened: tuple[CallLog, CallLogWriter] | None) -> None:
    if opened is not None:
        calllog, writer = opened
        writer.close()  # flushes
        calllog.close()


async def _until(awaitable: asyncio.Future[Any], stop: asyncio.Event) -> bool:
    """Wait for ``awaitable`` or ``stop``; True when ``stop`` came first."""
    stopper = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait({awaitable, stopper}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopper.cancel()
    return not awaitable.done()


async def run_console(settings: StasisSettings, stdin: TextIO | None = None, out: TextIO | None = None) -> int:
    """Calls until ``/quit``, end of input or SIGINT; returns the exit code."""
    stdin = stdin or sys.stdin
    out = out or sys.stdout
    loop = asyncio.get_running_loop()
    prompts = await asyncio.to_thread(HotPrompts.from_settings, settings, service=None)
    agent = await asyncio.to_thread(build_agent, settings)
    opened = await asyncio.to_thread(_open_calllog, settings)
    config: FlowConfig = flow_config(settings)
    reader = _StdinReader(stdin, loop)
    interactive = stdin.isatty()
    session = f"{int(time.time())}-{os.getpid()}"  # call ids unique across consoles and runs
    stop = asyncio.Event()
    handled = False
    try:
        loop.add_signal_handler(signal.SIGINT, stop.set)
        handled = True
    except (RuntimeError, ValueError):  # not the main thread
        pass
    try:
        first: str | None = None
        n = 0
        while True:
            n += 1
            line = ConsoleLine(f"console-{session}-{n}", reader, out, interactive=interactive, first=first)
            flow = CallFlow(line, prompts.current, agent, config, calllog=opened[1] if opened else None)
            hint = "; /new — новый звонок, /quit — выход" if interactive else ""
            out.write(f"— звонок {n} (промпты {prompts.current.short}){hint}\n")
            out.flush()
            task = asyncio.ensure_future(flow.run())
            if await _until(task, stop):
                task.cancel()  # the call ends politely (goodbye), then the console
                try:
                    await task
                except asyncio.CancelledError:
                    pass
                break
            if line.command in ("/quit", "eof"):
                break
            first = None
            if line.command == "/new":
                continue
            # The call ended by itself (goodbye, MAX_TURNS, silences): the next input starts a new one.
            if interactive:
                out.write(f"— звонок {n} завершён ({task.result()}); новая фраза начнёт звонок, /quit — выход\nвы> ")
                out.flush()
            following = asyncio.ensure_future(reader.next())
            if await _until(following, stop):
                following.cancel()
                break
            text = following.result()
            if text is None or text == "/quit":
                break
            if text != "/new":
                first = text
    finally:
        if handled:
            loop.remove_signal_handler(signal.SIGINT)
        await agent.aclose()
        await asyncio.to_thread(prompts.close)
        await asyncio.to_thread(_close_calllog, opened)
    return 0
