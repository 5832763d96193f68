"""Refuse an oversized knowledge-base upload from its ``Content-Length``, before the body is received."""

from __future__ import annotations

import orjson
from starlette.types import ASGIApp, Receive, Scope, Send

__all__ = ["UploadLimit"]

MULTIPART_OVERHEAD = 64 * 1024
"""Room for the multipart boundaries and headers around the file itself."""


class UploadLimit:
    """413 for ``POST /api/kb`` whose declared length exceeds ``max_bytes`` plus the multipart overhead."""

    def __init__(self, app: ASGIApp, *, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "POST" and scope["path"].rstrip("/") == "/api/kb":
            declared = dict(scope["headers"]).get(b"content-length", b"")
            if declared.isdigit() and int(declared) > self.max_bytes + MULTIPART_OVERHEAD:
                body = orjson.dumps(
                    {"code": "too_large", "detail": f"upload of {int(declared)} bytes, the limit is {self.max_bytes}",
                     "errors": [], "current_sha256": None}
                )  # fmt: skip
                headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
                await send({"type": "http.response.start", "status": 413, "headers": headers})
                await send({"type": "http.response.body", "body": body})
                return
        await self.app(scope, receive, send)
