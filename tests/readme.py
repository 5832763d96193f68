"""The shell examples of README.md, as the README test runs them.

A block fenced with ```` ```sh ```` is an example.  The HTML comment on the line just above a fence
says where it runs:

- no comment: against the stack ``make run`` started, from the repository root, as one bash script
  (``set -euo pipefail``; ``curl`` fails on an HTTP error);
- ``<!-- readme-test: systemd -->``: inside the booted container of ``make test-systemd``;
- ``<!-- readme-test: harness -->``: the commands that *are* the test run (``make run``, ``make test``…),
  each checked to be a target of the Makefile.

A line ending in ``# runs until Ctrl-C …`` is a long-running command: it is started in the
background, its output kept, and stopped when the block is done.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

__all__ = ["LONG_RUNNING", "Block", "readme_blocks", "script_of"]

LONG_RUNNING = re.compile(r"\s+#\s*runs until Ctrl-C\b.*$")
_MARKER = re.compile(r"<!--\s*readme-test:\s*([a-z-]+)\s*-->")


@dataclass(frozen=True)
class Block:
    line: int
    """The line of the opening fence (1-based)."""
    kind: str
    """``stack``, ``systemd`` or ``harness``."""
    text: str

    @property
    def commands(self) -> list[str]:
        """The block's commands, backslash continuations joined, comments and blank lines dropped."""
        out: list[str] = []
        pending = ""
        for raw in self.text.splitlines():
            line = pending + raw
            if line.rstrip().endswith("\\"):
                pending = line.rstrip()[:-1] + " "
                continue
            pending = ""
            if line.strip() and not line.lstrip().startswith("#"):
                out.append(line)
        return out

    def __str__(self) -> str:
        return f"README.md:{self.line}"


def readme_blocks(path: Path) -> list[Block]:
    lines = path.read_text(encoding="utf-8").splitlines()
    blocks: list[Block] = []
    i = 0
    while i < len(lines):
        if lines[i].strip() == "```sh":
            start = i
            marker = _MARKER.search(lines[i - 1]) if i > 0 else None
            body: list[str] = []
            i += 1
            while i < len(lines) and lines[i].strip() != "```":
                body.append(lines[i])
                i += 1
            blocks.append(Block(start + 1, marker.group(1) if marker else "stack", "\n".join(body)))
        i += 1
    return blocks


def script_of(block: Block, *, port: int, logs: Path) -> str:
    """The bash script that runs ``block`` against a stack whose panel listens on ``port``."""
    parts = [
        "set -euo pipefail",
        'curl() { command curl --fail-with-body --silent --show-error "$@"; }',
        "BACKGROUND=()",
    ]
    for n, command in enumerate(block.commands):
        command = command.replace("localhost:8000", f"localhost:{port}").replace("127.0.0.1:8000", f"127.0.0.1:{port}")
        if LONG_RUNNING.search(command):
            command = LONG_RUNNING.sub("", command)
            parts.append(f"{command} > {logs}/bg-{n}.log 2>&1 &")
            parts.append(f"echo $! >> {logs}/bg.pids")
        else:
            parts.append(command)
    return "\n".join(parts) + "\n"
