"""Journal-friendly logging: ``<N>`` priority prefixes only when stderr really is the journal stream."""

from __future__ import annotations

import io
import logging
import os
from collections.abc import Iterator
from pathlib import Path
from typing import TextIO

import pytest

from promptwatch.logs import JournalFormatter, setup_logging, stream_is_journal, syslog_priority


@pytest.fixture
def root_logger() -> Iterator[logging.Logger]:
    """setup_logging replaces the root handlers: put pytest's back afterwards."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield root
    for h in list(root.handlers):
        root.removeHandler(h)
    for h in handlers:
        root.addHandler(h)
    root.setLevel(level)


@pytest.fixture
def stream_file(tmp_path: Path) -> Iterator[TextIO]:
    with open(tmp_path / "stream.log", "w+", encoding="utf-8") as f:
        yield f


def journal_stream_of(f: TextIO) -> str:
    st = os.fstat(f.fileno())
    return f"{st.st_dev}:{st.st_ino}"


@pytest.mark.parametrize(
    ("level", "priority"),
    [(logging.CRITICAL, 2), (logging.ERROR, 3), (logging.WARNING, 4), (logging.INFO, 6), (logging.DEBUG, 7)],
)
def test_syslog_priority(level: int, priority: int) -> None:
    assert syslog_priority(level) == priority


def test_stream_is_journal(stream_file: TextIO, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("JOURNAL_STREAM", raising=False)
    assert stream_is_journal(stream_file) is False
    monkeypatch.setenv("JOURNAL_STREAM", journal_stream_of(stream_file))
    assert stream_is_journal(stream_file) is True
    with open(tmp_path / "other.log", "w") as other:
        assert stream_is_journal(other) is False  # a redirected stderr, while the variable is inherited
    assert stream_is_journal(io.StringIO()) is False  # no file descriptor
    monkeypatch.setenv("JOURNAL_STREAM", "garbage")
    assert stream_is_journal(stream_file) is False


def test_journal_lines_carry_priorities(
    stream_file: TextIO, monkeypatch: pytest.MonkeyPatch, root_logger: logging.Logger
) -> None:
    monkeypatch.setenv("JOURNAL_STREAM", journal_stream_of(stream_file))
    monkeypatch.delenv("LOG_LEVEL", raising=False)
    handler = setup_logging("INFO", stream=stream_file)
    assert isinstance(handler.formatter, JournalFormatter)
    log = logging.getLogger("promptwatch")
    log.info("prompts reloaded sha=ab12cd34 source=inotify bytes=4210 latency_ms=0.4")
    log.error("prompts rejected")
    log.debug("not shown")
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        log.exception("callback failed")
    handler.flush()
    stream_file.seek(0)
    lines = stream_file.read().splitlines()
    assert lines[0] == "<6>promptwatch: prompts reloaded sha=ab12cd34 source=inotify bytes=4210 latency_ms=0.4"
    assert lines[1] == "<3>promptwatch: prompts rejected"
    assert lines[2] == "<3>promptwatch: callback failed"
    assert all(line.startswith("<3>") for line in lines[3:])  # the traceback stays in the error record
    assert lines[-1] == "<3>RuntimeError: boom"


def test_terminal_lines_have_no_prefix(
    stream_file: TextIO, monkeypatch: pytest.MonkeyPatch, root_logger: logging.Logger
) -> None:
    monkeypatch.delenv("JOURNAL_STREAM", raising=False)
    monkeypatch.setenv("LOG_LEVEL", "WARNING")
    setup_logging("INFO", stream=stream_file)
    logging.getLogger("promptwatch").info("hidden by LOG_LEVEL")
    logging.getLogger("promptwatch").warning("prompts file is missing")
    stream_file.seek(0)
    [line] = stream_file.read().splitlines()
    assert not line.startswith("<")
    assert line.endswith("WARNING promptwatch: prompts file is missing")


def test_terminal_lines_name_the_service(root_logger: logging.Logger) -> None:
    stream = io.StringIO()
    setup_logging("INFO", stream=stream, service="metrotech-bot")
    logging.getLogger("promptwatch").info("prompts reloaded sha=%s", "ab12cd34")
    assert " INFO    metrotech-bot promptwatch: prompts reloaded sha=ab12cd34" in stream.getvalue()
