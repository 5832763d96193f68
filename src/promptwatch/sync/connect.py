"""Redis clients from one URL: ``redis://``, ``rediss://`` (TLS), ``unix://``, or Sentinel.

``redis+sentinel://[user:password@]host:port[,host:port…]/service_name[/db]`` asks the sentinels for
the current primary of ``service_name``; after a failover the next command that fails reconnects to
the new primary (redis-py's ``SentinelConnectionPool``).  ``rediss+sentinel://`` uses TLS to the data
nodes.  The user and password of the URL authenticate to the data nodes (the sentinels are asked without).

Both the blocking client (the sync agent, the CLI) and ``redis.asyncio`` (the panel) are built here,
from the same parsed URL, so that the timeouts and the Sentinel rules are declared once.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote, urlsplit

import redis
import redis.asyncio
import redis.asyncio.sentinel
import redis.sentinel

__all__ = ["RedisTarget", "RedisUrlError", "async_client", "client", "parse_url", "redact"]

CONNECT_TIMEOUT = 1.0
"""Seconds to open a connection: a host whose Redis is down notices within this."""
COMMAND_TIMEOUT = 2.0
"""Seconds for one ordinary command; a blocking read adds its own block time."""


class RedisUrlError(ValueError):
    """``PROMPTS_REDIS_URL`` cannot be used; the message names the part."""


@dataclass(frozen=True)
class RedisTarget:
    """A parsed ``PROMPTS_REDIS_URL``."""

    url: str
    sentinels: tuple[tuple[str, int], ...] = ()
    service: str = ""
    db: int = 0
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    tls: bool = False

    @property
    def is_sentinel(self) -> bool:
        return bool(self.sentinels)


def redact(url: str) -> str:
    """The URL without its password, for logs and the status."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    user = parts.username or ""
    host = parts.netloc.rsplit("@", 1)[1]
    return parts._replace(netloc=f"{user}:***@{host}").geturl()


def parse_url(url: str) -> RedisTarget:
    """Check ``url`` and split a Sentinel URL into its parts (other schemes go to redis-py as they are)."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme in {"redis", "rediss", "unix"}:
        try:
            redis.connection.parse_url(url)  # type: ignore[no-untyped-call]
        except ValueError as e:
            raise RedisUrlError(f"PROMPTS_REDIS_URL={redact(url)}: {e}") from None
        return RedisTarget(url=url, tls=scheme == "rediss")
    if scheme not in {"redis+sentinel", "rediss+sentinel"}:
        raise RedisUrlError(
            f"PROMPTS_REDIS_URL={redact(url)}: the scheme must be redis://, rediss://, unix:// or redis+sentinel://"
        )
    hosts = parts.netloc.rsplit("@", 1)[-1]
    sentinels: list[tuple[str, int]] = []
    for item in hosts.split(","):
        host, _, port = item.strip().rpartition(":")
        if not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise RedisUrlError(f"PROMPTS_REDIS_URL={redact(url)}: {item!r} is not host:port")
        sentinels.append((host.strip("[]"), int(port)))
    path = [p for p in parts.path.split("/") if p]
    if not path:
        raise RedisUrlError(f"PROMPTS_REDIS_URL={redact(url)}: the service name is missing (…/service_name)")
    db = 0
    if len(path) > 1:
        if not path[1].isdigit():
            raise RedisUrlError(f"PROMPTS_REDIS_URL={redact(url)}: {path[1]!r} is not a database number")
        db = int(path[1])
    # urlsplit's username/password do not cope with the comma-separated host list: split by hand.
    creds = parts.netloc.rsplit("@", 1)[0] if "@" in parts.netloc else ""
    user, _, password = creds.partition(":")
    return RedisTarget(
        url=url,
        sentinels=tuple(sentinels),
        service=unquote(path[0]),
        db=db,
        username=unquote(user) or None,
        password=unquote(password) or None,
        tls=scheme.startswith("rediss"),
    )


def _options(block: float) -> dict[str, Any]:
    return {
        "socket_connect_timeout": CONNECT_TIMEOUT,
        "socket_timeout": COMMAND_TIMEOUT + block,
        "retry_on_timeout": False,
    }


def _auth(target: RedisTarget) -> dict[str, Any]:
    auth: dict[str, Any] = {"username": target.username, "password": target.password}
    if target.tls:
        auth["ssl"] = True
    return auth


def client(target: RedisTarget, *, block: float = 0.0) -> redis.Redis:
    """A blocking client (thread-safe connection pool); ``block``: the longest blocking read it makes."""
    if target.is_sentinel:
        sentinel = redis.sentinel.Sentinel(  # type: ignore[no-untyped-call]
            list(target.sentinels),
            sentinel_kwargs=_options(0.0),
            db=target.db,
            **_options(block),
            **_auth(target),
        )
        primary: redis.Redis = sentinel.master_for(target.service)  # type: ignore[no-untyped-call]
        return primary
    return redis.Redis.from_url(target.url, **_options(block))


def async_client(target: RedisTarget) -> redis.asyncio.Redis:
    """A ``redis.asyncio`` client for the panel's event loop."""
    if target.is_sentinel:
        sentinel = redis.asyncio.sentinel.Sentinel(  # type: ignore[no-untyped-call]
            list(target.sentinels),
            sentinel_kwargs=_options(0.0),
            db=target.db,
            **_options(0.0),
            **_auth(target),
        )
        aprimary: redis.asyncio.Redis = sentinel.master_for(target.service)
        return aprimary
    return redis.asyncio.Redis.from_url(target.url, **_options(0.0))
