"""Helpers shared by every test package: waiting on conditions with deadlines, never bare sleeps."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import TypeVar

import pytest

T = TypeVar("T")

needs_root = pytest.mark.skipif(
    os.geteuid() != 0, reason="needs root (a second uid, mknod, mount): CI and make test run as root"
)
"""For the tests that act as another user or mount a filesystem; everything else they need is installed."""


def wait_until(predicate: Callable[[], T], *, timeout: float = 5.0, interval: float = 0.002, message: str = "") -> T:
    """Poll ``predicate`` until it returns a truthy value; fail the test at the deadline."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"condition not met within {timeout}s: {message or predicate!r}")
        time.sleep(interval)
