from __future__ import annotations

import asyncio
import shutil
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from stasis.calllog import CallLog
from stasis.service import StasisService
from stasis.settings import StasisSettings
from tests.util import wait_until

from .ari_double import AriDouble
from .fake_openai import FakeOpenAi


@pytest.fixture
def espeak() -> str:
    """The real espeak-ng: `make test` installs it, so a missing one fails the test (a skip would hide it)."""
    path = shutil.which("espeak-ng")
    if path is None:
        pytest.fail("espeak-ng is not installed: `make test` installs it as root (apt-get install espeak-ng)")
    return path


needs_espeak = pytest.mark.usefixtures("espeak")


@pytest.fixture
def ari() -> Iterator[AriDouble]:
    double = AriDouble().start()
    yield double
    double.stop()


@pytest.fixture
def openai() -> Iterator[FakeOpenAi]:
    fake = FakeOpenAi().start()
    yield fake
    fake.stop()


@pytest.fixture
def make_settings(
    tmp_path: Path, config_dir: Path, status_dir: Path, ari: AriDouble, openai: FakeOpenAi
) -> Callable[..., StasisSettings]:
    def make(**overrides: Any) -> StasisSettings:
        values: dict[str, Any] = {
            "prompts_path": config_dir / "prompts.json",
            "prompts_status_dir": status_dir,
            "ari_url": ari.url,
            "ari_user": "asterisk",
            "ari_password": "secret",
            "ari_app": "metrotech",
            "ari_reconnect_max_seconds": 0.2,
            "stt_backend": "openai",
            "stt_url": openai.url,
            "tts_backend": "openai",
            "tts_url": openai.url,
            "sounds_dir": tmp_path / "sounds",
            "state_dir": tmp_path / "var",
            "calllog_path": tmp_path / "var" / "calls.sqlite3",
            "call_grace_seconds": 5,
            "filler_after_ms": 1500,
            "llm_timeout_seconds": 2,
            "stt_timeout_seconds": 2,
            "tts_timeout_seconds": 3,
        }
        values.update(overrides)
        return StasisSettings(_env_file=None, **values)  # type: ignore[call-arg]

    return make


class RunningService:
    """``StasisService`` in a thread of its own (its own event loop), stopped like SIGTERM would."""

    def __init__(self, settings: StasisSettings) -> None:
        self.settings = settings
        self.service = StasisService(settings, install_signals=False)
        self.exit_code: int | None = None
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="stasis-service", daemon=True)

    def _run(self) -> None:
        try:
            self.exit_code = asyncio.run(self.service.run())
        except BaseException as e:
            self.error = e

    def start(self, *, wait_ari: bool = True) -> RunningService:
        self._thread.start()
        wait_until(lambda: self.service.ready.is_set() or self.error, timeout=15, message="service ready")
        if self.error:
            raise self.error
        if wait_ari:
            wait_until(lambda: self.service.ari_state == "connected", timeout=10, message="ARI connected")
        return self

    def stop(self) -> int | None:
        if self._thread.is_alive():
            self.service.request("stop")
            self._thread.join(60)
            assert not self._thread.is_alive(), "service did not stop"
        if self.error:
            raise self.error
        return self.exit_code

    def calllog(self) -> CallLog:
        return CallLog(self.settings.calllog_path, readonly=True)


@pytest.fixture
def start_service() -> Iterator[Callable[..., RunningService]]:
    running: list[RunningService] = []

    def start(settings: StasisSettings, *, wait_ari: bool = True) -> RunningService:
        svc = RunningService(settings)
        running.append(svc)
        return svc.start(wait_ari=wait_ari)

    yield start
    for svc in running:
        svc.stop()
