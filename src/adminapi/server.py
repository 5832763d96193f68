"""uvicorn as the panel runs it: bounded header time, bounded connections, a clean close after a refusal.

uvicorn alone waits forever for the headers of a new connection (its keep-alive timeout only starts
after a first response), accepts connections until the process runs out of file descriptors (then
asyncio logs a traceback per failed ``accept()``), and closes a ``Connection: close`` answer at once
even when the client is still sending its body — the kernel then resets the connection and the client
may never see the 413 or 401.  :class:`GuardedH11Protocol` adds:

- a **header deadline**: a connection gets ``header_timeout`` seconds from the moment it can send a
  request (accepted, or its previous response sent) until that request's headers are complete;
  drip-feeding does not extend it;
- a **connection cap** (``max_connections``, kept below ``RLIMIT_NOFILE``): a new connection beyond it
  drops the connection that has waited longest for its headers (or itself, when all are busy), so
  slow clients cannot starve the others and ``accept()`` never fails for want of descriptors;
- a **lingering close**: when the answer is complete but the request body is not, the response is
  flushed, our side is shut down (FIN) and what still arrives is discarded — up to ``linger_bytes``
  or ``linger_seconds`` — before the socket is closed, so the client reads the answer, not a reset.

Log lines that clients can cause are rate-limited (:mod:`adminapi.ratelimit`).
"""

from __future__ import annotations

import asyncio
import logging
import resource
import time
from dataclasses import dataclass
from typing import Any, ClassVar

import h11
import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol

from .ratelimit import install_log_limits
from .settings import AdminSettings

__all__ = ["GuardedH11Protocol", "ServerLimits", "protocol_class", "server_config"]

logger = logging.getLogger("adminapi.server")

FD_RESERVE = 128
"""Descriptors kept free for everything but client connections: databases, watchers, files being read."""


@dataclass(frozen=True)
class ServerLimits:
    header_timeout: float = 10.0
    max_connections: int = 512
    linger_seconds: float = 5.0
    linger_bytes: int = 16 * 1024 * 1024

    @classmethod
    def from_settings(cls, settings: AdminSettings) -> ServerLimits:
        soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        cap = settings.admin_max_connections
        if soft != resource.RLIM_INFINITY:
            cap = max(8, min(cap, soft - FD_RESERVE))
        return cls(header_timeout=settings.admin_header_timeout, max_connections=cap)


class _Transport(asyncio.Transport):
    """The socket transport as uvicorn sees it: ``close()`` lingers while the client is still sending."""

    def __init__(self, real: asyncio.Transport, protocol: GuardedH11Protocol) -> None:
        super().__init__()
        self.real = real
        self._protocol = protocol

    def close(self) -> None:
        if not self._protocol.linger():
            self.real.close()

    def is_closing(self) -> bool:
        return self.real.is_closing() or self._protocol.lingering

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.real.write(data)

    def writelines(self, list_of_data: Any) -> None:
        self.real.writelines(list_of_data)

    def write_eof(self) -> None:
        self.real.write_eof()

    def can_write_eof(self) -> bool:
        return self.real.can_write_eof()

    def abort(self) -> None:
        self.real.abort()

    def pause_reading(self) -> None:
        self.real.pause_reading()

    def resume_reading(self) -> None:
        self.real.resume_reading()

    def is_reading(self) -> bool:
        return self.real.is_reading()

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return self.real.get_extra_info(name, default)

    def set_protocol(self, protocol: asyncio.BaseProtocol) -> None:
        self._protocol.upgraded = True  # a WebSocket took over: its closes are its own
        self.real.set_protocol(protocol)

    def get_protocol(self) -> asyncio.BaseProtocol:
        return self.real.get_protocol()

    def get_write_buffer_size(self) -> int:
        return self.real.get_write_buffer_size()

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        self.real.set_write_buffer_limits(high, low)

    def get_write_buffer_limits(self) -> tuple[int, int]:
        return self.real.get_write_buffer_limits()


