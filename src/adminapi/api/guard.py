"""The first thing a request with a body meets: the token, then the body's size and time, then the app.

A pure ASGI middleware, so it answers before anything calls ``receive()``: a request to a protected
path without a valid token gets its 401/403 before one byte of the body is read (nothing is buffered,
no multipart part is spooled to disk), and a body over its route's cap (:class:`~adminapi.api.limits.BodyCaps`)
gets 413 as soon as its ``Content-Length`` — or, chunked, its running total — says so.  Accepted bodies
are read whole (they are at most the cap) within ``body_timeout`` and replayed to the app.

Refusals carry ``Connection: close``: the server then stops reading after a bounded drain
(see :mod:`adminapi.server`), instead of discarding an endless body on a kept-alive connection.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import anyio
from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..auth import TokenSet, parse_bearer
from .limits import BodyCaps
from .problems import STATUS, Code, problem_body

__all__ = ["PROTECTED_PREFIXES", "RequestGuard", "is_protected"]

PROTECTED_PREFIXES = ("/api/", "/metrics")
"""Paths that need the bearer token (the routes check it too, for requests without a body)."""


def is_protected(path: str) -> bool:
    return path.startswith(PROTECTED_PREFIXES) or path == "/api"


class _TooLarge(Exception):
    pass


class _Disconnected(Exception):
    pass


def _has_body(headers: Headers) -> bool:
    return "transfer-encoding" in headers or headers.get("content-length", "0") not in ("", "0")


async def _read_body(receive: Receive, cap: int) -> bytes:
    body = bytearray()
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise _Disconnected
        body += message.get("body", b"")
        if len(body) > cap:
            raise _TooLarge
        if not message.get("more_body", False):
            return bytes(body)


def _replay(body: bytes, receive: Receive) -> Callable[[], Awaitable[Message]]:
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()  # after the body: the disconnect, when it comes

    return replay


async def refuse(send: Send, code: Code, detail: str, *, headers: list[tuple[bytes, bytes]] | None = None) -> None:
    """Answer with a :class:`~adminapi.api.problems.Problem` and close the connection after it."""
    body = problem_body(code, detail)
    await send(
        {
            "type": "http.response.start",
            "status": STATUS[code],
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"connection", b"close"),
                *(headers or []),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


class RequestGuard:
    """Token first, then a capped and timed body, for every request that has a body."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        tokens: TokenSet,
        caps: BodyCaps,
        body_timeout: float,
        on_too_large: Callable[[str, str], None] | None = None,
    ) -> None:
        self.app = app
        self.tokens = tokens
        self.caps = caps
        self.body_timeout = body_timeout
        self.on_too_large = on_too_large
        """Called with the method and path of each body refused for its size (the metrics count them)."""

    async def _too_large(self, send: Send, method: str, path: str, detail: str) -> None:
        if self.on_too_large is not None:
            self.on_too_large(method, path)
        await refuse(send, Code.TOO_LARGE, detail)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        if not _has_body(headers):
            await self.app(scope, receive, send)
            return
        method, path = scope["method"], scope["path"]
        if is_protected(path):
            token = parse_bearer(headers.get("authorization"))
            if token is None:
                await refuse(send, Code.TOKEN_REQUIRED, "a bearer token is required",
                             headers=[(b"www-authenticate", b"Bearer")])  # fmt: skip
                return
            if self.tokens.check(token) is None:
                await refuse(send, Code.WRONG_TOKEN, "wrong token")
                return
        cap = self.caps.cap(method, path)
        declared = headers.get("content-length", "")
        if declared.isdigit() and int(declared) > cap:
            await self._too_large(send, method, path, f"the body is {int(declared)} bytes, the limit is {cap}")
            return
        try:
            with anyio.fail_after(self.body_timeout):
                body = await _read_body(receive, cap)
        except _TooLarge:
            await self._too_large(send, method, path, f"the body is over the limit of {cap} bytes")
            return
        except TimeoutError:
            await refuse(send, Code.BODY_TIMEOUT, f"the body did not arrive within {self.body_timeout:g} s")
            return
        except _Disconnected:
            return
        await self.app(scope, _replay(body, receive), send)
