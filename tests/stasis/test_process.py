"""``stasis run`` and ``stasis console`` as real processes: sd_notify datagrams, SIGHUP, SIGTERM, stdin."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import orjson
import pytest

from promptwatch import sha256_hex, write_document
from stasis.calllog import CallLog

from .ari_double import AriDouble, wait_for
from .fake_openai import FakeOpenAi

STATUS = re.compile(r"STATUS=prompts [0-9a-f]{8} \((inotify|poll|off)\) · ARI (\w+)[^·]* · (\d+) calls?( · .*)?")


class NotifySocket:
    """The systemd side of sd_notify: an AF_UNIX datagram socket, every message kept."""

    def __init__(self, directory: Path) -> None:
        self.path = directory / "notify.sock"
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(self.path))
        self.sock.settimeout(0.05)
        self.messages: list[str] = []

    def _pump(self) -> None:
        try:
            while True:
                self.messages.append(self.sock.recv(4096).decode())
        except TimeoutError:
            pass

    def wait(self, predicate: Callable[[str], bool], timeout: float = 15.0) -> str:
        """The first message (since the start) matching ``predicate``; waits for it."""
        deadline = time.monotonic() + timeout
        seen = 0
        while True:
            for message in self.messages[seen:]:
                if predicate(message):
                    return message
            seen = len(self.messages)
            if time.monotonic() > deadline:
                raise AssertionError(f"no matching sd_notify message in {self.messages!r}")
            self._pump()

    def lifecycle(self) -> list[str]:
        """The messages other than STATUS= and WATCHDOG=1, in order."""
        self._pump()
        return [m for m in self.messages if not m.startswith("STATUS=") and m != "WATCHDOG=1"]

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def notify_socket() -> Iterator[NotifySocket]:
    with tempfile.TemporaryDirectory(prefix="stasis-notify-") as tmp:
        ns = NotifySocket(Path(tmp))
        yield ns
        ns.close()


def service_env(tmp_path: Path, config_dir: Path, ari_url: str, openai: FakeOpenAi, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("NOTIFY_", "WATCHDOG_", "JOURNAL_"))}
    env.update(
        PROMPTS_PATH=str(config_dir / "prompts.json"),
        PROMPTS_STATUS_DIR=str(tmp_path / "status"),
        ARI_URL=ari_url,
        ARI_USER="asterisk",
        ARI_PASSWORD="secret",
        ARI_APP="metrotech",
        ARI_RECONNECT_MAX_SECONDS="0.3",
        STT_BACKEND="openai",
        STT_URL=openai.url,
        TTS_BACKEND="openai",
        TTS_URL=openai.url,
        SOUNDS_DIR=str(tmp_path / "sounds"),
        CALLLOG_PATH=str(tmp_path / "calls.sqlite3"),
        LOG_LEVEL="INFO",
    )
    env.update(extra)
    return env


def spawn(args: list[str], env: dict[str, str], cwd: Path, **kw: object) -> subprocess.Popen[str]:
    return subprocess.Popen(  # type: ignore[call-overload, no-any-return]
        [sys.executable, "-m", "stasis.cli", *args],
        env=env,
        cwd=cwd,
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        **kw,
    )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_ready_status_watchdog_reload_and_stop(
    tmp_path: Path, config_dir: Path, ari: AriDouble, openai: FakeOpenAi, notify_socket: NotifySocket
) -> None:
    # Asterisk is not there yet: readiness must not wait for it.
    ari.stop()
    env = service_env(
        tmp_path,
        config_dir,
        ari.url,
        openai,
        NOTIFY_SOCKET=str(notify_socket.path),
        WATCHDOG_USEC="200000",
        PROMPTS_HOT_RELOAD="false",  # so that SIGHUP is what reloads
        CALL_GRACE_SECONDS="0.2",
    )
    proc = spawn(["run"], env, tmp_path)
    try:
        notify_socket.wait(lambda m: m == "READY=1")
        down = notify_socket.wait(lambda m: bool(STATUS.fullmatch(m)) and "ARI disconnected" in m)
        assert down.startswith(
            f"STATUS=prompts {sha256_hex((config_dir / 'prompts.json').read_bytes())[:8]} (off)"
        ) or ("· 0 calls" in down)
        notify_socket.wait(lambda m: m == "WATCHDOG=1")

        ari.start()  # Asterisk comes up: the status says so
        notify_socket.wait(lambda m: "ARI connected · 0 calls" in m)

        # SIGHUP: RELOADING=1 with MONOTONIC_USEC, prompts re-read (source "signal"), READY=1
        data = orjson.loads((config_dir / "prompts.json").read_bytes())
        data["greeting"] = "После SIGHUP."
        new_sha, _ = write_document(config_dir / "prompts.json", orjson.dumps(data))
        before = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
        proc.send_signal(signal.SIGHUP)
        notify_socket.wait(lambda m: m.startswith("RELOADING=1"))
        notify_socket.wait(lambda m: f"STATUS=prompts {new_sha[:8]}" in m)
        life = notify_socket.lifecycle()
        assert life[0] == "READY=1"
        reloading = life[1]
        match = re.fullmatch(r"RELOADING=1\nMONOTONIC_USEC=(\d+)", reloading)
        assert match, reloading
        assert before <= int(match.group(1)) <= time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
        wait_for(lambda: notify_socket.lifecycle()[2:3] == ["READY=1"], message="READY=1 after reload")

        # a call in progress when SIGTERM arrives: goodbye after the grace period, hung up, logged
        ch = ari.place_call()
        wait_for(lambda: ari.channels[ch].recordings, message="call listening")
        notify_socket.wait(lambda m: "ARI connected · 1 call" in m)
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=30)
        assert proc.returncode == 0, err
        assert notify_socket.lifecycle() == ["READY=1", reloading, "READY=1", "STOPPING=1"]
        assert ari.channels[ch].hung_up_by == "app"
        assert len(ari.channels[ch].played) >= 2  # greeting, goodbye
        # the recording in progress was canceled first, else Asterisk plays the goodbye only after it
        assert [r[3] for r in ari.requests if r[0] == "DELETE" and r[1].startswith("/recordings/live/")] == [204]
        assert ari.channels[ch].played[-1].state == "done" and not ari.channels[ch].played[-1].stopped
        log = CallLog(tmp_path / "calls.sqlite3", readonly=True)
        try:
            detail = log.get_call(ch)
        finally:
            log.close()
        assert detail is not None and detail.end_reason == "shutdown" and detail.prompts_sha256 == new_sha
        assert "source=signal" in err
        assert f"call={ch} start" in err and f"call={ch} end reason=shutdown" in err
    finally:
        if proc.poll() is None:
            proc.kill()
            print(proc.communicate()[1][-4000:])


def test_bad_settings_are_a_clear_error(tmp_path: Path, config_dir: Path, openai: FakeOpenAi) -> None:
    env = service_env(tmp_path, config_dir, "http://127.0.0.1:1", openai, MAX_CALLS="many")
    proc = spawn(["run"], env, tmp_path)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 1
    assert err.startswith("stasis: invalid settings: MAX_CALLS:")
    assert "Traceback" not in err

    env = service_env(tmp_path, config_dir, "http://127.0.0.1:1", openai, PROMPTS_PATH=str(tmp_path / "missing.json"))
    proc = spawn(["run"], env, tmp_path)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 1
    assert "missing.json: prompts file not found" in err and "Traceback" not in err


def test_console_scripted_through_stdin(tmp_path: Path, config_dir: Path, openai: FakeOpenAi) -> None:
    prompts = orjson.loads((config_dir / "prompts.json").read_bytes())
    env = service_env(tmp_path, config_dir, "http://127.0.0.1:1", openai)
    script = "Сколько стоит доставка?\n/new\nКогда работает офис?\nдо свидания\nА какие тарифы?\n"
    proc = spawn(["console"], env, tmp_path, stdin=subprocess.PIPE)
    out, err = proc.communicate(script, timeout=30)
    assert proc.returncode == 0, err
    lines = out.splitlines()
    sha = sha256_hex((config_dir / "prompts.json").read_bytes())[:8]
    assert lines == [
        f"— звонок 1 (промпты {sha})",
        f"бот: {prompts['greeting']}",
        "вы: Сколько стоит доставка?",
        lines[3],
        f"— звонок 2 (промпты {sha})",
        f"бот: {prompts['greeting']}",
        "вы: Когда работает офис?",
        lines[7],
        "вы: до свидания",
        f"бот: {prompts['goodbye']}",
        # the goodbye ended the call, not the console: the next line starts call 3
        f"— звонок 3 (промпты {sha})",
        f"бот: {prompts['greeting']}",
        "вы: А какие тарифы?",
        lines[13],
    ]
    assert lines[3].startswith("бот: Доставка оборудования по Москве")
    assert lines[7].startswith("бот: Офис работает с понедельника по пятницу")
    assert lines[13].startswith("бот: ") and len(lines[13]) > len("бот: ")


def test_console_goes_on_after_goodbyes_and_max_turns_and_logs_every_call(
    tmp_path: Path, config_dir: Path, openai: FakeOpenAi
) -> None:
    env = service_env(tmp_path, config_dir, "http://127.0.0.1:1", openai, MAX_TURNS="2")
    script = "Сколько стоит доставка?\nдо свидания\nКогда работает офис?\nпока\nТарифы\nАдрес\nСпасибо\n"
    proc = spawn(["console"], env, tmp_path, stdin=subprocess.PIPE)
    out, err = proc.communicate(script, timeout=30)
    assert proc.returncode == 0, err
    assert [line for line in out.splitlines() if line.startswith("— звонок")] == [
        f"— звонок {n} (промпты {sha256_hex((config_dir / 'prompts.json').read_bytes())[:8]})" for n in (1, 2, 3, 4)
    ]
    # every line was heard, by the call it started or continued
    heard = [line.removeprefix("вы: ") for line in out.splitlines() if line.startswith("вы: ")]
    assert heard == script.splitlines()

    log = CallLog(tmp_path / "calls.sqlite3", readonly=True)
    try:
        calls, total = log.list_calls()
        calls.reverse()  # oldest first
        assert total == 4
        assert [c.end_reason for c in calls] == ["goodbye", "goodbye", "max_turns", "caller_hangup"]
        assert all(c.console and c.caller_number == "console" and c.answered_at for c in calls)
        assert len({c.id for c in calls}) == 4 and all(c.id.startswith("console-") for c in calls)
        turns = []
        for call in calls:
            detail = log.get_call(call.id)
            assert detail is not None and detail.turn_count == len(detail.turns)
            turns.append([t.caller_text for t in detail.turns])
    finally:
        log.close()
    assert turns == [
        ["Сколько стоит доставка?", "до свидания"],
        ["Когда работает офис?", "пока"],
        ["Тарифы", "Адрес"],
        ["Спасибо"],
    ]


@pytest.mark.parametrize("ending", ["/quit\n", "\x04"], ids=["quit", "ctrl-d"])
def test_console_on_a_terminal_goes_on_after_a_goodbye_until_quit_or_ctrl_d(
    tmp_path: Path, config_dir: Path, openai: FakeOpenAi, ending: str
) -> None:
    env = service_env(tmp_path, config_dir, "http://127.0.0.1:1", openai)
    master, slave = os.openpty()
    try:
        proc = spawn(["console"], env, tmp_path, stdin=slave)
        os.close(slave)
        slave = -1
        # typed ahead: the terminal's line discipline hands the console one line at a time
        os.write(master, ("до свидания\nСколько стоит доставка?\nпока\n" + ending).encode())
        out, err = proc.communicate(timeout=30)
    finally:
        os.close(master)
        if slave != -1:
            os.close(slave)
    assert proc.returncode == 0, err
    assert "— звонок 1 завершён (goodbye); новая фраза начнёт звонок, /quit — выход" in out
    assert "— звонок 2 завершён (goodbye)" in out
    assert "— звонок 3 " not in out  # /quit or Ctrl-D ended the console, not a new call
    log = CallLog(tmp_path / "calls.sqlite3", readonly=True)
    try:
        assert [c.end_reason for c in log.list_calls()[0]] == ["goodbye", "goodbye"]
    finally:
        log.close()


def test_console_without_a_writable_call_log_says_so_and_runs(
    tmp_path: Path, config_dir: Path, openai: FakeOpenAi
) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("")
    env = service_env(tmp_path, config_dir, "http://127.0.0.1:1", openai, CALLLOG_PATH=str(blocker / "calls.sqlite3"))
    proc = spawn(["console"], env, tmp_path, stdin=subprocess.PIPE)
    out, err = proc.communicate("Сколько стоит доставка?\n", timeout=30)
    assert proc.returncode == 0, err
    assert f"stasis: call log {blocker / 'calls.sqlite3'}: " in err and "console calls are not logged" in err
    assert "Traceback" not in err
    assert "вы: Сколько стоит доставка?" in out.splitlines()


def test_console_ends_at_eof(tmp_path: Path, config_dir: Path, openai: FakeOpenAi) -> None:
    env = service_env(tmp_path, config_dir, "http://127.0.0.1:1", openai)
    proc = spawn(["console"], env, tmp_path, stdin=subprocess.PIPE)
    out, err = proc.communicate("", timeout=30)
    assert proc.returncode == 0, err
    assert out.splitlines()[1].startswith("бот: Здравствуйте!")


def test_console_sigint_says_goodbye_and_exits_0(tmp_path: Path, config_dir: Path, openai: FakeOpenAi) -> None:
    prompts = orjson.loads((config_dir / "prompts.json").read_bytes())
    env = service_env(tmp_path, config_dir, "http://127.0.0.1:1", openai)
    proc = spawn(["console"], env, tmp_path, stdin=subprocess.PIPE)
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().startswith("— звонок 1")
        assert proc.stdout.readline() == f"бот: {prompts['greeting']}\n"
        proc.send_signal(signal.SIGINT)  # waiting for the caller (stdin still open): the call ends politely
        assert proc.wait(timeout=30) == 0
        assert proc.stdout.read() == f"бот: {prompts['goodbye']}\n"
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate()  # closes the pipes
