"""The call-log store, shared by the Stasis service (writer) and the admin panel (reader).

SQLite in WAL mode, so the panel reads while the service writes.  One row per call, one per
turn.  :class:`CallLogWriter` moves the writes onto a background thread: the call's audio path
never waits for the disk.  ``stasis console`` writes its calls here too, marked ``console``.

Schema (version 2)::

    calls(id TEXT PRIMARY KEY, caller_number, caller_name, started_at REAL, answered_at REAL,
          ended_at REAL, end_reason TEXT, prompts_sha256 TEXT, turn_count INTEGER,
          console INTEGER)                                            -- added in version 2
    turns(call_id → calls.id, idx, started_at REAL, caller_text, bot_text,
          stt_ms REAL, llm_ms REAL, tts_ms REAL, error TEXT, PRIMARY KEY (call_id, idx))

Migrations: the tables are created as version 1 had them, and every column added since is declared
once in :data:`ADDED_COLUMNS`; a writer opening the database adds the ones it lacks (``ALTER TABLE …
ADD COLUMN``, in one ``BEGIN IMMEDIATE`` transaction, so two processes opening an old log at once do
not race), whether the database is new or from an older version.  A reader never alters the
database: a column an older database lacks reads as its default.
"""

from __future__ import annotations

import logging
import queue
import sqlite3
import threading
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

__all__ = [
    "ADDED_COLUMNS",
    "SCHEMA_VERSION",
    "AddedColumn",
    "CallDetail",
    "CallLog",
    "CallLogWriter",
    "CallSummary",
    "Turn",
]

logger = logging.getLogger("stasis.calllog")

SCHEMA_VERSION = 2
_SCHEMA = """
CREATE TABLE IF NOT EXISTS calls (
    id             TEXT PRIMARY KEY,
    caller_number  TEXT NOT NULL DEFAULT '',
    caller_name    TEXT NOT NULL DEFAULT '',
    started_at     REAL NOT NULL,
    answered_at    REAL,
    ended_at       REAL,
    end_reason     TEXT,
    prompts_sha256 TEXT NOT NULL,
    turn_count     INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS calls_started ON calls (started_at DESC);
CREATE INDEX IF NOT EXISTS calls_caller ON calls (caller_number);
CREATE TABLE IF NOT EXISTS turns (
    call_id     TEXT NOT NULL REFERENCES calls (id) ON DELETE CASCADE,
    idx         INTEGER NOT NULL,
    started_at  REAL NOT NULL,
    caller_text TEXT NOT NULL DEFAULT '',
    bot_text    TEXT NOT NULL DEFAULT '',
    stt_ms      REAL,
    llm_ms      REAL,
    tts_ms      REAL,
    error       TEXT,
    PRIMARY KEY (call_id, idx)
);
"""

_HAD_ERROR = (
    "calls.end_reason = 'error' OR EXISTS (SELECT 1 FROM turns t WHERE t.call_id = calls.id AND t.error IS NOT NULL)"
)


@dataclass(frozen=True, slots=True)
class AddedColumn:
    """A column added to ``table`` after version 1: its SQL declaration, and how a value read
    from SQLite becomes the Python value of the field of the same name."""

    table: str
    name: str
    declaration: str
    default: Any
    decode: Callable[[Any], Any] = lambda value: value


ADDED_COLUMNS: tuple[AddedColumn, ...] = (
    AddedColumn("calls", "console", "INTEGER NOT NULL DEFAULT 0", False, bool),  # version 2
)
"""Every column added since version 1, oldest first.  To add one: append it here (and the field
to :class:`CallSummary` or :class:`Turn`), and raise :data:`SCHEMA_VERSION`."""


def _decode_row(table: str, row: sqlite3.Row, cls: type[Any]) -> dict[str, Any]:
    """A row as the fields of the dataclass ``cls``: added columns decoded, or their default when the
    database (opened read-only, not migrated yet) lacks them; columns ``cls`` does not know (added
    by a newer version of the program) left out."""
    names = {f.name for f in fields(cls)}
    data = {key: value for key, value in dict(row).items() if key in names}
    for column in ADDED_COLUMNS:
        if column.table == table and column.name in names:
            data[column.name] = column.decode(data[column.name]) if column.name in data else column.default
    return data


@dataclass(frozen=True)
class Turn:
    """One exchange: what the caller said, what the bot answered, and how long each stage took."""

    idx: int
    started_at: float
    caller_text: str = ""
    bot_text: str = ""
    stt_ms: float | None = None
    llm_ms: float | None = None
    tts_ms: float | None = None
    error: str | None = None


