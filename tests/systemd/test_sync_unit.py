"""metrotech-sync.service: installed and enabled only when PROMPTS_REDIS_URL is set in the env file."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from .render import make, parse_exposure
from .test_units import needs_analyze, unit

SYNC = "etc/systemd/system/metrotech-sync.service"


def _with_env(root: Path, text: str) -> Path:
    env = root / "etc/metrotech/metrotech.env"
    env.parent.mkdir(parents=True, exist_ok=True)
    env.write_text(text)
    return env


@pytest.mark.parametrize(
    ("text", "installed"),
    [
        ("PROMPTS_REDIS_URL=redis://10.0.0.5:6379/0\n", True),
        ("export PROMPTS_REDIS_URL='redis+sentinel://a:26379,b:26379/mymaster'\n", True),
        ("#PROMPTS_REDIS_URL=redis://10.0.0.5:6379/0\n", False),
        ("PROMPTS_REDIS_URL=\n", False),
        ('PROMPTS_REDIS_URL=""\n', False),
        ("ARI_PASSWORD=x\n", False),
    ],
)
def test_sync_unit_follows_the_env_file(tmp_path: Path, text: str, installed: bool) -> None:
    root = tmp_path / "root"
    _with_env(root, text)
    output = make("install-units", destdir=root)
    assert (root / SYNC).exists() is installed, output
    if not installed:
        assert "skipped    metrotech-sync.service" in output


def test_sync_unit_is_removed_when_the_url_goes(tmp_path: Path) -> None:
    root = tmp_path / "root"
    env = _with_env(root, "PROMPTS_REDIS_URL=unix:///run/redis/redis.sock\n")
    make("install-units", destdir=root)
    assert (root / SYNC).exists()
    env.write_text("# back to one host\n")
    output = make("install-units", destdir=root)
    assert not (root / SYNC).exists() and "removed" in output
    _with_env(root, "PROMPTS_REDIS_URL=unix:///run/redis/redis.sock\n")
    make("install-units", destdir=root)
    make("uninstall-units", destdir=root)
    assert not (root / SYNC).exists()


def test_sync_unit_settings_and_the_order_of_the_others(tmp_path: Path) -> None:
    root = tmp_path / "root"
    _with_env(root, "PROMPTS_REDIS_URL=redis://10.0.0.5:6379/0\n")
    make("install-units", destdir=root)
    sync = unit(root / SYNC)
    service = sync["Service"]
    assert service["Type"] == "notify" and service["ExecStart"] == "/opt/metrotech/venv/bin/promptwatch sync"
    assert service["User"] == "metrotech" and service["ProtectSystem"] == "strict"
    assert service["ReadWritePaths"] == "/etc/metrotech/prompts" and int(service["WatchdogSec"]) > 0
    assert service["SyslogIdentifier"] == "metrotech-sync"
    assert sync["Unit"]["PartOf"] == "metrotech.target" and sync["Install"]["WantedBy"] == "metrotech.target"
    assert "Requires" not in sync["Unit"], "Redis down must not keep the agent (and the host) from starting"
    for other in ("metrotech-bot.service", "metrotech-fastapi.service"):
        after = unit(root / "etc/systemd/system" / other)["Unit"]["After"].split()
        assert "metrotech-sync.service" in after, f"{other} starts after the catch-up"


@needs_analyze
def test_sync_unit_verifies_and_scores_like_the_others(tmp_path: Path) -> None:
    prefix = tmp_path / "opt"
    (prefix / "venv/bin").mkdir(parents=True)
    for exe in ("stasis", "adminapi", "promptwatch"):
        (prefix / "venv/bin" / exe).write_text("#!/bin/sh\n")
        (prefix / "venv/bin" / exe).chmod(0o755)
    root = tmp_path / "root"
    _with_env(root, "PROMPTS_REDIS_URL=redis://10.0.0.5:6379/0\n")
    make("install-units", destdir=root, PREFIX=str(prefix))
    unit_dir = root / "etc/systemd/system"
    result = subprocess.run(
        ["systemd-analyze", "verify", str(unit_dir / "metrotech-sync.service")],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "SYSTEMD_LOG_LEVEL": "notice"},
    )
    assert result.returncode == 0 and result.stderr == "", result.stderr
    scored = subprocess.run(
        ["systemd-analyze", "security", "--offline=yes", "--no-pager", "metrotech-sync.service"],
        cwd=unit_dir,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert parse_exposure(scored.stdout)["metrotech-sync.service"] <= 2.0, scored.stdout
