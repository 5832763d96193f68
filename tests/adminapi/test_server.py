"""The uvicorn setup of the panel: log rate limiting, the connection cap fitted to the descriptor limit."""

from __future__ import annotations

import logging
import resource
from pathlib import Path

import pytest

from adminapi.ratelimit import RateLimitFilter
from adminapi.server import FD_RESERVE, ServerLimits

from .conftest import make_settings


def test_log_lines_clients_can_cause_are_rate_limited(caplog: pytest.LogCaptureFixture) -> None:
    now = [0.0]
    log = logging.getLogger("adminapi.test-ratelimit")
    limiter = RateLimitFilter(burst=10, period=10.0, clock=lambda: now[0])
    log.addFilter(limiter)
    try:
        with caplog.at_level(logging.WARNING, logger=log.name):
            for _ in range(50_000):
                log.warning("Invalid HTTP request received.")
            log.warning("another message %s", 1)  # its own budget
            assert len(caplog.records) == 11
            now[0] = 10.0
            log.warning("Invalid HTTP request received.")
        assert len(caplog.records) == 12
        assert "49990 similar messages suppressed" in caplog.records[-1].getMessage()
    finally:
        log.removeFilter(limiter)


def test_the_connection_cap_stays_below_the_descriptor_limit(
    config_dir: Path, status_dir: Path, tmp_path: Path
) -> None:
    settings = make_settings(config_dir, status_dir, tmp_path, admin_max_connections=5000)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (1024, hard))
        assert ServerLimits.from_settings(settings).max_connections == 1024 - FD_RESERVE
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    small = make_settings(config_dir, status_dir, tmp_path, admin_max_connections=100)
    assert ServerLimits.from_settings(small).max_connections == 100
