"""Bounded logging: what abusive clients make the panel log (protocol errors, refused connections) is rate-limited.

Without it, asyncio logged a traceback per failed ``accept()`` (about 50,000 in 6 s when descriptors ran out),
and uvicorn a warning per malformed request.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

__all__ = ["RateLimitFilter", "install_log_limits"]


class RateLimitFilter(logging.Filter):
    """At most ``burst`` records per ``period`` seconds from one logger and message template; a note
    with the number left out when the next window opens."""

    def __init__(self, *, burst: int = 10, period: float = 10.0, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__()
        self.burst = burst
        self.period = period
        self.clock = clock
        self._windows: dict[tuple[str, str], list[float | int]] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        key = (record.name, str(record.msg))
        now = self.clock()
        window = self._windows.get(key)
        if window is None or now - window[0] >= self.period:
            suppressed = int(window[2]) if window is not None else 0
            self._windows[key] = [now, 1, 0]
            if len(self._windows) > 1000:  # templates, not values: this stays small; never unbounded
                self._windows = {key: self._windows[key]}
            if suppressed:
                record.msg = f"{record.msg} ({suppressed} similar messages suppressed in the last {self.period:g}s)"
            return True
        window[1] += 1
        if window[1] <= self.burst:
            return True
        window[2] += 1
        return False


_LOG_LIMITED = ("asyncio", "uvicorn.error", "adminapi.server")


def install_log_limits() -> None:
    """Bound the log lines that clients can cause (protocol errors, failed ``accept()``) in this process."""
    for name in _LOG_LIMITED:
        log = logging.getLogger(name)
        if not any(isinstance(f, RateLimitFilter) for f in log.filters):
            log.addFilter(RateLimitFilter())
