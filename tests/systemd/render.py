"""Helpers shared by the unit tests and the end-to-end test: run the install targets, score units."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SERVICES = ("metrotech-bot.service", "metrotech-fastapi.service")
UNITS = (*SERVICES, "metrotech.target")
MAX_EXPOSURE = 2.0

# The hand-made unit from the operator's notes, as it sits in /etc/systemd/system before the migration.
SEED_FASTAPI_UNIT = """\
[Unit]
Description=Metrotech FastAPI Admin Panel & API
After=network.target redis-server.service
Wants=redis-server.service

[Service]
Type=simple
User=root
WorkingDirectory=/root/Asterisk_bot/asterisk-vox-bot
ExecStart=/bin/bash -lc 'source /root/Asterisk_bot/asterisk-vox-bot/venv/bin/activate && exec python main.py'
Restart=always
RestartSec=10
StandardOutput=append:/root/Asterisk_bot/asterisk-vox-bot/fastapi.log
StandardError=append:/root/Asterisk_bot/asterisk-vox-bot/fastapi.log

[Install]
WantedBy=multi-user.target
"""

_EXPOSURE = re.compile(r"Overall exposure level for (\S+): (\d+\.\d+)")


def make(target: str, *, destdir: Path | None = None, **variables: str) -> str:
    """``make TARGET`` in the repository with ``VAR=value`` overrides; returns its output."""
    argv = ["make", "--no-print-directory", "-s", "-C", str(REPO), target]
    if destdir is not None:
        argv.append(f"DESTDIR={destdir}")
    argv += [f"{name}={value}" for name, value in variables.items()]
    env = {key: value for key, value in os.environ.items() if not key.startswith(("MAKE", "MFLAGS"))}
    result = subprocess.run(argv, capture_output=True, text=True, timeout=120, env=env)
    assert result.returncode == 0, f"{' '.join(argv)} failed:\n{result.stdout}\n{result.stderr}"
    return result.stdout


def has_systemd_analyze() -> bool:
    return shutil.which("systemd-analyze") is not None


def parse_exposure(output: str) -> dict[str, float]:
    """``{unit: score}`` from ``systemd-analyze security`` output."""
    return {match[1]: float(match[2]) for match in _EXPOSURE.finditer(output)}


def offline_exposure(unit_dir: Path) -> dict[str, float]:
    """``systemd-analyze security --offline=yes`` of the service units in ``unit_dir``."""
    result = subprocess.run(
        ["systemd-analyze", "security", "--offline=yes", "--no-pager", *SERVICES],
        cwd=unit_dir,
        capture_output=True,
        text=True,
        timeout=60,
    )
    scores = parse_exposure(result.stdout)
    assert set(scores) == set(SERVICES), f"no score in:\n{result.stdout}\n{result.stderr}"
    return scores
