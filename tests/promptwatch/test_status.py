"""The status directory: one entry per live consumer; dead and recycled pids are ignored."""

from __future__ import annotations

import os
import socket
import subprocess
import time
from dataclasses import replace
from pathlib import Path

import orjson
import pytest

from promptwatch import ConsumerStatus, read_statuses
from promptwatch.status import default_status_dir, process_start_ticks, remove_status, software_version, write_status


def status(**changes: object) -> ConsumerStatus:
    now = time.time()
    base = ConsumerStatus(
        service="metrotech-bot",
        pid=os.getpid(),
        path="/etc/metrotech/prompts.json",
        sha256="a" * 64,
        loaded_at=now,
        source="startup",
        mode="inotify",
        last_error=None,
        updated_at=now,
        started_at=now,
        hostname=socket.gethostname(),
        proc_start=process_start_ticks(os.getpid()),
    )
    return replace(base, **changes)  # type: ignore[arg-type]


def exited_pid() -> int:
    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid


def test_round_trip(status_dir: Path) -> None:
    mine = status()
    write_status(status_dir, mine)
    assert (status_dir / mine.filename).exists()
    assert read_statuses(status_dir) == [mine]
    assert read_statuses(status_dir, path=Path("/etc/metrotech/prompts.json")) == [mine]
    assert read_statuses(status_dir, path=Path("/other/prompts.json")) == []


def test_rewrite_replaces_the_entry(status_dir: Path) -> None:
    write_status(status_dir, status())
    write_status(status_dir, status(sha256="b" * 64, last_error="prompts.json:1:2: Expecting value"))
    [entry] = read_statuses(status_dir)
    assert entry.sha256 == "b" * 64
    assert entry.last_error == "prompts.json:1:2: Expecting value"


def test_dead_and_recycled_pids_are_ignored(status_dir: Path) -> None:
    write_status(status_dir, status(service="dead", pid=exited_pid()))
    write_status(status_dir, status(service="recycled", proc_start=1))  # our pid, another process's start
    write_status(status_dir, status(service="remote", pid=exited_pid(), hostname="other-host"))
    write_status(status_dir, status(service="live"))
    assert [s.service for s in read_statuses(status_dir)] == ["live", "remote"]


def test_foreign_files_are_skipped(status_dir: Path) -> None:
    (status_dir / "garbage.json").write_text("{not json")
    (status_dir / "other.json").write_text('{"unexpected": 1}')
    (status_dir / "notes.txt").write_text("x")
    write_status(status_dir, status())
    assert len(read_statuses(status_dir)) == 1


def test_missing_directory_reads_as_empty(tmp_path: Path) -> None:
    assert read_statuses(tmp_path / "absent") == []


def test_remove_leaves_nothing(status_dir: Path) -> None:
    mine = status()
    write_status(status_dir, mine)
    remove_status(status_dir, mine.service, mine.pid)
    remove_status(status_dir, mine.service, mine.pid)  # idempotent
    assert list(status_dir.iterdir()) == []


def test_process_start_ticks() -> None:
    assert isinstance(process_start_ticks(os.getpid()), int)
    assert process_start_ticks(exited_pid()) is None


def test_default_status_dir(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PROMPTS_STATUS_DIR", str(tmp_path / "explicit"))
    assert default_status_dir() == tmp_path / "explicit"
    monkeypatch.delenv("PROMPTS_STATUS_DIR")
    monkeypatch.setenv("RUNTIME_DIRECTORY", "/run/metrotech")
    assert default_status_dir() == Path("/run/metrotech/status")
    monkeypatch.delenv("RUNTIME_DIRECTORY")
    assert default_status_dir().name == "status"
    assert f"promptwatch-{os.getuid()}" in str(default_status_dir())


def test_fields_a_newer_writer_adds_are_ignored_and_the_version_is_kept(status_dir: Path) -> None:
    mine = status(version="9.9.9")
    raw = orjson.loads(mine.to_json())
    (status_dir / mine.filename).write_bytes(orjson.dumps({**raw, "labels": ["staging"], "future": 1}))
    assert read_statuses(status_dir) == [mine]
    assert software_version() not in ("", "unknown")
