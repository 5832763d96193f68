from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SAMPLE_CONFIG = REPO / "config"


def pytest_configure(config: pytest.Config) -> None:
    """No env file from the checkout (``make run`` writes ``var/.env``) leaks into a test or its children."""
    os.environ["PROMPTWATCH_ENV_FILE"] = os.devnull


@pytest.fixture
def config_dir(tmp_path: Path) -> Path:
    """A copy of the sample config directory (prompts.json and kb/) in a fresh temp dir."""
    target = tmp_path / "config"
    shutil.copytree(SAMPLE_CONFIG, target)
    return target


@pytest.fixture
def prompts_file(config_dir: Path) -> Path:
    return config_dir / "prompts.json"


@pytest.fixture
def status_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A private status directory, also exported as PROMPTS_STATUS_DIR for child processes."""
    path = tmp_path / "status"
    path.mkdir()
    monkeypatch.setenv("PROMPTS_STATUS_DIR", str(path))
    yield path


@pytest.fixture
def world() -> Iterator[Path]:
    """A directory both root and the attacker (tests/attacker.py) can reach: pytest's temp dirs are root's only."""
    path = Path(tempfile.mkdtemp(prefix="pw-attack-", dir="/tmp"))
    path.chmod(0o755)
    try:
        yield path
    finally:
        shutil.rmtree(path)
