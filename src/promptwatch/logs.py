"""Logging that reads well in ``journalctl``: one line per event, syslog priority prefixes.

When stderr is connected to the journal (``JOURNAL_STREAM`` names its device and inode, see
systemd.exec(5)), each line starts with ``<N>`` so that ``journalctl -p err`` shows only errors and
the journal supplies the timestamp.  On a terminal, lines carry their own time and level.
"""

from __future__ import annotations

import logging
import os
import sys
from typing import TextIO

__all__ = ["JournalFormatter", "setup_logging", "stream_is_journal", "syslog_priority"]


def syslog_priority(levelno: int) -> int:
    """Python level → syslog priority (``<3>`` err, ``<4>`` warning, ``<6>`` info, ``<7>`` debug)."""
    if levelno >= logging.CRITICAL:
        return 2
    if levelno >= logging.ERROR:
        return 3
    if levelno >= logging.WARNING:
        return 4
    if levelno >= logging.INFO:
        return 6
    return 7


def stream_is_journal(stream: TextIO) -> bool:
    """True when ``stream`` is the journal stream systemd connected (``JOURNAL_STREAM=dev:ino``)."""
    env = os.environ.get("JOURNAL_STREAM")
    if not env:
        return False
    try:
        dev, ino = (int(x) for x in env.split(":"))
        st = os.fstat(stream.fileno())
    except (ValueError, OSError, AttributeError):
        return False
    return (st.st_dev, st.st_ino) == (dev, ino)


class JournalFormatter(logging.Formatter):
    """``<N>logger: message`` for the journal; exception tracebacks stay in the same record."""

    def __init__(self) -> None:
        super().__init__("%(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        prefix = f"<{syslog_priority(record.levelno)}>"
        return "\n".join(prefix + line for line in text.splitlines())


def setup_logging(
    level: str | int = "INFO", stream: TextIO | None = None, *, service: str | None = None
) -> logging.Handler:
    """Configure the root logger for a service or the CLI; returns the installed handler.

    On a terminal every line names ``service`` (``metrotech-bot``, ``adminapi``…), so the lines of
    two processes sharing one terminal (``make run``) tell whose they are.  In the journal the unit
    already names it.
    """
    stream = stream or sys.stderr
    handler = logging.StreamHandler(stream)
    if stream_is_journal(stream):
        handler.setFormatter(JournalFormatter())
    else:
        who = service.replace("%", "%%") + " " if service else ""
        handler.setFormatter(logging.Formatter(f"%(asctime)s %(levelname)-7s {who}%(name)s: %(message)s"))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(os.environ.get("LOG_LEVEL", level) if isinstance(level, str) else level)
    return handler
