"""The watchers with real files and real inotify: every save style, both backends, fallbacks."""

from __future__ import annotations

import errno
import hashlib
import logging
import os
import shutil
import subprocess
import threading
from pathlib import Path
from typing import Any

import pytest

from promptwatch import atomic_write
from promptwatch import reload as reload_module
from promptwatch import watch as watch_module
from promptwatch.snapshot import HotPrompts
from promptwatch.watch import (
    InotifyWatcher,
    PollWatcher,
    WatchMode,
    filesystem_type,
    resolve_mode,
)
from tests.util import wait_until

from .conftest import HotPromptsFactory, WatcherFactory
from .helpers import POLL_INTERVAL, Hints, greeting_of, make_doc

DEADLINE = 10.0


def wait_greeting(hp: HotPrompts, version: int | str, timeout: float = DEADLINE) -> None:
    want = greeting_of(version)
    snap = hp.wait_for(lambda s: s.prompts.greeting == want, timeout)
    assert snap is not None, f"never reloaded to version {version}; still {hp.current.prompts.greeting!r}"


@pytest.fixture
def target(tmp_path: Path) -> Path:
    directory = tmp_path / "conf"
    directory.mkdir()
    path = directory / "prompts.json"
    path.write_bytes(make_doc(1))
    return path


# --- save styles: every way an editor, a tool or Kubernetes replaces the file ------------------------------


def test_same_directory_rename(target: Path, hot_prompts: HotPromptsFactory, backend: dict[str, Any]) -> None:
    hp = hot_prompts(target, **backend)
    tmp = target.with_name("prompts.json.new")
    tmp.write_bytes(make_doc(2))
    os.rename(tmp, target)
    wait_greeting(hp, 2)
    assert hp.current.source == backend["mode"]
    assert hp.last_error is None


def test_rename_from_another_directory(
    target: Path, tmp_path: Path, hot_prompts: HotPromptsFactory, backend: dict[str, Any]
) -> None:
    hp = hot_prompts(target, **backend)
    elsewhere = tmp_path / "staging"
    elsewhere.mkdir()
    (elsewhere / "prompts.json").write_bytes(make_doc(2))
    os.rename(elsewhere / "prompts.json", target)
    wait_greeting(hp, 2)


def test_in_place_write(target: Path, hot_prompts: HotPromptsFactory, backend: dict[str, Any]) -> None:
    """open('w') + write + close, as nano and VS Code save: same inode, truncated then rewritten."""
    hp = hot_prompts(target, **backend)
    inode = target.stat().st_ino
    with open(target, "w", encoding="utf-8") as f:
        f.write(make_doc(2).decode())
    assert target.stat().st_ino == inode
    wait_greeting(hp, 2)
    assert hp.last_error is None or hp.wait_for(lambda s: hp.last_error is None, DEADLINE)


def test_sed_in_place(target: Path, hot_prompts: HotPromptsFactory, backend: dict[str, Any]) -> None:
    hp = hot_prompts(target, **backend)
    subprocess.run(["sed", "-i", "s/Версия 1\\./Версия 2./", str(target)], check=True)
    wait_greeting(hp, 2)


def test_configmap_symlink_swap(tmp_path: Path, hot_prompts: HotPromptsFactory, backend: dict[str, Any]) -> None:
    """A Kubernetes ConfigMap volume: the update renames ``..data_tmp`` over ``..data``, never naming the file."""
    volume = tmp_path / "volume"
    volume.mkdir()
    (volume / "..2026_01").mkdir()
    (volume / "..2026_01" / "prompts.json").write_bytes(make_doc(1))
    os.symlink("..2026_01", volume / "..data")
    os.symlink("..data/prompts.json", volume / "prompts.json")
    hp = hot_prompts(volume / "prompts.json", **backend)
    assert hp.current.prompts.greeting == greeting_of(1)

    for n, stamp in enumerate(["..2026_02", "..2026_03"], start=2):
        previous = os.readlink(volume / "..data")
        (volume / stamp).mkdir()
        (volume / stamp / "prompts.json").write_bytes(make_doc(n))
        os.symlink(stamp, volume / "..data_tmp")
        os.rename(volume / "..data_tmp", volume / "..data")
        shutil.rmtree(volume / previous)
        wait_greeting(hp, n)
        assert (volume / "prompts.json").is_symlink()


