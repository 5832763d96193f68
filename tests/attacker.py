"""A second local user for the attacker tests: root is the victim, uid/gid 65534 (nobody) the attacker.

The ``world`` fixture (tests/conftest.py) is a directory both can reach."""

from __future__ import annotations

import os
import subprocess

NOBODY = 65534


def as_nobody(*argv: str | os.PathLike[str], stdin: bytes | None = None) -> None:
    """Run ``argv`` as uid/gid 65534 with no other groups (the attacker); fail the test if it fails."""
    cmd = ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups", *map(os.fspath, argv)]
    result = subprocess.run(cmd, input=stdin, capture_output=True, timeout=30)
    assert result.returncode == 0, f"{cmd}: {result.stderr.decode(errors='replace')}"
