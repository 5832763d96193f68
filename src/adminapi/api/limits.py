"""How large a request body each route accepts: declared once, enforced by :class:`~adminapi.api.guard.RequestGuard`.

A cap is on the bytes the client sends (``Content-Length`` or the sum of the chunks), before anything
is buffered or parsed.  The prompts document's cap is the document limit itself, so a document that
``promptwatch write`` accepts is accepted by ``PUT`` too: the panel stores the bytes it was sent.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = ["DEFAULT_BODY_BYTES", "MULTIPART_OVERHEAD", "PATCH_OVERHEAD", "PLAYGROUND_OVERHEAD", "BodyCaps"]

DEFAULT_BODY_BYTES = 64 * 1024
"""Any route not listed below (a rollback, a future small JSON body)."""
MULTIPART_OVERHEAD = 64 * 1024
"""Room for the multipart boundaries, headers and the ``name`` field around an uploaded file."""
PATCH_OVERHEAD = 8 * 1024
"""Room for ``{"value": …, "message": …}`` around one prompt (which is at most the document limit)."""
PLAYGROUND_OVERHEAD = 2 * 1024 * 1024
"""The phrase and up to 50 earlier utterances (4,000 characters each, JSON-escaped) besides the draft."""

_PATCH = re.compile(r"^/api/prompts/[^/]+$")


@dataclass(frozen=True)
class BodyCaps:
    """The body cap of each route, from the document and knowledge-base limits."""

    document_bytes: int
    kb_bytes: int

    def cap(self, method: str, path: str) -> int:
        """The largest body accepted for ``method path`` (in bytes)."""
        path = path.rstrip("/") or "/"
        if path == "/api/prompts" and method in ("PUT", "POST"):
            return self.document_bytes
        if method == "PATCH" and _PATCH.match(path):
            return self.document_bytes + PATCH_OVERHEAD
        if path == "/api/playground" and method == "POST":
            return self.document_bytes + PLAYGROUND_OVERHEAD
        if path == "/api/kb" and method == "POST":
            return self.kb_bytes + MULTIPART_OVERHEAD
        return DEFAULT_BODY_BYTES