@dataclass(frozen=True)
class CallSummary:
    id: str
    caller_number: str
    caller_name: str
    started_at: float
    answered_at: float | None
    ended_at: float | None
    end_reason: str | None
    prompts_sha256: str
    turn_count: int
    had_error: bool = False
    """The call ended with ``error`` or one of its turns recorded an error."""
    console: bool = False
    """Made in ``stasis console`` (a terminal, no Asterisk), not by a caller."""

    @property
    def duration(self) -> float | None:
        return None if self.ended_at is None else self.ended_at - self.started_at


@dataclass(frozen=True)
class CallDetail(CallSummary):
    turns: list[Turn] = field(default_factory=list)


class CallLog:
    """A connection to the call-log database; safe to share between threads."""

    def __init__(self, path: Path | str, *, readonly: bool = False) -> None:
        self.path = Path(path)
        self.readonly = readonly
        self._lock = threading.Lock()
        self._db: sqlite3.Connection | None = None
        if not readonly:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._open()

    def _open(self) -> sqlite3.Connection | None:
        """The connection; a reader opens it lazily, once the service has created the database."""
        if self._db is not None:
            return self._db
        if self.readonly and not self.path.exists():
            return None  # no call yet: an empty log
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None, timeout=10.0)
        self._db.row_factory = sqlite3.Row
        self._db.execute("PRAGMA foreign_keys = ON")
        self._db.execute("PRAGMA busy_timeout = 10000")
        if not self.readonly:
            self._db.execute("PRAGMA journal_mode = WAL")
            self._db.execute("PRAGMA synchronous = NORMAL")
            self._db.executescript(_SCHEMA)
            self._migrate(self._db)
        return self._db

    def _migrate(self, db: sqlite3.Connection) -> None:
        """Add the :data:`ADDED_COLUMNS` the database lacks; then it is (at least) :data:`SCHEMA_VERSION`."""
        db.execute("BEGIN IMMEDIATE")
        try:
            version = db.execute("PRAGMA user_version").fetchone()[0]
            for column in ADDED_COLUMNS:
                present = {r["name"] for r in db.execute(f"PRAGMA table_info({column.table})")}
                if column.name not in present:
                    db.execute(f"ALTER TABLE {column.table} ADD COLUMN {column.name} {column.declaration}")
                    logger.info("call log %s: added column %s.%s", self.path, column.table, column.name)
            # never lowered: a newer program's columns only add to ours (defaults fill them in)
            db.execute(f"PRAGMA user_version = {max(version, SCHEMA_VERSION)}")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")

    def _write(self, sql: str, params: tuple[Any, ...]) -> None:
        if self._db is None:
            raise RuntimeError(f"{self.path}: call log opened read-only")
        with self._lock:
            self._db.execute(sql, params)

    def start_call(
        self,
        call_id: str,
        *,
        caller_number: str,
        caller_name: str,
        started_at: float,
        prompts_sha256: str,
        answered_at: float | None = None,
        console: bool = False,
    ) -> None:
        self._write(
            "INSERT OR REPLACE INTO calls (id, caller_number, caller_name, started_at, answered_at, prompts_sha256,"
            " console) VALUES (?, ?, ?, ?, ?, ?, ?)",
            (call_id, caller_number, caller_name, started_at, answered_at, prompts_sha256, int(console)),
        )

    def answer_call(self, call_id: str, answered_at: float) -> None:
        self._write("UPDATE calls SET answered_at = ? WHERE id = ?", (answered_at, call_id))

    def add_turn(self, call_id: str, turn: Turn) -> None:
        if self._db is None:
            raise RuntimeError(f"{self.path}: call log opened read-only")
        with self._lock, self._db:
            self._db.execute("BEGIN")
            self._db.execute(
                "INSERT OR REPLACE INTO turns (call_id, idx, started_at, caller_text, bot_text, stt_ms, llm_ms, tts_ms,"
                " error) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    call_id,
                    turn.idx,
                    turn.started_at,
                    turn.caller_text,
                    turn.bot_text,
                    turn.stt_ms,
                    turn.llm_ms,
                    turn.tts_ms,
                    turn.error,
                ),
            )
            self._db.execute(
                "UPDATE calls SET turn_count = (SELECT COUNT(*) FROM turns WHERE call_id = ?) WHERE id = ?",
                (call_id, call_id),
            )

    def end_call(self, call_id: str, *, ended_at: float, end_reason: str) -> None:
        self._write("UPDATE calls SET ended_at = ?, end_reason = ? WHERE id = ?", (ended_at, end_reason, call_id))

    def list_calls(
        self,
        *,
        limit: int = 50,
        offset: int = 0,
        caller: str | None = None,
        since: float | None = None,
        until: float | None = None,
        end_reason: str | None = None,
        had_error: bool | None = None,
    ) -> tuple[list[CallSummary], int]:
        """Calls newest first, and the total matching the filters.  ``caller`` matches number or name;
        ``had_error`` keeps only the calls with (True) or without (False) an error."""
        db = self._open()
        if db is None:
            return [], 0
        where: list[str] = ["1 = 1"]
        params: list[Any] = []
        if caller:
            where.append("(caller_number LIKE ? OR caller_name LIKE ?)")
            params += [f"%{caller}%", f"%{caller}%"]
        if since is not None:
            where.append("started_at >= ?")
            params.append(since)
        if until is not None:
            where.append("started_at < ?")
            params.append(until)
        if end_reason is not None:
            where.append("end_reason = ?")
            params.append(end_reason)
        if had_error is not None:
            where.append(f"({_HAD_ERROR}) = ?")
            params.append(int(had_error))
        clause = " AND ".join(where)
        with self._lock:
            total = db.execute(f"SELECT COUNT(*) FROM calls WHERE {clause}", params).fetchone()[0]
            rows = db.execute(
                f"SELECT *, ({_HAD_ERROR}) AS had_error FROM calls WHERE {clause}"
                " ORDER BY started_at DESC, id DESC LIMIT ? OFFSET ?",
                [*params, limit, offset],
            ).fetchall()
        return [
            CallSummary(**{**_decode_row("calls", r, CallSummary), "had_error": bool(r["had_error"])}) for r in rows
        ], int(total)

    def get_call(self, call_id: str) -> CallDetail | None:
        db = self._open()
        if db is None:
            return None
        with self._lock:
            row = db.execute(f"SELECT *, ({_HAD_ERROR}) AS had_error FROM calls WHERE id = ?", (call_id,)).fetchone()
            if row is None:
                return None
            turns = db.execute("SELECT * FROM turns WHERE call_id = ? ORDER BY idx", (call_id,)).fetchall()
        summary = {**_decode_row("calls", row, CallSummary), "had_error": bool(row["had_error"])}
        return CallDetail(**summary, turns=[Turn(**_decode_row("turns", t, Turn)) for t in turns])

    def close(self) -> None:
        if self._db is not None:
            with self._lock:
                self._db.close()
            self._db = None


