"""The installed ``promptwatch`` console script, run as a subprocess: exit codes, messages, JSON lines."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from promptwatch import atomic_write, sha256_hex
from promptwatch.status import ConsumerStatus, write_status
from tests.util import wait_until

from .conftest import ProcessFactory
from .helpers import PROMPTWATCH, Child, assert_no_temp_files, make_doc, run_cli

SYNTAX_ERROR = b'{\n  "system_prompt": "x",\n  "greeting": "y"\n  "fillers": []\n}'
SCHEMA_ERROR = b'{"system_prompt": "x", "greeting": "y", "fillers": ["ok", ""]}'


# --- check --------------------------------------------------------------------------------------------------


def test_check_valid(prompts_file: Path) -> None:
    result = run_cli("check", prompts_file)
    assert result.returncode == 0, result.stderr
    assert f"sha256={sha256_hex(prompts_file.read_bytes())}" in result.stdout
    assert result.stdout.startswith(f"{prompts_file}: ok")


def test_check_syntax_error_names_file_line_col(tmp_path: Path) -> None:
    bad = tmp_path / "prompts.json"
    bad.write_bytes(SYNTAX_ERROR)
    result = run_cli("check", bad)
    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr.startswith(f"{bad}:4:3: "), result.stderr
    assert "Traceback" not in result.stderr


def test_check_schema_error_names_the_field(tmp_path: Path) -> None:
    bad = tmp_path / "prompts.json"
    bad.write_bytes(SCHEMA_ERROR)
    result = run_cli("check", bad)
    assert result.returncode == 1
    assert "fillers[1]" in result.stderr
    assert str(bad) in result.stderr


def test_check_missing_file(tmp_path: Path) -> None:
    result = run_cli("check", tmp_path / "absent.json")
    assert result.returncode == 1
    assert "absent.json" in result.stderr
    assert "Traceback" not in result.stderr


def test_check_stdin() -> None:
    assert run_cli("check", "-", stdin=make_doc(1)).returncode == 0
    result = run_cli("check", "-", stdin=b"{")
    assert result.returncode == 1
    assert result.stderr.startswith("<stdin>:1:2: ")


# --- write --------------------------------------------------------------------------------------------------


def test_write_from_file(prompts_file: Path, tmp_path: Path) -> None:
    src = tmp_path / "new.json"
    src.write_bytes(make_doc(2))
    result = run_cli("write", prompts_file, "--from", src)
    assert result.returncode == 0, result.stderr
    assert prompts_file.read_bytes() == make_doc(2)
    assert sha256_hex(make_doc(2)) in result.stdout
    assert_no_temp_files(prompts_file.parent)


def test_write_from_stdin(prompts_file: Path) -> None:
    result = run_cli("write", prompts_file, "-", stdin=make_doc(3))
    assert result.returncode == 0, result.stderr
    assert prompts_file.read_bytes() == make_doc(3)


@pytest.mark.parametrize("content", [SYNTAX_ERROR, SCHEMA_ERROR])
def test_write_invalid_leaves_the_file_untouched(prompts_file: Path, tmp_path: Path, content: bytes) -> None:
    before = prompts_file.read_bytes()
    inode = prompts_file.stat().st_ino
    src = tmp_path / "new.json"
    src.write_bytes(content)
    result = run_cli("write", prompts_file, "--from", src)
    assert result.returncode == 1
    assert str(src) in result.stderr  # the error names the input, where the mistake is
    assert prompts_file.read_bytes() == before
    assert prompts_file.stat().st_ino == inode
    assert_no_temp_files(prompts_file.parent)


def test_write_if_match(prompts_file: Path) -> None:
    base = sha256_hex(prompts_file.read_bytes())
    assert run_cli("write", prompts_file, "-", "--if-match", base, stdin=make_doc(2)).returncode == 0

    # A second writer that read the same base now conflicts, and writes nothing.
    result = run_cli("write", prompts_file, "-", "--if-match", base, stdin=make_doc(3))
    assert result.returncode == 1
    assert "changed since it was read" in result.stderr
    assert prompts_file.read_bytes() == make_doc(2)
    assert_no_temp_files(prompts_file.parent)


def test_write_from_dash_is_stdin(prompts_file: Path) -> None:
    result = run_cli("write", prompts_file, "--from", "-", stdin=make_doc(4))
    assert result.returncode == 0, result.stderr
    assert prompts_file.read_bytes() == make_doc(4)


@pytest.mark.parametrize("form", ["quoted", "weak", "prefix7", "prefix12", "upper"])
def test_write_if_match_takes_what_curl_shows_and_prefixes(prompts_file: Path, form: str) -> None:
    base = sha256_hex(prompts_file.read_bytes())
    spec = {
        "quoted": f'"{base}"',
        "weak": f'W/"{base}"',
        "prefix7": base[:7],
        "prefix12": base[:12],
        "upper": base.upper(),
    }[form]
    result = run_cli("write", prompts_file, "-", "--if-match", spec, stdin=make_doc(5))
    assert result.returncode == 0, result.stderr
    assert prompts_file.read_bytes() == make_doc(5)


def test_write_conflict_shows_both_hashes_in_full(prompts_file: Path) -> None:
    stale = sha256_hex(prompts_file.read_bytes())
    run_cli("write", prompts_file, "-", stdin=make_doc(6))
    result = run_cli("write", prompts_file, "-", "--if-match", stale[:12], stdin=make_doc(7))
    assert result.returncode == 1
    assert f"expected sha256 {stale[:12]}, found sha256 {sha256_hex(make_doc(6))}" in result.stderr
    assert prompts_file.read_bytes() == make_doc(6)


@pytest.mark.parametrize("spec", ["abc", "xyz1234567", "0" * 65])
def test_write_refuses_a_malformed_if_match(prompts_file: Path, spec: str) -> None:
    before = prompts_file.read_bytes()
    result = run_cli("write", prompts_file, "-", "--if-match", spec, stdin=make_doc(8))
    assert result.returncode == 2
    assert result.stderr.startswith("promptwatch: --if-match: ")
    assert prompts_file.read_bytes() == before


def test_check_counts_the_prompts_in_the_document(tmp_path: Path) -> None:
    doc = tmp_path / "two.json"
    doc.write_text('{"system_prompt": "s", "greeting": "g"}')
    assert run_cli("check", doc).stdout.endswith("prompts=2\n")
    doc.write_text('{"system_prompt": "s", "greeting": "g", "fillers": ["a"], "dtmf_1": "x"}')
    assert run_cli("check", doc).stdout.endswith("prompts=4\n")


def test_check_defaults_to_prompts_path(prompts_file: Path) -> None:
    result = run_cli("check", env={**os.environ, "PROMPTS_PATH": str(prompts_file)})
    assert result.returncode == 0 and result.stdout.startswith(f"{prompts_file}: ok")


@pytest.mark.parametrize("value", ["0", "5", "-1"])
def test_watch_refuses_an_interval_below_the_minimum(prompts_file: Path, value: str) -> None:
    result = run_cli("watch", prompts_file, "--mode", "poll", "--interval-ms", value, timeout=10)
    assert result.returncode == 2
    assert f"--interval-ms: {value} is below the minimum of 10 ms" in result.stderr
    same = run_cli("watch", prompts_file, env={**os.environ, "PROMPTS_RELOAD_INTERVAL_MS": value}, timeout=10)
    assert same.returncode == 1
    assert f"PROMPTS_RELOAD_INTERVAL_MS: {value} is below the minimum of 10 ms" in same.stderr


def test_write_needs_a_source(prompts_file: Path) -> None:
    result = run_cli("write", prompts_file)
    assert result.returncode == 2
    assert "give the new content once" in result.stderr


# --- watch --json -------------------------------------------------------------------------------------------


def watch(spawn: ProcessFactory, path: Path, *args: str) -> Child:
    return spawn(PROMPTWATCH, "watch", path, "--json", *args)


def record(child: Child) -> dict[str, Any]:
    line = child.line()
    value: dict[str, Any] = json.loads(line)
    return value


@pytest.mark.parametrize("mode", ["inotify", "poll"])
def test_watch_json_lines(prompts_file: Path, status_dir: Path, spawn: ProcessFactory, mode: str) -> None:
    child = watch(spawn, prompts_file, "--mode", mode, "--interval-ms", "50")
    first = record(child)
    assert first == {
        **first,
        "ok": True,
        "sha256": sha256_hex(prompts_file.read_bytes()),
        "source": "startup",
        "error": None,
        "mode": mode,
    }
    assert isinstance(first["loaded_at"], float)
    assert abs(first["loaded_at"] - time.time()) < 60

    written_at = time.time()
    atomic_write(prompts_file, make_doc(2))
    second = record(child)
    assert second["ok"] is True
    assert second["sha256"] == sha256_hex(make_doc(2))
    assert second["source"] == mode
    assert second["error"] is None
    assert written_at <= second["loaded_at"] <= time.time()

    atomic_write(prompts_file, SYNTAX_ERROR)
    third = record(child)
    assert third["ok"] is False
    assert third["sha256"] == sha256_hex(make_doc(2))  # still running the last good prompts
    assert third["error"].startswith(f"{prompts_file}:4:3: ")
    assert third["mode"] == mode

    # SIGHUP while the file is still bad: one line for the attempt, and it failed.
    child.proc.send_signal(signal.SIGHUP)
    fourth = record(child)
    assert (fourth["ok"], fourth["source"]) == (False, "signal")
    assert fourth["error"] == third["error"]
    assert fourth["sha256"] == sha256_hex(make_doc(2))

    atomic_write(prompts_file, make_doc(3))
    assert record(child)["sha256"] == sha256_hex(make_doc(3))

    child.proc.send_signal(signal.SIGTERM)
    assert child.wait() == 0
    assert list(status_dir.iterdir()) == []


def test_watch_sighup_reloads_a_changed_file(prompts_file: Path, status_dir: Path, spawn: ProcessFactory) -> None:
    """With polling every 10 minutes, SIGHUP is what applies a change: one line with source signal."""
    child = watch(spawn, prompts_file, "--mode", "poll", "--interval-ms", "600000")
    assert record(child)["source"] == "startup"
    atomic_write(prompts_file, make_doc(2))
    child.proc.send_signal(signal.SIGHUP)
    line = record(child)
    assert (line["ok"], line["source"], line["sha256"]) == (True, "signal", sha256_hex(make_doc(2)))
    # SIGHUP with nothing changed: one ok line.
    child.proc.send_signal(signal.SIGHUP)
    line = record(child)
    assert (line["ok"], line["source"], line["error"]) == (True, "signal", None)
    child.proc.send_signal(signal.SIGINT)
    assert child.wait() == 0


def test_watch_bad_file_at_startup(tmp_path: Path, status_dir: Path) -> None:
    bad = tmp_path / "prompts.json"
    bad.write_bytes(SYNTAX_ERROR)
    result = run_cli("watch", bad, "--json")
    assert result.returncode == 1
    assert f"{bad}:4:3:" in result.stderr
    assert "Traceback" not in result.stderr
    assert result.stdout == ""


@pytest.mark.parametrize(
    ("variable", "value"),
    [("PROMPTS_WATCH_MODE", "fanotify"), ("PROMPTS_RELOAD_INTERVAL_MS", "soon"), ("PROMPTS_RELOAD_INTERVAL_SEC", "x")],
)
def test_bad_settings_are_a_clear_startup_error(
    prompts_file: Path, status_dir: Path, monkeypatch: pytest.MonkeyPatch, variable: str, value: str
) -> None:
    monkeypatch.setenv(variable, value)
    for command in ("watch", "status"):
        result = run_cli(command, prompts_file, env=dict(os.environ))
        assert result.returncode == 1, result.stderr
        assert variable in result.stderr
        assert "Traceback" not in result.stderr


def test_watch_text_lines(prompts_file: Path, status_dir: Path, spawn: ProcessFactory) -> None:
    child = spawn(PROMPTWATCH, "watch", prompts_file)
    assert child.line().startswith("loaded sha256=")
    atomic_write(prompts_file, b"{")
    assert child.line().startswith("rejected (keeping sha256=")


def test_watch_logs_with_journal_priorities_only_when_stderr_is_the_journal(
    prompts_file: Path, status_dir: Path, tmp_path: Path, spawn: ProcessFactory
) -> None:
    journal = tmp_path / "journal-stream"
    other = tmp_path / "redirected"
    with open(journal, "w") as journal_file, open(other, "w") as other_file:
        st = os.fstat(journal_file.fileno())
        env = {**os.environ, "JOURNAL_STREAM": f"{st.st_dev}:{st.st_ino}"}
        in_journal = spawn(PROMPTWATCH, "watch", prompts_file, "--json", stderr=journal_file, env=env)
        redirected = spawn(PROMPTWATCH, "watch", prompts_file, "--json", stderr=other_file, env=env)
        record(in_journal)
        record(redirected)
        atomic_write(prompts_file, b"{")
        assert record(in_journal)["ok"] is False
        assert record(redirected)["ok"] is False
        wait_until(lambda: "prompts rejected" in journal.read_text() and "prompts rejected" in other.read_text())
    [line] = [x for x in journal.read_text().splitlines() if "prompts rejected" in x]
    assert line.startswith("<3>promptwatch: prompts rejected")
    [line] = [x for x in other.read_text().splitlines() if "prompts rejected" in x]
    assert not line.startswith("<") and "ERROR" in line


# --- status -------------------------------------------------------------------------------------------------


def dead_pid() -> int:
    """The pid of a process that has exited and been reaped."""
    child = subprocess.Popen(["true"])
    child.wait()
    return child.pid


def test_status_json_shows_live_consumers_and_ignores_dead_ones(
    prompts_file: Path, status_dir: Path, spawn: ProcessFactory
) -> None:
    child = watch(spawn, prompts_file, "--service", "metrotech-bot")
    record(child)
    now = time.time()
    stale = ConsumerStatus(
        service="metrotech-fastapi",
        pid=dead_pid(),
        path=str(prompts_file),
        sha256="0" * 64,
        loaded_at=now,
        source="startup",
        mode="inotify",
        last_error=None,
        updated_at=now,
        started_at=now,
        hostname=os.uname().nodename,
    )
    write_status(status_dir, stale)
    recycled = ConsumerStatus(**{**stale.__dict__, "pid": os.getpid(), "proc_start": 1})
    write_status(status_dir, recycled)

    result = run_cli("status", prompts_file, "--json")
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout)
    assert out["path"] == str(prompts_file)
    assert out["sha256"] == sha256_hex(prompts_file.read_bytes())
    [consumer] = out["consumers"]
    assert consumer["service"] == "metrotech-bot"
    assert consumer["pid"] == child.pid
    assert consumer["in_sync"] is True
    assert consumer["mode"] == "inotify"
    assert consumer["last_error"] is None

    # After a write the consumer reloads and still reports in sync; its error shows after a bad one.
    atomic_write(prompts_file, make_doc(2))
    assert json.loads(child.line())["sha256"] == sha256_hex(make_doc(2))
    wait_until(
        lambda: json.loads(run_cli("status", prompts_file, "--json").stdout)["consumers"][0]["in_sync"], timeout=10
    )
    atomic_write(prompts_file, b"{")
    assert json.loads(child.line())["ok"] is False
    [consumer] = json.loads(run_cli("status", prompts_file, "--json").stdout)["consumers"]
    assert consumer["in_sync"] is False
    assert consumer["last_error"].startswith(f"{prompts_file}:1:2:")

    text = run_cli("status", prompts_file)
    assert text.returncode == 0
    assert "metrotech-bot" in text.stdout
    assert "STALE" in text.stdout
    assert "metrotech-fastapi" not in text.stdout


def test_status_without_consumers(prompts_file: Path, status_dir: Path) -> None:
    result = run_cli("status", prompts_file)
    assert result.returncode == 0
    assert "no live consumers" in result.stdout
    out = json.loads(run_cli("status", prompts_file, "--json", "--status-dir", status_dir).stdout)
    assert out["consumers"] == []
