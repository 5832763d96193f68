"""The ARI events WebSocket, kept connected: capped exponential backoff with jitter, 401 is fatal.

``EventStream.run()`` connects to ``ws://HOST/ari/events?app=APP&subscribeAll=false``, hands each
event (a dict) to ``on_event`` and reconnects whenever the socket drops or Asterisk is away.  Bad
credentials end :meth:`EventStream.run` with :class:`AriAuthError`: retrying cannot fix them.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import math
import random
from collections.abc import Callable
from typing import Any, Literal
from urllib.parse import urlencode

import orjson
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus

from ..errors import AriAuthError

__all__ = ["ConnectionState", "EventStream", "backoff_delay"]

logger = logging.getLogger("stasis.ari")

ConnectionState = Literal["connecting", "connected", "disconnected", "unauthorized"]


def backoff_delay(
    attempt: int, *, base: float = 0.5, cap: float = 30.0, rng: Callable[[], float] = random.random
) -> float:
    """Seconds before retry ``attempt`` (0-based): ``min(cap, base·2^attempt)``, jittered to 50–100 %."""
    delay = min(cap, math.ldexp(base, min(attempt, 32)))
    return delay / 2 + rng() * delay / 2


class EventStream:
    """One application's event stream.  ``state`` is the current :data:`ConnectionState`."""

    def __init__(
        self,
        ws_url: str,
        app: str,
        user: str,
        password: str,
        on_event: Callable[[dict[str, Any]], None],
        *,
        on_state: Callable[[ConnectionState], None] | None = None,
        base_delay: float = 0.5,
        max_delay: float = 30.0,
        open_timeout: float = 5.0,
    ) -> None:
        self.url = f"{ws_url}?{urlencode({'app': app, 'subscribeAll': 'false'})}"
        token = base64.b64encode(f"{user}:{password}".encode()).decode()
        self._headers = {"Authorization": f"Basic {token}"}
        self._on_event = on_event
        self._on_state = on_state
        self.base_delay = base_delay
        self.max_delay = max_delay
        self.open_timeout = open_timeout
        self.state: ConnectionState = "connecting"
        self.connects = 0
        self.last_error: str | None = None

    def _set_state(self, state: ConnectionState) -> None:
        if state != self.state:
            self.state = state
            if self._on_state is not None:
                self._on_state(state)

    async def run(self) -> None:
        """Connect and dispatch until cancelled; raise :class:`AriAuthError` on 401."""
        attempt = 0
        while True:
            try:
                async with connect(
                    self.url,
                    additional_headers=self._headers,
                    open_timeout=self.open_timeout,
                    ping_interval=20,
                    ping_timeout=20,
                    max_size=None,
                ) as ws:
                    attempt = 0
                    self.connects += 1
                    self.last_error = None
                    logger.info("ARI events connected %s", self.url)
                    self._set_state("connected")
                    async for message in ws:
                        self._dispatch(message)
                reason = "closed by Asterisk"
            except InvalidStatus as e:
                status = e.response.status_code
                if status == 401:
                    self._set_state("unauthorized")
                    self.last_error = "ARI credentials rejected (401)"
                    message = "Authentication required (check ARI_USER and ARI_PASSWORD)"
                    raise AriAuthError("GET", "/ari/events", 401, message) from e
                reason = f"HTTP {status}"
            except ConnectionClosed as e:
                reason = f"socket dropped ({e})"
            except (OSError, InvalidHandshake, TimeoutError) as e:
                reason = f"{type(e).__name__}: {e}"
            was_connected = self.state == "connected"
            self.last_error = reason
            self._set_state("disconnected")
            delay = backoff_delay(attempt, base=self.base_delay, cap=self.max_delay)
            attempt += 1
            log = logger.warning if was_connected or attempt == 1 else logger.info
            log("ARI events unavailable (%s); reconnecting in %.1fs (attempt %d)", reason, delay, attempt)
            await asyncio.sleep(delay)

    def _dispatch(self, message: str | bytes) -> None:
        try:
            event = orjson.loads(message)
        except orjson.JSONDecodeError:
            logger.warning("ARI sent a non-JSON event: %.200r", message)
            return
        if not isinstance(event, dict):
            return
        try:
            self._on_event(event)
        except Exception:
            logger.exception("handling ARI event %s failed", event.get("type"))
