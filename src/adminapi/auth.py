"""Operators' tokens: configured (``ADMIN_TOKEN``, ``ADMIN_TOKENS``) or generated once and kept in a 0600 file.

Every ``/api/*`` route and ``/metrics`` require ``Authorization: Bearer <token>``: 401 without one,
403 with a wrong one.  The name a token maps to is the author recorded in the prompts history.
"""

from __future__ import annotations

import contextlib
import hmac
import ipaddress
import logging
import os
import secrets
import tempfile
from dataclasses import dataclass
from pathlib import Path

from promptwatch import StartupError

from .settings import AdminSettings

__all__ = ["MIN_TOKEN_CHARS", "Operator", "TokenSet", "is_loopback", "load_tokens", "parse_bearer"]

MIN_TOKEN_CHARS = 16
"""A configured token has at least this many non-blank characters (``ADMIN_TOKENS``, and ``ADMIN_TOKEN``
when the panel listens beyond loopback)."""

logger = logging.getLogger("adminapi.auth")


@dataclass(frozen=True)
class Operator:
    """Who made a request: the name of the token it carried."""

    name: str


def is_loopback(host: str) -> bool:
    """True for ``localhost`` and loopback addresses (``127.0.0.0/8``, ``::1``)."""
    host = host.strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True)
class TokenSet:
    """The accepted tokens and their names; ``generated`` is set when the token was made by us."""

    tokens: dict[str, str]
    generated_file: Path | None = None

    def check(self, presented: str) -> Operator | None:
        """The operator a presented token belongs to, compared in constant time; None when unknown."""
        found: Operator | None = None
        raw = presented.encode()
        for token, name in self.tokens.items():
            if hmac.compare_digest(raw, token.encode()):
                found = Operator(name)
        return found

    def first(self) -> str:
        return next(iter(self.tokens))

    def shown(self) -> str:
        """The first token as it may be logged: its first 4 characters only."""
        return self.first()[:4] + "…"


def parse_bearer(authorization: str | None) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header; None when absent, empty or another scheme."""
    if not authorization:
        return None
    scheme, _, credentials = authorization.strip().partition(" ")
    if scheme.lower() != "bearer" or not credentials.strip():
        return None
    return credentials.strip()


def _strong(token: str) -> bool:
    return len("".join(token.split())) >= MIN_TOKEN_CHARS


def _parse_tokens(spec: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in spec.replace("\n", ",").split(","):
        item = item.strip()
        if not item:
            continue
        name, sep, token = item.partition("=")
        if not sep or not name.strip() or not _strong(token):
            raise StartupError(
                f"ADMIN_TOKENS: {item.split('=')[0]!r}: expected name=token with a token of "
                f"{MIN_TOKEN_CHARS}+ non-blank characters"
            )
        out[token.strip()] = name.strip()
    return out


def _read_or_create(path: Path) -> str:
    try:
        token = path.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        token = ""
    except OSError as e:
        raise StartupError(f"{path}: cannot read the admin token: {e.strerror}") from e
    if token:
        if os.stat(path).st_mode & 0o077:
            os.chmod(path, 0o600)
            logger.warning("%s was readable by others; mode set to 0600", path)
        return token
    token = secrets.token_urlsafe(32)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)  # mkstemp creates mode 0600
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                f.write(token + "\n")
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise
    except OSError as e:
        raise StartupError(f"{path}: cannot store the generated admin token: {e.strerror}") from e
    return token


def load_tokens(settings: AdminSettings) -> TokenSet:
    """The tokens to accept.  Refuses a non-loopback address when no token is configured."""
    tokens: dict[str, str] = {}
    exposed = not is_loopback(settings.admin_host)
    single = settings.admin_token.get_secret_value() if settings.admin_token is not None else ""
    if single.strip():
        if exposed and not _strong(single):
            raise StartupError(
                f"ADMIN_TOKEN: too weak for ADMIN_HOST={settings.admin_host} (not a loopback address): "
                f"use {MIN_TOKEN_CHARS}+ non-blank characters"
            )
        tokens[single.strip()] = settings.admin_token_name
    elif single and exposed:
        raise StartupError(f"ADMIN_TOKEN: blank, refused for ADMIN_HOST={settings.admin_host}")
    tokens.update(_parse_tokens(settings.admin_tokens))
    if tokens:
        return TokenSet(tokens)
    if exposed:
        raise StartupError(
            f"ADMIN_HOST={settings.admin_host} is not a loopback address: set ADMIN_TOKEN (or ADMIN_TOKENS) "
            "before exposing the admin panel"
        )
    return TokenSet(
        {_read_or_create(settings.token_file): settings.admin_token_name}, generated_file=settings.token_file
    )
