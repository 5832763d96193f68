"""Fixtures: the admin app served by uvicorn on loopback, real files, real consumer processes."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

import httpx
import pytest
import uvicorn

from adminapi import AdminSettings, create_app
from adminapi.server import server_config
from promptwatch import read_statuses
from tests.util import wait_until

TOKEN = "test-token-0123456789abcdef"
OTHER_TOKEN = "other-token-0123456789abcdef"


@dataclass
class Served:
    url: str
    settings: AdminSettings
    server: uvicorn.Server
    thread: threading.Thread
    app: object = field(repr=False)

    def client(self, token: str | None = TOKEN) -> httpx.Client:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=30)


def make_settings(config_dir: Path, status_dir: Path, tmp_path: Path, **overrides: object) -> AdminSettings:
    values: dict[str, object] = {
        "prompts_path": config_dir / "prompts.json",
        "prompts_status_dir": status_dir,
        "kb_dir": config_dir / "kb",
        "state_dir": tmp_path / "state",
        "calllog_path": tmp_path / "calls.sqlite3",
        "admin_token": TOKEN,
        "admin_tokens": f"second={OTHER_TOKEN}",
        "admin_host": "127.0.0.1",
    }
    values.update(overrides)
    return AdminSettings(_env_file=None, **values)  # type: ignore[call-arg]


def serve(settings: AdminSettings) -> Served:
    app = create_app(settings)
    config = server_config(app, settings, host="127.0.0.1", port=0, lifespan="on")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="uvicorn-test", daemon=True)
    thread.start()
    wait_until(lambda: server.started or not thread.is_alive(), timeout=20, message="uvicorn started")
    if not server.started:
        raise RuntimeError("uvicorn did not start")
    port = server.servers[0].sockets[0].getsockname()[1]
    return Served(f"http://127.0.0.1:{port}", settings, server, thread, app)


def stop(served: Served) -> None:
    served.server.should_exit = True
    served.thread.join(timeout=30)
    assert not served.thread.is_alive(), "uvicorn did not stop"


@pytest.fixture
def settings(config_dir: Path, status_dir: Path, tmp_path: Path) -> AdminSettings:
    return make_settings(config_dir, status_dir, tmp_path)


@pytest.fixture
def served(settings: AdminSettings) -> Iterator[Served]:
    s = serve(settings)
    try:
        yield s
    finally:
        stop(s)


@pytest.fixture
def client(served: Served) -> Iterator[httpx.Client]:
    with served.client() as c:
        yield c


@dataclass
class Consumer:
    proc: subprocess.Popen[bytes]
    service: str

    @property
    def pid(self) -> int:
        return self.proc.pid


@pytest.fixture
def consumer(status_dir: Path, prompts_file: Path) -> Iterator[Callable[[str], Consumer]]:
    """Start real ``promptwatch watch`` processes; each is waited for (its status published) and stopped after."""
    started: list[Consumer] = []

    def start(service: str) -> Consumer:
        env = {**os.environ, "PROMPTS_STATUS_DIR": str(status_dir)}
        proc = subprocess.Popen(
            [sys.executable, "-m", "promptwatch.cli", "watch", str(prompts_file), "--json", "--service", service],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        c = Consumer(proc, service)
        started.append(c)
        wait_until(
            lambda: (
                any(s.pid == proc.pid for s in read_statuses(status_dir, path=prompts_file)) or proc.poll() is not None
            ),
            timeout=20,
            message=f"consumer {service} published its status",
        )
        assert proc.poll() is None, f"consumer {service} exited with {proc.returncode}"
        return c

    yield start
    for c in started:
        if c.proc.poll() is None:
            c.proc.send_signal(signal.SIGCONT)
            c.proc.terminate()
        try:
            c.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            c.proc.kill()
            c.proc.wait()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class Panel(NamedTuple):
    url: str
    log: Path
    pid: int


@contextlib.contextmanager
def spawn_panel(
    config_dir: Path,
    status_dir: Path,
    tmp_path: Path,
    *,
    env: dict[str, str] | None = None,
    prefix: Sequence[str] = (),
    preexec: Callable[[], None] | None = None,
) -> Iterator[Panel]:
    """``adminapi`` in its own process (``prefix`` runs it, e.g. under ``setpriv``)."""
    full = {k: v for k, v in os.environ.items() if not k.startswith(("ADMIN_", "NOTIFY_SOCKET", "JOURNAL_STREAM"))}
    full.update(
        PROMPTS_PATH=str(config_dir / "prompts.json"),
        PROMPTS_STATUS_DIR=str(status_dir),
        KB_DIR=str(config_dir / "kb"),
        STATE_DIR=str(tmp_path / "state"),
        CALLLOG_PATH=str(tmp_path / "calls.sqlite3"),
        ADMIN_TOKEN=TOKEN,
        **(env or {}),
    )
    log = tmp_path / "panel.log"
    with open(log, "wb") as stderr:
        proc = subprocess.Popen(
            [*prefix, sys.executable, "-m", "adminapi.main", "--port", "0"],
            env=full, cwd=tmp_path, stderr=stderr, preexec_fn=preexec,
        )  # fmt: skip
    try:
        found = wait_until(
            lambda: re.search(r"admin panel: (http://\S+)/", log.read_text()) or proc.poll() is not None, timeout=20
        )
        assert proc.poll() is None, log.read_text()
        assert isinstance(found, re.Match)
        yield Panel(found.group(1), log, proc.pid)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
