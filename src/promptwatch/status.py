"""Which process runs which prompts: one small JSON file per watching process in a status directory.

Each consumer writes ``SERVICE.PID.json`` atomically whenever it loads (or fails to load) prompts
and removes it on a clean close.  Readers skip entries whose process is gone: the pid must be alive
*and* have the start time recorded in the entry, so a recycled pid is not mistaken for the writer.
"""

from __future__ import annotations

import contextlib
import functools
import os
import socket
import tempfile
from dataclasses import asdict, dataclass, fields
from importlib import metadata
from pathlib import Path

import orjson

from .atomic import atomic_write, lock_path

__all__ = [
    "ConsumerStatus",
    "default_status_dir",
    "process_start_ticks",
    "read_statuses",
    "remove_status",
    "software_version",
    "write_status",
]


def default_status_dir() -> Path:
    """``$PROMPTS_STATUS_DIR``, else ``$RUNTIME_DIRECTORY/status`` under systemd, else a per-user temp dir."""
    if env := os.environ.get("PROMPTS_STATUS_DIR"):
        return Path(env)
    if runtime := os.environ.get("RUNTIME_DIRECTORY"):
        return Path(runtime.split(":")[0]) / "status"
    return Path(tempfile.gettempdir()) / f"promptwatch-{os.getuid()}" / "status"


def process_start_ticks(pid: int) -> int | None:
    """The start time of ``pid`` in clock ticks since boot (field 22 of ``/proc/PID/stat``)."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_bytes()
    except OSError:
        return None
    # The command name (field 2) may contain spaces and parentheses: split after the last ')'.
    fields = raw[raw.rfind(b")") + 2 :].split()
    return int(fields[19]) if len(fields) > 19 else None


@dataclass(frozen=True)
class ConsumerStatus:
    """What one process reports about the prompts it runs."""

    service: str
    pid: int
    path: str
    sha256: str | None
    loaded_at: float | None
    source: str | None
    mode: str
    last_error: str | None
    updated_at: float
    started_at: float
    hostname: str = ""
    proc_start: int | None = None
    version: str = ""
    """The promptwatch version the process runs (empty from older writers)."""

    @property
    def filename(self) -> str:
        return f"{self.service}.{self.pid}.json"

    def is_alive(self) -> bool:
        if self.hostname and self.hostname != socket.gethostname():
            return True  # another host sharing the directory: we cannot check, trust the entry
        ticks = process_start_ticks(self.pid)
        return ticks is not None and (self.proc_start is None or ticks == self.proc_start)

    def to_json(self) -> bytes:
        return orjson.dumps(asdict(self))


_FIELDS = frozenset(f.name for f in fields(ConsumerStatus))


@functools.cache
def software_version() -> str:
    """The installed promptwatch version, as every process reports it in its status."""
    try:
        return metadata.version("promptwatch")
    except metadata.PackageNotFoundError:
        return "unknown"


def write_status(status_dir: Path, status: ConsumerStatus) -> None:
    """Publish ``status`` atomically (not fsynced: it describes a running process, not data)."""
    status_dir.mkdir(parents=True, exist_ok=True)
    atomic_write(status_dir / status.filename, status.to_json(), durable=False)


def remove_status(status_dir: Path, service: str, pid: int) -> None:
    """Remove the entry of ``service``/``pid`` and its lock file (only that process ever writes it)."""
    entry = status_dir / f"{service}.{pid}.json"
    for path in (entry, lock_path(entry)):
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


def read_statuses(status_dir: Path, *, path: Path | None = None) -> list[ConsumerStatus]:
    """Every live consumer's status (of the prompts at ``path`` when given), by service then pid."""
    out: list[ConsumerStatus] = []
    want = os.path.abspath(path) if path is not None else None
    try:
        entries = sorted(os.scandir(status_dir), key=lambda e: e.name)
    except FileNotFoundError:
        return out
    for entry in entries:
        if not entry.name.endswith(".json") or entry.name.startswith("."):
            continue
        try:
            raw = orjson.loads(Path(entry.path).read_bytes())
            # Fields a newer writer added are ignored, so mixed versions still see each other.
            status = ConsumerStatus(**{k: v for k, v in raw.items() if k in _FIELDS})
        except (OSError, orjson.JSONDecodeError, TypeError):
            continue  # being replaced, or not ours
        if want is not None and status.path != want:
            continue
        if status.is_alive():
            out.append(status)
    return sorted(out, key=lambda s: (s.service, s.pid))
