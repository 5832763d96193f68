"""sd_notify(3) in plain Python: readiness, status, reload and watchdog messages to systemd.

:func:`notify` returns False when ``NOTIFY_SOCKET`` is unset (not under systemd), handles the ``@``
abstract-namespace prefix, and raises when the socket is set but unusable: a misconfiguration
must be seen, not swallowed.
"""

from __future__ import annotations

import os
import socket
import time

__all__ = ["notify", "notify_reloading", "watchdog_interval"]


def notify(state: str, *, unset_environment: bool = False) -> bool:
    """Send ``state`` (``READY=1``, ``STATUS=…``, ``WATCHDOG=1``, several joined by newlines)."""
    address = os.environ.get("NOTIFY_SOCKET")
    if unset_environment:
        os.environ.pop("NOTIFY_SOCKET", None)
    if not address:
        return False
    if address[0] == "@":
        address = "\0" + address[1:]
    elif address[0] != "/":
        raise ValueError(f"NOTIFY_SOCKET={address!r}: not an absolute path or abstract socket name")
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
        sock.connect(address)
        sock.sendall(state.encode())
    return True


def notify_reloading() -> bool:
    """``RELOADING=1`` with ``MONOTONIC_USEC`` (as systemd 253+ requires; harmless on 252)."""
    usec = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
    return notify(f"RELOADING=1\nMONOTONIC_USEC={usec}")


def watchdog_interval() -> float | None:
    """Seconds between ``WATCHDOG=1`` pings (half of ``WATCHDOG_USEC``), or None when not asked."""
    usec = os.environ.get("WATCHDOG_USEC")
    pid = os.environ.get("WATCHDOG_PID")
    if not usec:
        return None
    if pid and pid != str(os.getpid()):
        return None
    try:
        value = int(usec)
    except ValueError:
        return None
    return value / 2_000_000 if value > 0 else None
