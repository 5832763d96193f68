from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import pytest

from stasis.calllog import ADDED_COLUMNS, SCHEMA_VERSION, CallLog, CallLogWriter, Turn


@pytest.fixture
def calllog(tmp_path: Path) -> CallLog:
    log = CallLog(tmp_path / "var" / "calls.sqlite3")
    yield log  # type: ignore[misc]
    log.close()


def _call(log: CallLog, call_id: str, *, started_at: float, number: str = "79001234567", name: str = "Иван") -> None:
    log.start_call(call_id, caller_number=number, caller_name=name, started_at=started_at, prompts_sha256="ab" * 32)


def test_schema_is_wal_and_versioned(calllog: CallLog) -> None:
    db = sqlite3.connect(calllog.path)
    try:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION == 2
    finally:
        db.close()


def test_a_call_with_turns_round_trips(calllog: CallLog) -> None:
    _call(calllog, "1795275311.1", started_at=100.0)
    calllog.answer_call("1795275311.1", 100.5)
    calllog.add_turn(
        "1795275311.1",
        Turn(
            idx=0,
            started_at=101.0,
            caller_text="сколько стоит тариф?",
            bot_text="500 рублей",
            stt_ms=120.0,
            llm_ms=30.5,
            tts_ms=80.0,
        ),
    )
    calllog.add_turn("1795275311.1", Turn(idx=1, started_at=105.0, error="stt timeout"))
    calllog.end_call("1795275311.1", ended_at=110.0, end_reason="goodbye")

    call = calllog.get_call("1795275311.1")
    assert call is not None
    assert (call.caller_name, call.answered_at, call.end_reason, call.turn_count) == ("Иван", 100.5, "goodbye", 2)
    assert call.duration == 10.0
    assert [t.caller_text for t in call.turns] == ["сколько стоит тариф?", ""]
    assert call.turns[1].error == "stt timeout"
    assert calllog.get_call("missing") is None


def test_list_is_newest_first_paginated_and_filtered(calllog: CallLog) -> None:
    for i in range(5):
        _call(calllog, f"c{i}", started_at=100.0 + i, number=f"7900000000{i}", name="Пётр" if i % 2 else "Анна")
    calls, total = calllog.list_calls(limit=2)
    assert total == 5 and [c.id for c in calls] == ["c4", "c3"]
    calls, total = calllog.list_calls(limit=2, offset=4)
    assert total == 5 and [c.id for c in calls] == ["c0"]
    assert calllog.list_calls(caller="Пётр")[1] == 2
    assert [c.id for c in calllog.list_calls(caller="79000000002")[0]] == ["c2"]
    assert [c.id for c in calllog.list_calls(since=101.0, until=103.0)[0]] == ["c2", "c1"]


def test_reader_before_any_call_sees_an_empty_log_then_the_calls(tmp_path: Path) -> None:
    path = tmp_path / "calls.sqlite3"
    reader = CallLog(path, readonly=True)
    assert reader.list_calls() == ([], 0)
    assert not path.exists()
    writer = CallLog(path)
    _call(writer, "x", started_at=1.0)
    assert reader.list_calls()[1] == 1
    reader.close()
    writer.close()


def test_background_writer_never_blocks_and_flushes_on_close(calllog: CallLog) -> None:
    writer = CallLogWriter(calllog)
    gate = threading.Event()
    writer._submit(lambda: gate.wait(10))  # the disk is slow
    _call_kwargs = {"caller_number": "1", "caller_name": "", "started_at": 1.0, "prompts_sha256": "s"}
    writer.start_call("slow", **_call_kwargs)  # returns at once although the writer thread is stuck
    writer.end_call("slow", ended_at=2.0, end_reason="hangup")
    assert calllog.get_call("slow") is None
    gate.set()
    writer.close()
    call = calllog.get_call("slow")
    assert call is not None and call.end_reason == "hangup"


def test_background_writer_survives_a_failed_write(calllog: CallLog, caplog: pytest.LogCaptureFixture) -> None:
    writer = CallLogWriter(calllog)
    writer.add_turn("no-such-call", Turn(idx=0, started_at=1.0))  # violates the foreign key
    writer.start_call("ok", caller_number="1", caller_name="", started_at=1.0, prompts_sha256="s")
    assert writer.flush()
    writer.close()
    assert calllog.get_call("ok") is not None
    assert "call log write failed call=no-such-call" in caplog.text


def test_filter_by_end_reason_and_by_an_error(calllog: CallLog) -> None:
    _call(calllog, "ok", started_at=1.0)
    calllog.end_call("ok", ended_at=2.0, end_reason="goodbye")
    _call(calllog, "turn-error", started_at=3.0)
    calllog.add_turn("turn-error", Turn(0, 3.5, caller_text="Алло?", error="LLM timeout"))
    calllog.end_call("turn-error", ended_at=4.0, end_reason="caller_hangup")
    _call(calllog, "ended-error", started_at=5.0)
    calllog.end_call("ended-error", ended_at=6.0, end_reason="error")
    everything, total = calllog.list_calls()
    assert total == 3 and {c.id: c.had_error for c in everything} == {
        "ok": False,
        "turn-error": True,
        "ended-error": True,
    }
    assert [c.id for c in calllog.list_calls(end_reason="goodbye")[0]] == ["ok"]
    assert [c.id for c in calllog.list_calls(had_error=True)[0]] == ["ended-error", "turn-error"]
    assert [c.id for c in calllog.list_calls(had_error=False)[0]] == ["ok"]
    assert calllog.list_calls(end_reason="caller_hangup", had_error=True)[1] == 1
    detail = calllog.get_call("turn-error")
    assert detail is not None and detail.had_error and detail.turns[0].error == "LLM timeout"


