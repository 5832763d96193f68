"""Run an ASGI app on loopback in a thread of its own (uvicorn), so tests stay plain functions."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, TypeVar

import uvicorn

T = TypeVar("T")


class ServerThread:
    """``start()`` serves ``app`` on 127.0.0.1 (a free port, or ``port``); ``stop()`` joins the thread."""

    def __init__(self, app: Any, *, port: int = 0) -> None:
        self.app = app
        self.port = port
        self.loop: asyncio.AbstractEventLoop | None = None
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self.before_stop: Callable[[], Awaitable[None]] | None = None

    @property
    def running(self) -> bool:
        return self._thread is not None

    def start(self) -> None:
        config = uvicorn.Config(
            self.app,
            host="127.0.0.1",
            port=self.port,
            ws="websockets-sansio",
            lifespan="off",
            log_level="warning",
            timeout_graceful_shutdown=0.5,
        )
        self._server = uvicorn.Server(config)
        started = threading.Event()
        failure: list[BaseException] = []

        def run() -> None:
            loop = asyncio.new_event_loop()
            self.loop = loop
            try:
                loop.run_until_complete(self._serve(started))
            except BaseException as e:  # reported to start()
                failure.append(e)
                started.set()
            finally:
                loop.run_until_complete(loop.shutdown_asyncgens())
                loop.close()

        self._thread = threading.Thread(target=run, name="test-server", daemon=True)
        self._thread.start()
        if not started.wait(10) or failure:
            raise RuntimeError(f"test server did not start: {failure!r}")

    async def _serve(self, started: threading.Event) -> None:
        assert self._server is not None
        task = asyncio.ensure_future(self._server.serve())
        while not self._server.started:
            if task.done():
                task.result()
                raise RuntimeError("server exited at startup")
            await asyncio.sleep(0.005)
        self.port = self._server.servers[0].sockets[0].getsockname()[1]
        started.set()
        await task

    def call(self, coro: Coroutine[Any, Any, T], timeout: float = 10) -> T:
        """Run ``coro`` in the server's loop and return its result."""
        assert self.loop is not None
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def stop(self) -> None:
        if self._thread is None or self._server is None:
            return
        if self.before_stop is not None and self.loop is not None:
            self.call(self.before_stop())
        self._server.should_exit = True
        self._thread.join(15)
        self._thread = None
        self._server = None
