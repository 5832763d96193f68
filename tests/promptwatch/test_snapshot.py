"""HotPrompts: immutable snapshots, last known good, errors once per content, callbacks, status."""

from __future__ import annotations

import logging
import os
import threading
from pathlib import Path
from typing import Any

import orjson
import pytest

from promptwatch import HotPrompts, Snapshot, StartupError, atomic_write, read_statuses, sha256_hex
from tests.util import wait_until

from .conftest import HotPromptsFactory
from .helpers import greeting_of, make_doc

DEADLINE = 10.0


def rejected(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.getMessage().startswith("prompts rejected")]


def test_startup_snapshot(prompts_file: Path, hot_prompts: HotPromptsFactory) -> None:
    data = prompts_file.read_bytes()
    hp = hot_prompts(prompts_file)
    snap = hp.current
    assert isinstance(snap, Snapshot)
    assert snap.source == "startup"
    assert snap.sha256 == sha256_hex(data)
    assert snap.short == snap.sha256[:8]
    assert snap.size == len(data)
    assert snap.path == prompts_file
    assert snap.mtime == prompts_file.stat().st_mtime
    assert snap.prompts.greeting.startswith("Здравствуйте!")
    assert snap.prompts.get("operator") is not None
    assert hp.last_error is None
    assert hp.mode == "inotify"


def test_relative_path_is_made_absolute(
    prompts_file: Path, hot_prompts: HotPromptsFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(prompts_file.parent)
    hp = hot_prompts("prompts.json")
    assert hp.current.path == prompts_file


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b'{\n  "system_prompt": "x",\n  "greeting": \n}', ":4:1: Expecting value"),
        (b'{"system_prompt": "x"}', "greeting"),
        (b'{"system_prompt": "x", "greeting": "   "}', "greeting: must not be blank"),
        (b"", ":1:1:"),
    ],
)
def test_a_bad_file_at_startup_is_a_startup_error(
    tmp_path: Path, hot_prompts: HotPromptsFactory, content: bytes, expected: str
) -> None:
    path = tmp_path / "prompts.json"
    path.write_bytes(content)
    with pytest.raises(StartupError) as exc:
        hot_prompts(path)
    message = str(exc.value)
    assert str(path) in message
    assert expected in message
    assert "Traceback" not in message
    assert not [t for t in threading.enumerate() if t.name.startswith("promptwatch")]


@pytest.mark.parametrize(("mode", "env"), [("fanotify", None), (None, "fanotify")])
def test_an_unknown_watch_mode_is_a_startup_error(
    prompts_file: Path,
    hot_prompts: HotPromptsFactory,
    monkeypatch: pytest.MonkeyPatch,
    mode: str | None,
    env: str | None,
) -> None:
    if env is not None:
        monkeypatch.setenv("PROMPTS_WATCH_MODE", env)
    with pytest.raises(StartupError, match="fanotify"):
        hot_prompts(prompts_file, mode=mode)
    assert not [t for t in threading.enumerate() if t.name.startswith("promptwatch")]


def test_a_missing_file_at_startup_is_a_startup_error(tmp_path: Path, hot_prompts: HotPromptsFactory) -> None:
    with pytest.raises(StartupError, match="not found"):
        hot_prompts(tmp_path / "prompts.json")