class GuardedH11Protocol(H11Protocol):
    """uvicorn's h11 protocol with a header deadline, a connection cap and a lingering close."""

    limits: ClassVar[ServerLimits] = ServerLimits()

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        self.real_transport = transport
        self.opened = time.monotonic()
        self.lingering = False
        self.upgraded = False
        self.dropped = False
        self._linger_left = 0
        self._header_timer: asyncio.TimerHandle | None = None
        self._linger_timer: asyncio.TimerHandle | None = None
        super().connection_made(_Transport(transport, self))
        self._watch_headers()
        self._enforce_cap()

    # -- the header deadline ------------------------------------------------------------------------

    def _waiting_for_headers(self) -> bool:
        return not self.lingering and not self.upgraded and self.conn.their_state is h11.IDLE

    def _watch_headers(self) -> None:
        if self._waiting_for_headers():
            if self._header_timer is None and not self.real_transport.is_closing():
                self._header_timer = self.loop.call_later(self.limits.header_timeout, self._header_timeout)
        elif self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _header_timeout(self) -> None:
        self._header_timer = None
        if self._waiting_for_headers() and not self.real_transport.is_closing():
            logger.debug("closing a connection from %s: no complete request headers within %gs",
                         self.client, self.limits.header_timeout)  # fmt: skip
            self.real_transport.close()

    def data_received(self, data: bytes) -> None:
        if self.lingering:
            self._linger_left -= len(data)
            if self._linger_left <= 0:
                self.real_transport.close()
            return
        super().data_received(data)
        self._watch_headers()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        self._watch_headers()

    # -- the connection cap -------------------------------------------------------------------------

    def _enforce_cap(self) -> None:
        if len(self.connections) <= self.limits.max_connections:
            return
        waiting = [
            c
            for c in self.connections
            if isinstance(c, GuardedH11Protocol) and not c.dropped and (c.lingering or c._waiting_for_headers())
        ]
        victim = min(waiting, key=lambda c: (not c.lingering, c.opened), default=self)
        victim.drop()

    def drop(self) -> None:
        self.dropped = True
        self.real_transport.abort()

    # -- the lingering close ------------------------------------------------------------------------

    def linger(self) -> bool:
        """Called instead of closing: True when the close is deferred because the client is still sending."""
        if self.lingering:
            return True
        if self.upgraded or self.dropped or self.conn.their_state is not h11.SEND_BODY:
            return False
        if self.real_transport.is_closing() or not self.real_transport.can_write_eof():
            return False
        self.lingering = True
        self._watch_headers()
        self._linger_left = self.limits.linger_bytes
        self.real_transport.write_eof()  # the answer is flushed first, then our FIN
        self.real_transport.resume_reading()
        self._linger_timer = self.loop.call_later(self.limits.linger_seconds, self.real_transport.close)
        return True

    def eof_received(self) -> None:
        if self.lingering:
            self.real_transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self.lingering = False
        self.dropped = True  # nothing to linger for any more: closes go straight through
        for timer in (self._header_timer, self._linger_timer):
            if timer is not None:
                timer.cancel()
        self._header_timer = self._linger_timer = None
        super().connection_lost(exc)

    def shutdown(self) -> None:
        if self.lingering:
            self.real_transport.close()
            return
        self.dropped = True
        super().shutdown()


def protocol_class(limits: ServerLimits) -> type[GuardedH11Protocol]:
    """A :class:`GuardedH11Protocol` bound to ``limits`` (uvicorn builds protocols from a class)."""
    return type("GuardedH11Protocol", (GuardedH11Protocol,), {"limits": limits})


def server_config(app: Any, settings: AdminSettings, **overrides: Any) -> uvicorn.Config:
    """The uvicorn configuration of the panel (used by ``adminapi`` and by the tests)."""
    limits = ServerLimits.from_settings(settings)
    options: dict[str, Any] = {
        "host": settings.admin_host,
        "port": settings.admin_port,
        "http": protocol_class(limits),
        "log_config": None,
        "access_log": False,
        "timeout_keep_alive": 5,
        "timeout_graceful_shutdown": 10,
        "proxy_headers": False,
        # Beyond this many connections or running requests, uvicorn answers 503 at once.
        "limit_concurrency": limits.max_connections + 16,
        "backlog": 1024,
        **overrides,
    }
    install_log_limits()
    return uvicorn.Config(app, **options)