def test_delete_keeps_last_good_warns_once_then_recreate(
    target: Path, hot_prompts: HotPromptsFactory, backend: dict[str, Any], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    hp = hot_prompts(target, **backend)
    sha = hp.current.sha256
    target.unlink()
    wait_until(lambda: any("missing" in r.getMessage() for r in caplog.records), timeout=DEADLINE)
    # More hints while it is missing (the directory changes) must not repeat the warning.
    (target.parent / "unrelated.txt").write_text("x")
    hp.reload("manual")
    hp.reload("manual")
    assert hp.current.sha256 == sha
    assert hp.current.prompts.greeting == greeting_of(1)
    missing = [r for r in caplog.records if "missing" in r.getMessage()]
    assert len(missing) == 1
    assert missing[0].levelno == logging.WARNING

    atomic_write(target, make_doc(2))
    wait_greeting(hp, 2)


def test_directory_removed_and_recreated(target: Path, hot_prompts: HotPromptsFactory, backend: dict[str, Any]) -> None:
    """The safety check of inotify mode runs every 30 s: recovery must not wait for it."""
    hp = hot_prompts(target, **backend)
    directory = target.parent
    for n in (2, 3):
        shutil.rmtree(directory)
        wait_until(lambda: not directory.exists(), timeout=DEADLINE)
        directory.mkdir()
        atomic_write(target, make_doc(n))
        wait_greeting(hp, n)
    # And it keeps watching the new directory afterwards.
    atomic_write(target, make_doc(4))
    wait_greeting(hp, 4)


def test_directory_replaced_by_rename(target: Path, tmp_path: Path, hot_prompts: HotPromptsFactory) -> None:
    """A deploy that renames a fresh directory over the old one (``mv conf.new conf``)."""
    hp = hot_prompts(target, mode="inotify")
    fresh = tmp_path / "conf.new"
    fresh.mkdir()
    (fresh / "prompts.json").write_bytes(make_doc(2))
    shutil.rmtree(target.parent)
    os.rename(fresh, target.parent)
    wait_greeting(hp, 2)
    atomic_write(target, make_doc(3))
    wait_greeting(hp, 3)


@pytest.mark.parametrize("mode", ["inotify", "poll"])
def test_directory_swapped_by_renames(target: Path, tmp_path: Path, hot_prompts: HotPromptsFactory, mode: str) -> None:
    """``mv conf conf.old && mv conf.new conf``: the watch must follow the name, not the moved inode."""
    hp = hot_prompts(target, mode=mode, interval=POLL_INTERVAL)
    for n in (2, 3):
        fresh = tmp_path / "conf.new"
        fresh.mkdir()
        (fresh / "prompts.json").write_bytes(make_doc(n))
        os.rename(target.parent, tmp_path / f"conf.old{n}")
        os.rename(fresh, target.parent)
        wait_greeting(hp, n)
    # Writes into the moved-away directory are not ours; writes into the new one are.
    atomic_write(tmp_path / "conf.old3" / "prompts.json", make_doc(99))
    atomic_write(target, make_doc(4))
    wait_greeting(hp, 4)


# --- no lost updates ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("style", ["rename", "in-place"])
def test_write_bursts_converge_on_the_last_write(
    target: Path, hot_prompts: HotPromptsFactory, backend: dict[str, Any], style: str
) -> None:
    hp = hot_prompts(target, **backend)
    version = 1
    for _round in range(8):
        for _ in range(25):
            version += 1
            data = make_doc(version, size=4096)
            if style == "rename":
                atomic_write(target, data, durable=False)
            else:
                with open(target, "wb") as f:
                    f.write(data)
        wait_greeting(hp, version)
        assert hp.current.sha256 == hashlib.sha256(target.read_bytes()).hexdigest()


def test_concurrent_writers_converge(target: Path, hot_prompts: HotPromptsFactory, backend: dict[str, Any]) -> None:
    """Two threads write as fast as they can; the snapshot ends on whatever the file holds last."""
    hp = hot_prompts(target, **backend)
    barrier = threading.Barrier(2)

    def writer(first: int) -> None:
        barrier.wait()
        for v in range(first, first + 200, 2):
            atomic_write(target, make_doc(v), durable=False)

    threads = [threading.Thread(target=writer, args=(start,)) for start in (100, 101)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    final = target.read_bytes()
    assert hp.wait_for(lambda s: s.sha256 == hashlib.sha256(final).hexdigest(), DEADLINE)


# --- modes and fallbacks ------------------------------------------------------------------------------------


def test_forced_poll_mode(target: Path, hot_prompts: HotPromptsFactory) -> None:
    hp = hot_prompts(target, mode="poll", interval=POLL_INTERVAL)
    assert hp.mode == "poll"
    atomic_write(target, make_doc(2))
    wait_greeting(hp, 2)
    assert hp.current.source == "poll"


def test_poll_mode_sees_same_size_same_inode_rewrite(target: Path, hot_prompts: HotPromptsFactory) -> None:
    """An in-place rewrite keeping inode and size within one mtime tick is still caught (hash, not stat)."""
    hp = hot_prompts(target, mode="poll", interval=POLL_INTERVAL)
    st = target.stat()
    data = make_doc(2)
    assert len(data) == len(make_doc(1))
    with open(target, "r+b") as f:
        f.write(data)
    os.utime(target, ns=(st.st_atime_ns, st.st_mtime_ns))
    wait_greeting(hp, 2)


def _enospc_observer() -> Any:
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def test_inotify_limit_falls_back_to_polling(
    target: Path, watcher: WatcherFactory, caplog: pytest.LogCaptureFixture
) -> None:
    w, hints = watcher(target, mode="auto", interval=POLL_INTERVAL, observer_factory=_enospc_observer)
    assert isinstance(w, PollWatcher)
    assert w.mode is WatchMode.POLL
    assert any("falling back to polling" in r.getMessage() for r in caplog.records)
    atomic_write(target, make_doc(2))
    wait_until(lambda: ("poll", True) in hints.calls, timeout=DEADLINE)


class WatchLimitObserver(watch_module.PromptsObserver):
    """A real observer whose watch cannot be added: ``fs.inotify.max_user_watches`` exhausted."""

    def schedule(self, *args: Any, **kwargs: Any) -> Any:
        raise OSError(errno.ENOSPC, "inotify watch limit reached")


def test_watch_limit_at_schedule_falls_back_and_stops_the_observer(
    target: Path, watcher: WatcherFactory, caplog: pytest.LogCaptureFixture
) -> None:
    before = set(threading.enumerate())
    w, hints = watcher(target, mode="auto", interval=POLL_INTERVAL, observer_factory=WatchLimitObserver)
    assert isinstance(w, PollWatcher)
    assert any("inotify watch limit reached" in r.getMessage() for r in caplog.records)
    leaked = [t.name for t in set(threading.enumerate()) - before if not t.name.startswith("promptwatch-poll")]
    assert leaked == []
    atomic_write(target, make_doc(2))
    wait_until(lambda: ("poll", True) in hints.calls, timeout=DEADLINE)


def test_inotify_limit_when_inotify_is_demanded_raises(target: Path, watcher: WatcherFactory) -> None:
    with pytest.raises(OSError) as exc:
        watcher(target, mode="inotify", observer_factory=_enospc_observer)
    assert exc.value.errno == errno.ENOSPC


def test_inotify_limit_in_a_consumer(
    target: Path, hot_prompts: HotPromptsFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A consumer in auto mode keeps working, by polling, when the inotify watch limit is exhausted."""
    real = watch_module.start_watcher

    def start_watcher(*args: Any, **kwargs: Any) -> Any:
        return real(*args, **kwargs, observer_factory=_enospc_observer)

    monkeypatch.setattr(reload_module, "start_watcher", start_watcher)
    hp = hot_prompts(target, mode="auto", interval=POLL_INTERVAL)
    assert hp.mode == "poll"
    atomic_write(target, make_doc(2))
    wait_greeting(hp, 2)
    assert hp.current.source == "poll"


def fake_mountinfo(tmp_path: Path, mounts: list[tuple[str, str]]) -> Path:
    lines = [
        f"{20 + i} 1 0:{30 + i} / {point} rw,relatime shared:{i} - {fstype} server:/export rw"
        for i, (point, fstype) in enumerate(mounts)
    ]
    path = tmp_path / "mountinfo"
    path.write_text("\n".join(lines) + "\n")
    return path


def test_filesystem_type_longest_mount_wins(tmp_path: Path) -> None:
    mi = fake_mountinfo(
        tmp_path,
        [
            ("/", "ext4"),
            ("/srv", "xfs"),
            ("/srv/prompts", "nfs4"),
            ("/srv/prompts2", "cifs"),
            ("/mnt/my\\040share", "fuse.sshfs"),
        ],
    )
    assert filesystem_type(Path("/srv/prompts/prompts.json"), mi) == "nfs4"
    assert filesystem_type(Path("/srv/prompts"), mi) == "nfs4"
    assert filesystem_type(Path("/srv/promptsX"), mi) == "xfs"
    assert filesystem_type(Path("/etc"), mi) == "ext4"
    assert filesystem_type(Path("/mnt/my share/p.json"), mi) == "fuse.sshfs"
    assert filesystem_type(Path("/etc"), tmp_path / "absent") is None


def test_filesystem_type_non_ascii_mount_point(tmp_path: Path) -> None:
    mi = fake_mountinfo(tmp_path, [("/", "ext4"), ("/mnt/промпты\\040бота", "nfs")])
    assert filesystem_type(Path("/mnt/промпты бота/prompts.json"), mi) == "nfs"


def test_filesystem_type_of_this_machine(tmp_path: Path) -> None:
    assert filesystem_type(tmp_path) is not None


@pytest.mark.parametrize("fstype", ["nfs", "nfs4", "cifs", "smb3", "9p", "fuse.sshfs", "fuse"])
def test_auto_mode_polls_on_network_filesystems(
    target: Path,
    tmp_path: Path,
    watcher: WatcherFactory,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    fstype: str,
) -> None:
    mi = fake_mountinfo(tmp_path, [("/", "ext4"), (str(target.parent), fstype)])
    real = watch_module.filesystem_type
    monkeypatch.setattr(watch_module, "filesystem_type", lambda path: real(path, mi))
    monkeypatch.delenv("PROMPTS_WATCH_MODE", raising=False)
    w, hints = watcher(target, interval=POLL_INTERVAL)
    assert isinstance(w, PollWatcher)
    assert any(fstype in r.getMessage() and "polling" in r.getMessage() for r in caplog.records)
    atomic_write(target, make_doc(2))
    wait_until(lambda: len(hints) > 0, timeout=DEADLINE)


@pytest.mark.parametrize(
    ("argument", "env", "fstype", "expected", "detected"),
    [
        (None, None, "ext4", WatchMode.INOTIFY, False),
        (None, None, "nfs4", WatchMode.POLL, True),
        (None, None, "fuse.sshfs", WatchMode.POLL, True),
        (None, "", "ext4", WatchMode.INOTIFY, False),
        (None, "auto", "cifs", WatchMode.POLL, True),
        (None, "poll", "ext4", WatchMode.POLL, False),
        (None, "inotify", "nfs4", WatchMode.INOTIFY, False),
        (None, "POLL", "ext4", WatchMode.POLL, False),
        ("auto", "poll", "ext4", WatchMode.INOTIFY, False),
        ("auto", "inotify", "nfs", WatchMode.POLL, True),
        ("poll", "inotify", "ext4", WatchMode.POLL, False),
        ("inotify", "poll", "nfs4", WatchMode.INOTIFY, False),
        (WatchMode.POLL, None, "ext4", WatchMode.POLL, False),
        (WatchMode.INOTIFY, None, "9p", WatchMode.INOTIFY, False),
    ],
)
def test_watch_mode_truth_table(
    monkeypatch: pytest.MonkeyPatch,
    argument: str | None,
    env: str | None,
    fstype: str,
    expected: WatchMode,
    detected: bool,
) -> None:
    """argument → PROMPTS_WATCH_MODE → auto-detection from the filesystem type."""
    if env is None:
        monkeypatch.delenv("PROMPTS_WATCH_MODE", raising=False)
    else:
        monkeypatch.setenv("PROMPTS_WATCH_MODE", env)
    monkeypatch.setattr(watch_module, "filesystem_type", lambda path: fstype)
    mode, reason = resolve_mode(argument, Path("/srv/prompts"))
    assert mode is expected
    assert (reason is not None) == detected  # a fallback chosen by detection says why


def test_bad_watch_mode_is_rejected(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PROMPTS_WATCH_MODE", "fanotify")
    with pytest.raises(ValueError):
        resolve_mode(None, Path("/srv"))


def test_env_mode_inotify_does_not_fall_back(
    target: Path, watcher: WatcherFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``PROMPTS_WATCH_MODE=inotify`` (any case) demands inotify: a failure is an error, not a silent poll."""
    monkeypatch.setenv("PROMPTS_WATCH_MODE", "Inotify")
    with pytest.raises(OSError):
        watcher(target, observer_factory=_enospc_observer)


# --- the hints themselves -----------------------------------------------------------------------------------


def test_inotify_hints(target: Path, watcher: WatcherFactory) -> None:
    w, hints = watcher(target, mode="inotify")
    assert isinstance(w, InotifyWatcher)
    # Other files in the directory are not hints (for a regular, non-symlink target).
    with open(target.parent / "notes.txt", "w") as f:
        f.write("hello")
    os.rename(target.parent / "notes.txt", target.parent / "notes2.txt")
    # A rename into place is one urgent hint.
    tmp = target.with_name("prompts.json.tmp")
    tmp.write_bytes(make_doc(2))
    os.rename(tmp, target)
    wait_until(lambda: len(hints) >= 1, timeout=DEADLINE)
    assert hints.calls[0] == ("inotify", True)
    # An in-place write: modify (not urgent, to be coalesced), then close-after-write (urgent).
    hints.clear()
    with open(target, "ab") as f:
        f.write(b" ")
    wait_until(lambda: ("inotify", True) in hints.calls, timeout=DEADLINE)
    assert hints.calls[0] == ("inotify", False)
    # A delete is urgent too.
    hints.clear()
    target.unlink()
    wait_until(lambda: ("inotify", True) in hints.calls, timeout=DEADLINE)


def test_watcher_stop_joins_threads(target: Path, backend: dict[str, Any]) -> None:
    w = watch_module.start_watcher(target, lambda source, urgent: None, **backend)
    w.stop()
    names = [t.name for t in threading.enumerate()]
    assert not [n for n in names if n.startswith("promptwatch-")], names


def test_poll_watcher_reports_each_change(target: Path) -> None:
    hints: list[tuple[str, bool]] = []
    with PollWatcher(target, lambda s, u: hints.append((s, u)), interval=POLL_INTERVAL):
        atomic_write(target, make_doc(2))
        wait_until(lambda: hints, timeout=DEADLINE)
    assert set(hints) == {("poll", True)}


@pytest.mark.parametrize("change", ["delete", "rewrite"])
def test_a_change_right_after_start_is_seen_however_late_the_check_thread_runs(
    target: Path, monkeypatch: pytest.MonkeyPatch, change: str
) -> None:
    """The stat baseline is taken in start(), not when the thread first runs: a file deleted (or
    rewritten) between the two would otherwise look unchanged to every later check."""
    hints = Hints()
    watcher = PollWatcher(target, hints, interval=POLL_INTERVAL)
    held: list[threading.Thread] = []
    real_start = threading.Thread.start
    monkeypatch.setattr(threading.Thread, "start", lambda thread: held.append(thread))
    watcher.start()  # the check thread is created but does not run yet
    monkeypatch.setattr(threading.Thread, "start", real_start)
    try:
        if change == "delete":
            target.unlink()
        else:
            atomic_write(target, make_doc(2) + b" " * 64)
        for thread in held:
            thread.start()
        wait_until(lambda: len(hints) > 0, timeout=DEADLINE)
    finally:
        watcher.stop()
    assert hints.calls[0] == ("poll", True)
