"""Fixtures: the admin app served by uvicorn on loopback, real files, real consumer processes."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

import httpx
import pytest
import uvicorn
from playwright.sync_api import Browser, BrowserContext, Page, sync_playwright

from adminapi import AdminSettings, create_app
from adminapi.main import PanelServer
from adminapi.server import server_config
from promptwatch import atomic_write, read_statuses, sha256_hex
from promptwatch.atomic import read_bytes
from tests.util import wait_until

if TYPE_CHECKING:
    from .browserkit import Panel

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


def serve(settings: AdminSettings, port: int = 0) -> Served:
    app = create_app(settings)
    config = server_config(app, settings, host="127.0.0.1", port=port, lifespan="on")
    server = PanelServer(config)
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


@contextlib.contextmanager
def consumers(status_dir: Path, prompts_file: Path) -> Iterator[Callable[[str], Consumer]]:
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

    try:
        yield start
    finally:
        for c in started:
            if c.proc.poll() is None:
                c.proc.send_signal(signal.SIGCONT)
                c.proc.terminate()
            try:
                c.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                c.proc.kill()
                c.proc.wait()


@pytest.fixture
def consumer(status_dir: Path, prompts_file: Path) -> Iterator[Callable[[str], Consumer]]:
    with consumers(status_dir, prompts_file) as start:
        yield start


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


# ---- the browser suite: one Chromium and one panel server for this package (stopped before the next one) --


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """One Chromium per test module: Playwright's sync API keeps an event loop running in this thread while it
    is open, which would break the asyncio tests of the modules after it."""
    from .browserkit import CHROMIUM, CHROMIUM_ARGS

    if not os.path.exists(CHROMIUM):
        pytest.fail(f"{CHROMIUM} is missing: apt-get install -y chromium")
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            yield b
        finally:
            b.close()


@pytest.fixture(scope="package")
def session_panel(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Panel]:
    from .browserkit import SAMPLE, Panel

    root = tmp_path_factory.mktemp("panel")
    shutil.copytree(SAMPLE, root / "config")
    (root / "status").mkdir()
    settings = make_settings(
        root / "config",
        root / "status",
        root,
        admin_tokens=f"second={OTHER_TOKEN}",
        admin_expected_consumers="metrotech-bot",
        admin_wait_max_ms=1500,  # a stopped consumer makes a save wait this long
    )
    served = serve(settings)
    try:
        yield Panel(served, root)
    finally:
        stop(served)


@pytest.fixture
def panel(session_panel: Panel) -> Panel:
    """The session's panel with the sample prompts on disk (written atomically, as a hand edit would be)."""
    from .browserkit import SAMPLE

    sample = (SAMPLE / "prompts.json").read_bytes()
    if read_bytes(session_panel.prompts_file) != sample:
        atomic_write(session_panel.prompts_file, sample)
        with session_panel.served.client() as c:
            wait_until(lambda: c.get("/api/status").json()["sha256"] == sha256_hex(sample), timeout=10)
            # The panel's watcher has recorded it: the next save is not blamed on a stale ETag.
            wait_until(lambda: c.get("/api/prompts/history?limit=1").json()["items"][0]["sha256"] == sha256_hex(sample))
    return session_panel


@pytest.fixture
def contexts(browser: Browser) -> Iterator[Callable[..., BrowserContext]]:
    """New browser sessions (axe-core preloaded); after the test none may have had a script error."""
    from .browserkit import AXE, DESKTOP

    made: list[BrowserContext] = []
    problems: list[str] = []

    def watch(page: Page) -> None:
        page.on("pageerror", lambda e: problems.append(f"uncaught: {e}"))
        page.on(
            "console",
            lambda m: (
                problems.append(m.text) if m.type == "error" and "Failed to load resource" not in m.text else None
            ),
        )

    def new(**options: Any) -> BrowserContext:
        ctx = browser.new_context(**{"locale": "ru-RU", "viewport": DESKTOP, **options})
        ctx.set_default_timeout(10_000)
        ctx.add_init_script(path=str(AXE))  # init scripts are not subject to the page's CSP
        ctx.on("page", watch)
        made.append(ctx)
        return ctx

    yield new
    for ctx in made:
        ctx.close()
    assert not problems, problems


@pytest.fixture
def panel_consumer(session_panel: Panel) -> Iterator[Callable[[str], Consumer]]:
    """Real ``promptwatch watch`` processes on the session panel's prompts; stopped after the test."""
    with consumers(session_panel.status_dir, session_panel.prompts_file) as start:
        yield start


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
