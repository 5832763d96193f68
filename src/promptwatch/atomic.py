"""Durable atomic replacement of a file, serialised by an advisory lock, optionally conditional.

The temp file is created in the target's own directory (so ``os.replace`` is a rename within one
filesystem, which inotify reports as a move into the target), flushed and fsynced, renamed over the
target, and the directory is fsynced.  A writer killed at any point leaves the target wholly old
or wholly new; its temp file is removed by the next write.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import secrets
import stat
from collections.abc import Iterator
from pathlib import Path

from .errors import ConflictError, WriteError
from .etag import sha_matches
from .schema import MAX_DOCUMENT_BYTES, Prompts, parse_document, sha256_hex

__all__ = ["TEMP_PREFIX", "atomic_write", "file_lock", "lock_path", "read_bytes", "write_document"]

TEMP_PREFIX = ".pw-tmp-"


def lock_path(target: Path) -> Path:
    """The advisory lock file that serialises writers of ``target``: ``.NAME.lock`` beside it."""
    return target.with_name(f".{target.name}.lock")


@contextlib.contextmanager
def file_lock(target: Path) -> Iterator[None]:
    """Hold the exclusive advisory (``flock``) lock of ``target`` for the duration of the block."""
    path = lock_path(target)
    try:
        # Read-only is enough for flock, and closing it is no close-after-write event for watchers.
        fd = os.open(path, os.O_RDONLY | os.O_CREAT | os.O_CLOEXEC, 0o644)
    except OSError as e:
        if e.errno == errno.ENOENT and not target.parent.is_dir():
            raise WriteError(str(target), f"directory {target.parent} does not exist") from e
        raise WriteError(str(target), f"cannot open lock file {path}: {e.strerror}") from e
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing the descriptor releases the lock


def read_bytes(target: Path, limit: int | None = None) -> bytes | None:
    """The current content of ``target`` (at most ``limit`` + 1 bytes), or None when it does not exist."""
    try:
        with open(target, "rb") as f:
            return f.read() if limit is None else f.read(limit + 1)
    except FileNotFoundError:
        return None


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _remove_stale_temps(directory: Path, name: str) -> None:
    """Remove temp files that killed writers of ``name`` left behind (we hold the lock)."""
    prefix = f"{TEMP_PREFIX}{name}."
    with contextlib.suppress(FileNotFoundError):
        for entry in os.scandir(directory):
            if entry.name.startswith(prefix):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(entry.path)


def _create_temp(directory: Path, name: str, mode: int) -> tuple[int, str]:
    """An exclusive new temp file ``.pw-tmp-NAME.XXXXXXXX`` in ``directory``, created with ``mode``."""
    for _ in range(100):
        path = os.path.join(directory, f"{TEMP_PREFIX}{name}.{secrets.token_hex(4)}")
        try:
            return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, mode), path
        except FileExistsError:
            continue
    raise FileExistsError(errno.EEXIST, "no free temporary name", str(directory))


def _write_replace(target: Path, data: bytes, *, durable: bool) -> None:
    directory = target.parent
    try:
        st: os.stat_result | None = os.stat(target)
    except FileNotFoundError:
        st = None
    # Created with the final mode (umask applies to a new file), so that usually no fchmod/fchown
    # follows: every metadata change would be one more inotify event for every watcher.
    mode = stat.S_IMODE(st.st_mode) if st is not None else 0o666
    fd, tmp = _create_temp(directory, target.name, mode)
    try:
        try:
            if st is not None:
                made = os.fstat(fd)
                if stat.S_IMODE(made.st_mode) != mode:
                    os.fchmod(fd, mode)
                if (made.st_uid, made.st_gid) != (st.st_uid, st.st_gid):
                    with contextlib.suppress(PermissionError):
                        os.fchown(fd, st.st_uid, st.st_gid)
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            if durable:
                os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    if durable:
        _fsync_dir(directory)


def atomic_write(target: Path | str, data: bytes, *, if_match: str | None = None, durable: bool = True) -> str:
    """Replace ``target`` with ``data`` atomically; return the sha256 of what was written.

    Writers of the same file are serialised by :func:`file_lock`.  With ``if_match`` (the sha256
    of the content the caller read, a prefix or quoted ETag of it — see :mod:`promptwatch.etag` —
    or ``""`` for "the file must not exist yet"), the write only
    happens when the file still has that content; otherwise :class:`ConflictError`, nothing written.
    A symlinked target is written through: the file it resolves to is replaced.
    """
    target = Path(target)
    if target.is_symlink():
        target = target.resolve()
    try:
        with file_lock(target):
            _remove_stale_temps(target.parent, target.name)
            if if_match is not None:
                current = read_bytes(target)
                current_sha = sha256_hex(current) if current is not None else ""
                if not sha_matches(if_match, current_sha):
                    raise ConflictError(str(target), expected=if_match, current=current_sha or None)
            _write_replace(target, data, durable=durable)
    except OSError as e:
        if e.errno == errno.ENOENT and not target.parent.exists():
            raise WriteError(str(target), f"directory {target.parent} does not exist") from e
        raise WriteError(str(target), e.strerror or str(e)) from e
    return sha256_hex(data)


def write_document(
    target: Path | str,
    data: bytes,
    *,
    if_match: str | None = None,
    limit: int = MAX_DOCUMENT_BYTES,
    source: str | None = None,
) -> tuple[str, Prompts]:
    """Validate ``data`` as a prompts document, then :func:`atomic_write` it.

    Raises :class:`~promptwatch.errors.DocumentError` (nothing written) when invalid.
    Returns the new sha256 and the validated prompts.
    """
    prompts = parse_document(data, source=source or str(target), limit=limit)
    return atomic_write(target, data, if_match=if_match), prompts
