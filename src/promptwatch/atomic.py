"""Durable atomic replacement of a file, serialised by an advisory lock, optionally conditional.

The temp file is created in the target's own directory (so ``os.replace`` is a rename within one
filesystem, which inotify reports as a move into the target), flushed and fsynced, renamed over the
target, and the directory is fsynced.  A writer killed at any point leaves the target wholly old
or wholly new; its temp file is removed by the next write.

The directory may be writable by others (a group of operators): the lock file is opened with
``O_NOFOLLOW``, the temp file with ``O_EXCL | O_NOFOLLOW``, every step works on the directory's
descriptor, and a symlinked target is followed only as :mod:`promptwatch.safeio` allows (a
ConfigMap's links inside the directory); otherwise the write is refused with a typed error naming the path.
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

from .errors import ConflictError, NotRegularFileError, SymlinkRefusedError, WriteError
from .etag import sha_matches
from .safeio import FileContent, describe_mode, open_regular, opened_dir, read_fd, read_file, resolved
from .schema import MAX_DOCUMENT_BYTES, Prompts, parse_document, sha256_hex

__all__ = [
    "TEMP_PREFIX",
    "atomic_write",
    "file_lock",
    "lock_path",
    "read_bytes",
    "read_content",
    "write_document",
]

TEMP_PREFIX = ".pw-tmp-"


def lock_path(target: Path) -> Path:
    """The advisory lock file that serialises writers of ``target``: ``.NAME.lock`` beside it."""
    return target.with_name(f".{target.name}.lock")


_LOCK_FLAGS = os.O_RDONLY | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC


@contextlib.contextmanager
def file_lock(target: Path, *, base: Path | None = None) -> Iterator[None]:
    """Hold the exclusive advisory (``flock``) lock of ``target`` for the duration of the block.

    The lock file is never followed if it is a symlink (:class:`SymlinkRefusedError`) and must be a
    regular file (:class:`NotRegularFileError`): a planted ``.NAME.lock`` cannot make us create a file elsewhere.
    ``base``: a trusted directory above ``target``'s, whose subdirectories are walked by the symlink rule
    of :func:`promptwatch.safeio.resolved` (a knowledge-base directory inside a group-writable one).
    """
    path = lock_path(target)
    try:
        with opened_dir(target.parent, base=base) as dir_fd:
            # Read-only is enough for flock, and closing it is no close-after-write event for watchers.
            fd = os.open(path.name, _LOCK_FLAGS, 0o644, dir_fd=dir_fd)
    except (FileNotFoundError, NotADirectoryError) as e:
        if not target.parent.is_dir():
            raise WriteError(str(target), f"directory {target.parent} does not exist") from e
        raise WriteError(str(target), f"cannot open lock file {path}: {e.strerror}") from e
    except OSError as e:
        if e.errno == errno.ELOOP:
            raise SymlinkRefusedError(str(path), "the lock file is a symlink; not followed (remove it)") from e
        raise WriteError(str(target), f"cannot open lock file {path}: {e.strerror}") from e
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise NotRegularFileError(str(path), describe_mode(st.st_mode))
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing the descriptor releases the lock


def read_content(target: Path, *, limit: int = MAX_DOCUMENT_BYTES) -> FileContent | None:
    """The current content of ``target`` (at most ``limit + 1`` bytes) and its stat, or None when absent.

    Raises :class:`~promptwatch.errors.UnsafeFileError` for a FIFO, directory, device, symlink loop or a
    symlink leaving the directory, never blocks, never reads more than ``limit + 1`` bytes.
    """
    try:
        return read_file(target, limit=limit)
    except FileNotFoundError:
        return None


def read_bytes(target: Path, limit: int | None = None) -> bytes | None:
    """The current content of ``target`` (at most ``limit + 1`` bytes, by default the document limit's),
    or None when it does not exist.  Never blocks; a FIFO, directory or device is an UnsafeFileError."""
    content = read_content(target, limit=MAX_DOCUMENT_BYTES if limit is None else limit)
    return content.data if content is not None else None


def _remove_stale_temps(dir_fd: int, name: str) -> None:
    """Remove temp files that killed writers of ``name`` left behind (we hold the lock)."""
    prefix = f"{TEMP_PREFIX}{name}."
    for entry in os.listdir(dir_fd):
        if entry.startswith(prefix):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(entry, dir_fd=dir_fd)


def _create_temp(dir_fd: int, name: str, mode: int) -> tuple[int, str]:
    """An exclusive new temp file ``.pw-tmp-NAME.XXXXXXXX`` in ``dir_fd``, created with ``mode``."""
    for _ in range(100):
        tmp = f"{TEMP_PREFIX}{name}.{secrets.token_hex(4)}"
        try:
            return os.open(tmp, _TEMP_FLAGS, mode, dir_fd=dir_fd), tmp
        except FileExistsError:
            continue
    raise FileExistsError(errno.EEXIST, "no free temporary name", name)


_TEMP_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC


def _existing(dir_fd: int, name: str, shown: Path) -> os.stat_result | None:
    """The ``lstat`` of the file being replaced, None when absent; a FIFO, device or directory is refused."""
    try:
        st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except FileNotFoundError:
        return None
    if not stat.S_ISREG(st.st_mode):
        raise NotRegularFileError(str(shown), describe_mode(st.st_mode))
    return st


def _current_sha(dir_fd: int, name: str, shown: Path, limit: int) -> str:
    """The sha256 of what is there now (of its first ``limit + 1`` bytes), ``""`` when absent."""
    try:
        fd = open_regular(dir_fd, name, shown)
    except FileNotFoundError:
        return ""
    try:
        return sha256_hex(read_fd(fd, limit))
    finally:
        os.close(fd)


def _write_replace(dir_fd: int, name: str, st: os.stat_result | None, data: bytes, *, durable: bool) -> None:
    # Created with the final mode (umask applies to a new file), so that usually no fchmod/fchown
    # follows: every metadata change would be one more inotify event for every watcher.  Never
    # setuid, setgid or sticky, whoever made the file being replaced.
    mode = stat.S_IMODE(st.st_mode) & 0o777 if st is not None else 0o666
    fd, tmp = _create_temp(dir_fd, name, mode)
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
        os.replace(tmp, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp, dir_fd=dir_fd)
        raise
    if durable:
        os.fsync(dir_fd)


def atomic_write(
    target: Path | str,
    data: bytes,
    *,
    if_match: str | None = None,
    durable: bool = True,
    lock: bool = True,
    read_limit: int = MAX_DOCUMENT_BYTES,
    base: Path | None = None,
) -> str:
    """Replace ``target`` with ``data`` atomically; return the sha256 of what was written.

    Writers of the same file are serialised by :func:`file_lock` (``lock=False`` for a file only one
    process ever writes).  With ``if_match`` (the sha256 of the content the caller read, of its first
    ``read_limit + 1`` bytes, a prefix or quoted ETag of it — see :mod:`promptwatch.etag` — or ``""``
    for "the file must not exist yet"), the write only happens
    when the file still has that content; otherwise :class:`ConflictError`, nothing written.
    A symlinked target is written through (the file it resolves to is replaced) only when the link
    stays inside the directory and is owned by root, us or the directory's owner: otherwise
    :class:`SymlinkRefusedError`.  A FIFO, device or directory in the way: :class:`NotRegularFileError`.
    ``base``: see :func:`file_lock`.
    """
    target = Path(target)
    try:
        with file_lock(target, base=base) if lock else contextlib.nullcontext():
            with resolved(target, base=base) as (dir_fd, name):
                _remove_stale_temps(dir_fd, name)
                st = _existing(dir_fd, name, target)
                if if_match is not None:
                    current_sha = _current_sha(dir_fd, name, target, read_limit) if st is not None else ""
                    if not sha_matches(if_match, current_sha):
                        raise ConflictError(str(target), expected=if_match, current=current_sha or None)
                _write_replace(dir_fd, name, st, data, durable=durable)
    except OSError as e:
        if e.errno in (errno.ENOENT, errno.ENOTDIR) and not target.parent.is_dir():
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
    return atomic_write(target, data, if_match=if_match, read_limit=limit), prompts
