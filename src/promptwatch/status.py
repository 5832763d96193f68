"""Which process runs which prompts: one small JSON file per watching process in a status directory.

Each consumer writes ``SERVICE.PID.json`` atomically whenever it loads (or fails to load) prompts
and removes it on a clean close.  Readers trust an entry only when it is a regular file (not a
symlink) owned by root, by us or by the directory's owner, and its pid is alive *with* the start
time recorded in the entry, so neither a recycled pid nor another user's forged file shows up as a
consumer.  The entries of processes that are gone (killed with -9) are removed by the next reader.

The default directory, ``/tmp/promptwatch-UID/status``, is private: created 0700 and checked to be
ours (:func:`promptwatch.safeio.ensure_private_dir`); one pre-created by another user is refused.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import socket
import tempfile
from dataclasses import asdict, dataclass, fields
from importlib import metadata
from pathlib import Path

import orjson

from .atomic import TEMP_PREFIX, atomic_write, lock_path
from .errors import UnsafeFileError
from .safeio import ensure_private_dir, open_dir, open_regular, read_fd, trusted_owners

__all__ = [
    "ConsumerStatus",
    "MAX_STATUS_BYTES",
    "default_status_dir",
    "is_private_status_dir",
    "prepare_status_dir",
    "process_start_ticks",
    "read_statuses",
    "remove_status",
    "software_version",
    "write_status",
]


logger = logging.getLogger("promptwatch.status")

MAX_STATUS_BYTES = 64 * 1024
"""An entry is a few hundred bytes; anything larger is not one of ours."""


def _per_user_dir() -> Path:
    return Path(tempfile.gettempdir()) / f"promptwatch-{os.geteuid()}" / "status"


def default_status_dir() -> Path:
    """``$PROMPTS_STATUS_DIR``, else ``$RUNTIME_DIRECTORY/status`` under systemd, else a per-user temp dir."""
    if env := os.environ.get("PROMPTS_STATUS_DIR"):
        return Path(env)
    if runtime := os.environ.get("RUNTIME_DIRECTORY"):
        return Path(runtime.split(":")[0]) / "status"
    return _per_user_dir()


def is_private_status_dir(status_dir: Path) -> bool:
    """Whether ``status_dir`` is the per-user temp location, which must be a private directory of ours."""
    return os.path.abspath(status_dir) == os.path.abspath(_per_user_dir())


def prepare_status_dir(status_dir: Path) -> None:
    """Create ``status_dir`` for writing; the per-user temp location as a checked private directory."""
    if is_private_status_dir(status_dir):
        ensure_private_dir(status_dir)
    else:
        status_dir.mkdir(parents=True, exist_ok=True)


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

    @property
    def is_local(self) -> bool:
        return not self.hostname or self.hostname == socket.gethostname()

    def is_alive(self) -> bool:
        """The pid runs, and is the process that wrote the entry (same start time).  Entries of another
        host sharing the directory cannot be checked and are taken as they are."""
        if not self.is_local:
            return True
        if not isinstance(self.pid, int) or self.proc_start is None:
            return False
        return process_start_ticks(self.pid) == self.proc_start

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
    """Publish ``status`` atomically (not fsynced: it describes a running process, not data).

    No lock: only this process writes its entry.
    """
    prepare_status_dir(status_dir)
    atomic_write(status_dir / status.filename, status.to_json(), durable=False, lock=False)


def remove_status(status_dir: Path, service: str, pid: int) -> None:
    """Remove the entry of ``service``/``pid`` and its lock file (only that process ever writes it)."""
    entry = status_dir / f"{service}.{pid}.json"
    for path in (entry, lock_path(entry)):
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


def _parse_entry(dir_fd: int, name: str, shown: Path, trusted: frozenset[int]) -> tuple[ConsumerStatus, int] | None:
    """The entry ``name`` and its inode, or None when it is not a trusted entry of ours."""
    try:
        fd = open_regular(dir_fd, name, shown)
    except (OSError, UnsafeFileError):
        return None  # gone meanwhile, a symlink, a FIFO: not an entry
    try:
        st = os.fstat(fd)
        if st.st_uid not in trusted:
            logger.debug("status entry %s ignored: owned by uid %d", shown, st.st_uid)
            return None
        data = read_fd(fd, MAX_STATUS_BYTES)
    except OSError:
        return None
    finally:
        os.close(fd)
    if len(data) > MAX_STATUS_BYTES:
        return None
    try:
        raw = orjson.loads(data)
        # Fields a newer writer added are ignored, so mixed versions still see each other.
        status = ConsumerStatus(**{k: v for k, v in raw.items() if k in _FIELDS})
    except (orjson.JSONDecodeError, TypeError, AttributeError):
        return None  # not ours
    if status.filename != name or not isinstance(status.pid, int) or isinstance(status.pid, bool):
        return None
    return status, st.st_ino


def _remove_dead(dir_fd: int, name: str, inode: int) -> None:
    """Remove the entry of a process that is gone (killed with -9), with its lock and temp files."""
    with contextlib.suppress(OSError):
        if os.stat(name, dir_fd=dir_fd, follow_symlinks=False).st_ino != inode:
            return  # rewritten since we read it
        os.unlink(name, dir_fd=dir_fd)
        logger.info("removed status entry %s: its process is gone", name)
    leftovers = [f".{name}.lock"]
    with contextlib.suppress(OSError):
        leftovers += [n for n in os.listdir(dir_fd) if n.startswith(f"{TEMP_PREFIX}{name}.")]
    for other in leftovers:
        with contextlib.suppress(OSError):
            os.unlink(other, dir_fd=dir_fd)


def read_statuses(status_dir: Path, *, path: Path | None = None) -> list[ConsumerStatus]:
    """Every live consumer's status (of the prompts at ``path`` when given), by service then pid.

    Raises :class:`~promptwatch.errors.UnsafeDirectoryError` when the per-user temp location was
    created by someone else.  Entries of processes that are gone are removed.
    """
    out: list[ConsumerStatus] = []
    want = os.path.abspath(path) if path is not None else None
    if is_private_status_dir(status_dir) and not ensure_private_dir(status_dir, create=False):
        return out
    try:
        dir_fd = open_dir(status_dir)
    except (FileNotFoundError, NotADirectoryError):
        return out
    try:
        trusted = trusted_owners(os.fstat(dir_fd))
        for name in sorted(os.listdir(dir_fd)):
            if not name.endswith(".json") or name.startswith("."):
                continue
            parsed = _parse_entry(dir_fd, name, status_dir / name, trusted)
            if parsed is None:
                continue
            status, inode = parsed
            if not status.is_alive():
                if status.is_local:
                    _remove_dead(dir_fd, name, inode)
                continue
            if want is None or status.path == want:
                out.append(status)
    finally:
        os.close(dir_fd)
    return sorted(out, key=lambda s: (s.service, s.pid))