def test_an_unwatchable_directory_at_startup_is_a_startup_error(
    prompts_file: Path, hot_prompts: HotPromptsFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An explicit inotify mode that cannot start is a clear startup error, and leaves no thread behind."""
    from promptwatch import reload as reload_module

    def no_inotify(*args: Any, **kwargs: Any) -> Any:
        raise OSError(24, "Too many open files")

    monkeypatch.setattr(reload_module, "start_watcher", no_inotify)
    with pytest.raises(StartupError, match="Too many open files"):
        hot_prompts(prompts_file, mode="inotify")
    assert not [t for t in threading.enumerate() if t.name.startswith("promptwatch")]


@pytest.mark.parametrize(
    ("bad", "needle"),
    [
        (b'{"system_prompt": "x", "greeting": "y",', ":1:"),
        (b'{"system_prompt": "x", "greeting": ""}', "greeting"),
        (b'{"system_prompt": "x", "greeting": "y", "fillers": ["ok", " "]}', "fillers[1]"),
        (b'{"system_prompt": "x", "greeting": "y", "operator": 42}', "operator"),
    ],
)
def test_bad_content_keeps_last_good_logs_once_and_recovers(
    prompts_file: Path,
    hot_prompts: HotPromptsFactory,
    backend: dict[str, Any],
    caplog: pytest.LogCaptureFixture,
    bad: bytes,
    needle: str,
) -> None:
    hp = hot_prompts(prompts_file, **backend)
    good = hp.current
    errors: list[tuple[str, str | None, str]] = []
    hp.on_error(lambda msg, sha, source: errors.append((msg, sha, source)))

    atomic_write(prompts_file, bad)
    wait_until(lambda: hp.last_error is not None, timeout=DEADLINE)
    assert needle in (hp.last_error or "")
    assert hp.current is good
    # The same bad content again, by another route and by hand: not logged again.
    with open(prompts_file, "wb") as f:
        f.write(bad)
    assert hp.reload("manual") is False
    assert hp.reload("signal") is False
    assert hp.current is good
    assert len(rejected(caplog)) == 1
    assert rejected(caplog)[0].levelno == logging.ERROR
    assert len(errors) == 1
    assert errors[0][1] == sha256_hex(bad)

    atomic_write(prompts_file, make_doc(2))
    snap = hp.wait_for(lambda s: s.prompts.greeting == greeting_of(2), DEADLINE)
    assert snap is not None
    assert hp.last_error is None


def test_each_distinct_bad_content_is_logged(
    prompts_file: Path, hot_prompts: HotPromptsFactory, caplog: pytest.LogCaptureFixture
) -> None:
    hp = hot_prompts(prompts_file, hot_reload=False)
    for n, bad in enumerate([b"{", b"[", b"{"], start=1):
        prompts_file.write_bytes(bad)
        assert hp.reload() is False
        assert len(rejected(caplog)) == n


def test_reverting_to_the_good_content_clears_the_error(
    prompts_file: Path, hot_prompts: HotPromptsFactory, backend: dict[str, Any], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    good_bytes = prompts_file.read_bytes()
    hp = hot_prompts(prompts_file, **backend)
    good = hp.current
    atomic_write(prompts_file, b"{ broken")
    wait_until(lambda: hp.last_error is not None, timeout=DEADLINE)
    atomic_write(prompts_file, good_bytes)
    wait_until(lambda: hp.last_error is None, timeout=DEADLINE)
    assert hp.current is good  # same content: nothing to publish, just the error cleared
    wait_until(lambda: any("valid again" in r.getMessage() for r in caplog.records), timeout=DEADLINE)


def test_on_reload_gets_old_and_new(prompts_file: Path, hot_prompts: HotPromptsFactory) -> None:
    calls: list[tuple[Snapshot, Snapshot]] = []
    hp = hot_prompts(prompts_file, on_reload=lambda old, new: calls.append((old, new)))
    second: list[tuple[Snapshot, Snapshot]] = []
    hp.on_reload(lambda old, new: second.append((old, new)))
    first = hp.current

    atomic_write(prompts_file, make_doc(2))
    wait_until(lambda: len(calls) == 1 and len(second) == 1, timeout=DEADLINE)
    old, new = calls[0]
    assert old is first
    assert new is hp.current
    assert new.prompts.greeting == greeting_of(2)
    assert new.source == "inotify"
    assert second[0] == (old, new)


def test_a_failing_callback_does_not_stop_reloads(
    prompts_file: Path, hot_prompts: HotPromptsFactory, caplog: pytest.LogCaptureFixture
) -> None:
    seen: list[str] = []

    def broken(old: Snapshot, new: Snapshot) -> None:
        raise RuntimeError("synthesis backend down")

    hp = hot_prompts(prompts_file, on_reload=broken)
    hp.on_reload(lambda old, new: seen.append(new.prompts.greeting))
    for n in (2, 3):
        atomic_write(prompts_file, make_doc(n))
        wait_until(lambda n=n: greeting_of(n) in seen, timeout=DEADLINE)
    assert any("synthesis backend down" in (r.exc_text or "") or r.exc_info for r in caplog.records)


def test_a_pinned_snapshot_never_changes(prompts_file: Path, hot_prompts: HotPromptsFactory) -> None:
    hp = hot_prompts(prompts_file)
    pinned = hp.current
    frozen = (pinned.sha256, pinned.prompts.model_dump(), pinned.loaded_at, pinned.source, pinned.size)
    for n in range(2, 6):
        atomic_write(prompts_file, make_doc(n))
        assert hp.wait_for(lambda s, n=n: s.prompts.greeting == greeting_of(n), DEADLINE)
    assert (pinned.sha256, pinned.prompts.model_dump(), pinned.loaded_at, pinned.source, pinned.size) == frozen
    assert hp.current is not pinned
    with pytest.raises(AttributeError):
        pinned.sha256 = "x"  # type: ignore[misc]
    with pytest.raises(Exception):  # noqa: B017 - pydantic's frozen-instance error
        pinned.prompts.greeting = "x"  # type: ignore[misc]


def test_reload_signal_source(prompts_file: Path, hot_prompts: HotPromptsFactory) -> None:
    hp = hot_prompts(prompts_file, hot_reload=False)
    assert hp.mode == "off"
    before = hp.current
    atomic_write(prompts_file, make_doc(2))
    assert hp.current is before  # no watching without hot reload
    assert hp.reload("signal") is True
    assert hp.current.source == "signal"
    assert hp.current.prompts.greeting == greeting_of(2)
    assert hp.reload("signal") is False  # unchanged content: nothing published


def test_loaded_at_is_taken_at_publication(prompts_file: Path, hot_prompts: HotPromptsFactory) -> None:
    import time

    hp = hot_prompts(prompts_file, hot_reload=False)
    atomic_write(prompts_file, make_doc(2))
    before = time.time()
    hp.reload()
    assert before <= hp.current.loaded_at <= time.time()


def test_wait_for_times_out(prompts_file: Path, hot_prompts: HotPromptsFactory) -> None:
    hp = hot_prompts(prompts_file, hot_reload=False)
    assert hp.wait_for(lambda s: s.source == "signal", 0.01) is None
    assert hp.wait_for(lambda s: s.source == "startup", 0.01) is hp.current


def test_too_large_is_rejected(prompts_file: Path, hot_prompts: HotPromptsFactory) -> None:
    hp = hot_prompts(prompts_file, hot_reload=False, limit=4096)
    prompts_file.write_bytes(make_doc(2, size=8192))
    assert hp.reload() is False
    assert "limit is 4096" in (hp.last_error or "")


def test_unreadable_path_is_an_error_not_a_crash(
    prompts_file: Path, hot_prompts: HotPromptsFactory, caplog: pytest.LogCaptureFixture
) -> None:
    hp = hot_prompts(prompts_file, hot_reload=False)
    prompts_file.unlink()
    prompts_file.mkdir()
    assert hp.reload() is False
    assert hp.reload() is False
    assert hp.last_error is not None and str(prompts_file) in hp.last_error
    assert len(rejected(caplog)) == 1  # a read error is logged once too, not at every hint
    prompts_file.rmdir()
    prompts_file.write_bytes(make_doc(2))
    assert hp.reload() is True
    assert hp.last_error is None


def test_status_is_published_and_removed(prompts_file: Path, status_dir: Path, hot_prompts: HotPromptsFactory) -> None:
    hp = hot_prompts(prompts_file, service="metrotech-bot", status_dir=status_dir)
    entry = status_dir / f"metrotech-bot.{os.getpid()}.json"
    assert entry.exists()
    [status] = read_statuses(status_dir, path=prompts_file)
    assert status.sha256 == hp.current.sha256
    assert status.mode == "inotify"
    assert status.source == "startup"
    assert status.last_error is None

    atomic_write(prompts_file, b"{")
    wait_until(lambda: orjson.loads(entry.read_bytes())["last_error"] is not None, timeout=DEADLINE)
    atomic_write(prompts_file, make_doc(2))
    wait_until(lambda: orjson.loads(entry.read_bytes())["sha256"] == sha256_hex(make_doc(2)), timeout=DEADLINE)
    assert orjson.loads(entry.read_bytes())["last_error"] is None

    hp.close()
    assert read_statuses(status_dir) == []
    assert [p.name for p in status_dir.iterdir()] == [], "status directory not left clean"


def test_close_is_idempotent_and_joins_threads(prompts_file: Path, backend: dict[str, Any]) -> None:
    with HotPrompts(prompts_file, **backend) as hp:
        assert any(t.name.startswith("promptwatch") for t in threading.enumerate())
    hp.close()
    assert hp.mode == "off"
    assert not [t.name for t in threading.enumerate() if t.name.startswith("promptwatch")]


def test_reads_are_consistent_while_reloading(prompts_file: Path, hot_prompts: HotPromptsFactory) -> None:
    """Readers on other threads see whole snapshots: sha256 always matches the prompts it came with."""
    hp = hot_prompts(prompts_file)
    stop = threading.Event()
    bad: list[str] = []
    expected = {sha256_hex(make_doc(n)): greeting_of(n) for n in range(2, 60)}

    def reader() -> None:
        while not stop.is_set():
            snap = hp.current
            if snap.sha256 in expected and expected[snap.sha256] != snap.prompts.greeting:
                bad.append(snap.sha256)

    t = threading.Thread(target=reader)
    t.start()
    try:
        for n in range(2, 60):
            atomic_write(prompts_file, make_doc(n), durable=False)
        assert hp.wait_for(lambda s: s.prompts.greeting == greeting_of(59), DEADLINE)
    finally:
        stop.set()
        t.join()
    assert bad == []


def wait_idle(hp: HotPrompts) -> None:
    """Let the start-up re-read (an urgent, settled load) finish before a test writes half a file."""
    wait_until(lambda: hp._due is None, timeout=DEADLINE)
    with hp._load_lock:
        pass


def test_a_slow_in_place_save_is_not_reported_as_an_error(
    prompts_file: Path, hot_prompts: HotPromptsFactory, caplog: pytest.LogCaptureFixture
) -> None:
    """An editor that pauses mid-write (longer than the modify debounce) leaves a half file for a
    while: that is not a broken file until the writer has closed it."""
    hp = hot_prompts(prompts_file, mode="inotify")
    errors: list[str] = []
    hp.on_error(lambda msg, sha, source: errors.append(msg))
    wait_idle(hp)
    data = make_doc(7)
    with open(prompts_file, "r+b") as f:
        f.truncate(0)
        f.write(data[:40])
        f.flush()
        # Wait until the reloader has seen the half file (and held back), well past the debounce.
        wait_until(lambda: hp._due is not None and hp._pending_urgent, timeout=DEADLINE)
        f.write(data[40:])
    snap = hp.wait_for(lambda s: s.prompts.greeting == greeting_of(7), DEADLINE)
    assert snap is not None
    assert errors == [] and rejected(caplog) == [] and hp.last_error is None


def test_a_file_left_broken_by_modify_events_alone_is_reported_after_settling(
    prompts_file: Path, hot_prompts: HotPromptsFactory, caplog: pytest.LogCaptureFixture
) -> None:
    hp = hot_prompts(prompts_file, mode="inotify")
    good = hp.current
    wait_idle(hp)
    fd = os.open(prompts_file, os.O_WRONLY)  # kept open: no close-after-write ever arrives
    try:
        os.ftruncate(fd, 0)
        os.write(fd, b'{"greeting": ')
        wait_until(lambda: rejected(caplog), timeout=DEADLINE)
    finally:
        os.close(fd)
    assert "prompts.json:1:14" in (hp.last_error or "")
    assert hp.current is good
    assert len(rejected(caplog)) == 1


def test_a_missing_file_is_reported_in_the_status_and_cleared_on_return(
    prompts_file: Path, status_dir: Path, hot_prompts: HotPromptsFactory, backend: dict[str, Any]
) -> None:
    hp = hot_prompts(prompts_file, service="metrotech-bot", status_dir=status_dir, **backend)
    good = hp.current
    content = prompts_file.read_bytes()
    prompts_file.unlink()
    wait_until(lambda: read_statuses(status_dir)[0].last_error, timeout=DEADLINE)
    assert "missing" in (hp.last_error or "")
    [status] = read_statuses(status_dir)
    assert status.last_error == hp.last_error and status.sha256 == good.sha256
    atomic_write(prompts_file, content)  # the same content comes back
    wait_until(lambda: hp.last_error is None, timeout=DEADLINE)
    assert hp.current is good
    wait_until(lambda: read_statuses(status_dir)[0].last_error is None, timeout=DEADLINE)
