"""The part every OpenAI-compatible backend shares: one client, a timeout per attempt, one retry.

Timeouts, connection errors, 429 and 5xx are retried (``retries`` times); any other non-200 answer
is final.  Failures raise the backend's own :class:`~stasis.errors.BackendError` subclass, naming
the endpoint and the reason.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import httpx

from ..errors import BackendError

__all__ = ["OpenAiEndpoint"]

logger = logging.getLogger("stasis.backends")


class OpenAiEndpoint:
    """``POST``s to ``{base_url}{path}`` with retries; ``name`` (``llm http://…/v1``) names it in errors."""

    def __init__(
        self,
        kind: str,
        base_url: str,
        *,
        error: type[BackendError],
        api_key: str | None = None,
        timeout: float,
        retries: int = 1,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.name = f"{kind} {self.base_url}"
        self.error = error
        self.timeout = timeout
        self.retries = retries
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._client = httpx.AsyncClient(
            base_url=self.base_url, headers=headers, timeout=httpx.Timeout(timeout), transport=transport
        )

    async def post(self, path: str, **kwargs: Any) -> httpx.Response:
        """The 200 answer to ``POST path``, or raise ``self.error`` after the last attempt."""
        last = "no attempt"
        for attempt in range(self.retries + 1):
            if attempt:
                logger.warning("%s: %s; retrying", self.name, last)
            started = time.monotonic()
            try:
                async with asyncio.timeout(self.timeout):
                    response = await self._client.post(path, **kwargs)
            except (TimeoutError, httpx.TimeoutException):
                last = f"timed out after {time.monotonic() - started:.1f}s"
                continue
            except httpx.HTTPError as e:
                last = f"{type(e).__name__}: {e}"
                continue
            if response.status_code == 429 or response.status_code >= 500:
                last = f"HTTP {response.status_code}"
                continue
            if response.status_code != 200:
                raise self.error(self.name, f"HTTP {response.status_code}: {response.text[:200]}")
            return response
        tries = self.retries + 1
        raise self.error(self.name, f"{last} ({tries} attempt{'s' if tries > 1 else ''})")

    def unexpected(self, e: Exception) -> BackendError:
        """The error for a 200 answer whose body is not what the API documents."""
        return self.error(self.name, f"unexpected response ({type(e).__name__}: {e})")

    async def aclose(self) -> None:
        await self._client.aclose()
