"""Helpers of the promptwatch tests: documents of a known version, collected watcher hints."""

from __future__ import annotations

import os
import queue
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import orjson

REPO = Path(__file__).resolve().parents[2]
PROMPTWATCH = Path(sys.executable).parent / "promptwatch"
"""The installed console script."""
POLL_INTERVAL = 0.05

BACKENDS: dict[str, dict[str, Any]] = {
    "inotify": {"mode": "inotify"},
    "poll": {"mode": "poll", "interval": POLL_INTERVAL},
}


def make_doc(version: int | str, *, size: int = 0, **extra: Any) -> bytes:
    """A valid prompts document whose greeting names ``version``, padded to at least ``size`` bytes."""
    doc: dict[str, Any] = {
        "system_prompt": "Ты — вежливый голосовой ассистент.",
        "greeting": f"Здравствуйте! Версия {version}.",
        "fillers": ["Секундочку…", "Сейчас посмотрю."],
    }
    doc.update(extra)
    data = orjson.dumps(doc, option=orjson.OPT_INDENT_2)
    if len(data) < size:
        doc["padding"] = "x" * (size - len(data) - 16)
        data = orjson.dumps(doc, option=orjson.OPT_INDENT_2)
    return data


def greeting_of(version: int | str) -> str:
    return f"Здравствуйте! Версия {version}."


class Hints:
    """Collects the ``notify(source, urgent)`` hints of a watcher."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, bool]] = []

    def __call__(self, source: str, urgent: bool) -> None:
        self.calls.append((source, urgent))

    def __len__(self) -> int:
        return len(self.calls)

    def clear(self) -> None:
        self.calls.clear()


def assert_no_temp_files(directory: Path) -> None:
    left = [p.name for p in directory.iterdir() if p.name.startswith(".pw-tmp-")]
    assert left == [], f"temp files left behind in {directory}: {left}"


class Child:
    """A child process whose stdout lines are read by a thread, so a test can wait for one with a deadline."""

    def __init__(self, argv: list[str], **kwargs: Any) -> None:
        kwargs.setdefault("cwd", REPO)
        stderr = kwargs.pop("stderr", subprocess.PIPE)  # or a file, to see what the child writes to it
        self.proc = subprocess.Popen(
            argv,
            stdin=kwargs.pop("stdin", subprocess.DEVNULL),
            stdout=subprocess.PIPE,
            stderr=stderr,
            text=True,
            **kwargs,
        )
        self._lines: queue.SimpleQueue[str | None] = queue.SimpleQueue()
        self._stderr: list[str] = []
        assert self.proc.stdout is not None
        self._threads = [threading.Thread(target=self._pump_stdout, args=(self.proc.stdout,), daemon=True)]
        if self.proc.stderr is not None:
            self._threads.append(threading.Thread(target=self._pump_stderr, args=(self.proc.stderr,), daemon=True))
        for t in self._threads:
            t.start()

    def _pump_stdout(self, stream: Any) -> None:
        for line in stream:
            self._lines.put(line.rstrip("\n"))
        self._lines.put(None)  # end of output

    def _pump_stderr(self, stream: Any) -> None:
        for line in stream:
            self._stderr.append(line.rstrip("\n"))

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def stderr(self) -> str:
        return "\n".join(self._stderr)

    def line(self, timeout: float = 10.0) -> str:
        """The next line of stdout; fails the test at the deadline or at end of output."""
        try:
            line = self._lines.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(f"no output within {timeout}s; stderr: {self.stderr}") from None
        if line is None:
            self._lines.put(None)
            raise AssertionError(f"output ended (exit {self.proc.poll()}); stderr: {self.stderr}")
        return line

    def wait(self, timeout: float = 10.0) -> int:
        code = self.proc.wait(timeout=timeout)
        for t in self._threads:
            t.join(timeout=timeout)
        return code

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.wait()
        for stream in (self.proc.stdout, self.proc.stderr):
            if stream is not None:
                stream.close()


def run_cli(
    *args: str | os.PathLike[str], stdin: bytes | None = None, env: dict[str, str] | None = None, timeout: float = 30.0
) -> subprocess.CompletedProcess[str]:
    """Run the installed ``promptwatch`` console script to completion."""
    return subprocess.run(
        [os.fspath(PROMPTWATCH), *(os.fspath(a) for a in args)],
        input=stdin.decode() if stdin is not None else None,
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=REPO,
        env=env,
    )