class CallLogWriter:
    """Queues writes to a :class:`CallLog` on one background thread; never blocks the caller.

    A failed write is logged with the call id and dropped; the call goes on.  ``close()`` flushes.
    """

    def __init__(self, calllog: CallLog) -> None:
        self.calllog = calllog
        self._queue: queue.SimpleQueue[tuple[Callable[..., None], tuple[Any, ...], dict[str, Any]] | None]
        self._queue = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="calllog-writer", daemon=True)
        self._thread.start()

    def _submit(self, fn: Callable[..., None], *args: Any, **kwargs: Any) -> None:
        self._queue.put((fn, args, kwargs))

    def start_call(self, call_id: str, **kwargs: Any) -> None:
        self._submit(self.calllog.start_call, call_id, **kwargs)

    def answer_call(self, call_id: str, answered_at: float) -> None:
        self._submit(self.calllog.answer_call, call_id, answered_at)

    def add_turn(self, call_id: str, turn: Turn) -> None:
        self._submit(self.calllog.add_turn, call_id, turn)

    def end_call(self, call_id: str, **kwargs: Any) -> None:
        self._submit(self.calllog.end_call, call_id, **kwargs)

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until everything queued so far is written."""
        done = threading.Event()
        self._queue.put((lambda: done.set(), (), {}))
        return done.wait(timeout)

    def _run(self) -> None:
        while (item := self._queue.get()) is not None:
            fn, args, kwargs = item
            try:
                fn(*args, **kwargs)
            except sqlite3.Error as e:
                logger.error("call log write failed call=%s: %s", args[0] if args else "?", e)

    def close(self) -> None:
        """Flush what is queued and stop the thread (the CallLog stays open)."""
        self._queue.put(None)
        self._thread.join()