# The call log as version 1 created it (before console calls were marked).
VERSION_1 = """
CREATE TABLE calls (
    id TEXT PRIMARY KEY, caller_number TEXT NOT NULL DEFAULT '', caller_name TEXT NOT NULL DEFAULT '',
    started_at REAL NOT NULL, answered_at REAL, ended_at REAL, end_reason TEXT, prompts_sha256 TEXT NOT NULL,
    turn_count INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX calls_started ON calls (started_at DESC);
CREATE INDEX calls_caller ON calls (caller_number);
CREATE TABLE turns (
    call_id TEXT NOT NULL REFERENCES calls (id) ON DELETE CASCADE, idx INTEGER NOT NULL, started_at REAL NOT NULL,
    caller_text TEXT NOT NULL DEFAULT '', bot_text TEXT NOT NULL DEFAULT '', stt_ms REAL, llm_ms REAL, tts_ms REAL,
    error TEXT, PRIMARY KEY (call_id, idx)
);
INSERT INTO calls (id, caller_number, caller_name, started_at, prompts_sha256, turn_count, end_reason)
    VALUES ('old-1', '79001234567', 'Иван', 100.0, 'ab', 1, 'goodbye');
INSERT INTO turns (call_id, idx, started_at, caller_text, bot_text) VALUES ('old-1', 0, 101.0, 'Алло', 'Здравствуйте');
PRAGMA user_version = 1;
"""


def columns(path: Path, table: str = "calls") -> list[str]:
    db = sqlite3.connect(path)
    try:
        return [r[1] for r in db.execute(f"PRAGMA table_info({table})")]
    finally:
        db.close()


def user_version(path: Path) -> int:
    db = sqlite3.connect(path)
    try:
        return int(db.execute("PRAGMA user_version").fetchone()[0])
    finally:
        db.close()


def test_every_added_column_is_in_a_new_log(calllog: CallLog) -> None:
    assert {c.name for c in ADDED_COLUMNS if c.table == "calls"} <= set(columns(calllog.path))
    _call(calllog, "ari-1", started_at=1.0)
    calllog.start_call("console-1", caller_number="console", caller_name="console", started_at=2.0,
                       prompts_sha256="ab", console=True)  # fmt: skip
    calls, _ = calllog.list_calls()
    assert [(c.id, c.console) for c in calls] == [("console-1", True), ("ari-1", False)]
    detail = calllog.get_call("console-1")
    assert detail is not None and detail.console is True


def test_a_version_1_log_is_migrated_when_a_writer_opens_it(tmp_path: Path) -> None:
    path = tmp_path / "calls.sqlite3"
    db = sqlite3.connect(path)
    db.executescript(VERSION_1)
    db.close()

    # the panel reads it before the bot was upgraded: nothing is altered, the new field has its default
    reader = CallLog(path, readonly=True)
    (old,), total = reader.list_calls()
    assert total == 1 and (old.id, old.console, old.turn_count) == ("old-1", False, 1)
    assert "console" not in columns(path) and user_version(path) == 1

    writer = CallLog(path)  # the upgraded bot (or a console) opens it: the column is added in place
    assert columns(path)[-1] == "console" and user_version(path) == SCHEMA_VERSION
    writer.start_call("new-1", caller_number="console", caller_name="console", started_at=200.0,
                      prompts_sha256="cd", console=True)  # fmt: skip
    writer.close()
    again = CallLog(path)  # idempotent
    again.close()
    assert columns(path).count("console") == 1

    calls, total = reader.list_calls()
    assert total == 2 and [(c.id, c.console) for c in calls] == [("new-1", True), ("old-1", False)]
    detail = reader.get_call("old-1")
    assert detail is not None and [(t.caller_text, t.bot_text) for t in detail.turns] == [("Алло", "Здравствуйте")]
    reader.close()


def test_a_log_from_a_newer_version_is_read_and_written(tmp_path: Path) -> None:
    path = tmp_path / "calls.sqlite3"
    CallLog(path).close()
    db = sqlite3.connect(path)
    db.execute("ALTER TABLE calls ADD COLUMN added_later TEXT NOT NULL DEFAULT 'x'")
    db.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    db.commit()
    db.close()
    log = CallLog(path)
    _call(log, "c1", started_at=1.0)
    assert [c.id for c in log.list_calls()[0]] == ["c1"]
    detail = log.get_call("c1")
    assert detail is not None and detail.console is False
    log.close()
    assert user_version(path) == SCHEMA_VERSION + 1  # never lowered


def test_two_writers_migrating_at_once_both_succeed(tmp_path: Path) -> None:
    path = tmp_path / "calls.sqlite3"
    db = sqlite3.connect(path)
    db.executescript(VERSION_1)
    db.close()
    barrier = threading.Barrier(2)
    errors: list[BaseException] = []

    def open_log() -> None:
        barrier.wait(5)
        try:
            CallLog(path).close()
        except BaseException as e:
            errors.append(e)

    threads = [threading.Thread(target=open_log) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(15)
    assert not errors and columns(path).count("console") == 1
