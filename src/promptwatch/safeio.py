"""Files in directories other users may write to: bounded reads, no blocking, symlinks only where deployed.

Every reader of the prompts, the knowledge base and the status directory goes through
:func:`read_file`: the file is opened without blocking (a FIFO cannot hang the process) and without
a controlling terminal, ``fstat`` must say it is a regular file, and at most ``limit + 1`` bytes are
read, so a 1 GiB file costs ``limit + 1`` bytes of memory and the caller still sees it is too large.

Writers use :func:`resolved` to find the file a name stands for.  A symlink is followed only the way
a Kubernetes ConfigMap is laid out (``prompts.json -> ..data/prompts.json``, ``..data -> ..2026_01``):
relative, never ``..`` or absolute, so it stays inside the same directory, and owned (like every
directory on the way) by root, by us, or by the directory's owner.  Anything else is refused with a
:class:`~promptwatch.errors.SymlinkRefusedError` naming the path: a group member of a writable
directory cannot make root's write land anywhere else.  All later steps work on directory
descriptors (``openat``/``renameat``), so the directory cannot be swapped under the writer.

:func:`ensure_private_dir` creates and checks a per-user runtime directory the way ssh-agent and
tmux do: mode 0700, owned by us, not a symlink; an existing one of ours with a wider mode is
tightened, anyone else's is refused.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from .errors import NotRegularFileError, SymlinkRefusedError, UnsafeDirectoryError

__all__ = [
    "MAX_SYMLINK_HOPS",
    "FileContent",
    "Symlinks",
    "describe_mode",
    "ensure_private_dir",
    "open_dir",
    "opened_dir",
    "open_regular",
    "read_fd",
    "read_file",
    "resolved",
    "trusted_owners",
]

MAX_SYMLINK_HOPS = 8
"""More symlinks than this on the way to one file is a loop."""

Symlinks = Literal["within", "never"]
"""``within``: follow symlinks that stay inside the directory (ConfigMap); ``never``: refuse every symlink."""

_READ_FLAGS = os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_NOFOLLOW | os.O_CLOEXEC
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC
_CHUNK = 1 << 20

_KINDS = (
    (stat.S_ISFIFO, "a FIFO"),
    (stat.S_ISDIR, "a directory"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
    (stat.S_ISLNK, "a symlink"),
)


def describe_mode(mode: int) -> str:
    """``a FIFO``, ``a directory``, ``a character device``… for a non-regular ``st_mode``."""
    return next((kind for test, kind in _KINDS if test(mode)), "not a regular file")


@dataclass(frozen=True)
class FileContent:
    """What :func:`read_file` read: at most ``limit + 1`` bytes, and the file's ``fstat``."""

    data: bytes
    stat: os.stat_result
    limit: int

    @property
    def truncated(self) -> bool:
        """More than ``limit`` bytes: the file is over the limit (and only ``limit + 1`` were read)."""
        return len(self.data) > self.limit

    @property
    def size(self) -> int:
        """The file's size: ``st_size``, or what was read if that is more (the file grew meanwhile)."""
        return max(self.stat.st_size, len(self.data))


def trusted_owners(directory_st: os.stat_result) -> frozenset[int]:
    """Owners whose symlinks and directories are followed in a directory: root, us, the directory's owner."""
    return frozenset({0, os.geteuid(), directory_st.st_uid})


def open_dir(path: Path | str) -> int:
    """A descriptor of the directory ``path`` (following symlinks: the directory is the admin's choice)."""
    return os.open(path, _DIR_FLAGS)


@contextlib.contextmanager
def resolved(
    path: Path | str, *, symlinks: Symlinks = "within", base: Path | str | None = None
) -> Iterator[tuple[int, str]]:
    """``(dir_fd, name)`` of the file ``path`` stands for, symlinks followed by the rule above.

    ``base`` is the directory trusted as it is (default: ``path``'s parent); every component of
    ``path`` below it is walked with the rule, so a knowledge-base directory that a group member
    replaced with a symlink is refused like a symlinked file.  ``symlinks`` applies to the file
    itself; directories on the way always follow the ConfigMap rule.  The name may not exist (a
    writer creates it); a missing directory on the way is FileNotFoundError.
    """
    path = Path(path)
    top_dir = path.parent if base is None else Path(base)
    top = open_dir(top_dir)
    fds = [top]
    try:
        trusted = trusted_owners(os.fstat(top))
        current, pending, hops = top, list(path.relative_to(top_dir).parts), 0
        while True:
            name = pending.pop(0)
            try:
                st = os.stat(name, dir_fd=current, follow_symlinks=False)
            except FileNotFoundError:
                if pending:
                    raise
                yield current, name
                return
            if stat.S_ISLNK(st.st_mode):
                hops += 1
                rule: Symlinks = symlinks if not pending else "within"
                pending = _link_parts(path, current, name, st, trusted, rule, hops) + pending
                continue
            if not pending:
                yield current, name
                return
            if not stat.S_ISDIR(st.st_mode):
                raise NotADirectoryError(errno.ENOTDIR, os.strerror(errno.ENOTDIR), f"{path} ({name})")
            if st.st_uid not in trusted:
                raise SymlinkRefusedError(str(path), f"leads through {name}/, owned by uid {st.st_uid}")
            current = os.open(name, _DIR_FLAGS | os.O_NOFOLLOW, dir_fd=current)
            fds.append(current)
    finally:
        for fd in fds:
            os.close(fd)


@contextlib.contextmanager
def opened_dir(path: Path | str, *, base: Path | str | None = None) -> Iterator[int]:
    """A descriptor of the directory ``path``; below ``base`` (when given) walked by the rule of :func:`resolved`
    and, like every directory on the way, owned by root, us or ``base``'s owner."""
    if base is None or Path(path) == Path(base):
        fd = open_dir(path)
    else:
        with resolved(path, base=base) as (dir_fd, name):
            fd = os.open(name, _DIR_FLAGS | os.O_NOFOLLOW, dir_fd=dir_fd)
        try:
            owner = os.fstat(fd).st_uid
            if owner not in trusted_owners(os.stat(base)):
                raise SymlinkRefusedError(str(path), f"is a directory owned by uid {owner}; not used")
        except BaseException:
            os.close(fd)
            raise
    try:
        yield fd
    finally:
        os.close(fd)


def _link_parts(
    path: Path, dir_fd: int, name: str, st: os.stat_result, trusted: frozenset[int], symlinks: Symlinks, hops: int
) -> list[str]:
    """The components a symlink on the way stands for, or why it is not followed."""
    if symlinks == "never":
        raise SymlinkRefusedError(str(path), "is a symlink, and symlinks are not followed here")
    if hops > MAX_SYMLINK_HOPS:
        raise NotRegularFileError(str(path), "a symlink loop")
    text = os.readlink(name, dir_fd=dir_fd)
    if st.st_uid not in trusted:
        raise SymlinkRefusedError(str(path), f"is a symlink ({name} -> {text}) owned by uid {st.st_uid}; not followed")
    parts = text.split("/")
    if text.startswith("/") or any(part in ("", ".", "..") for part in parts):
        raise SymlinkRefusedError(str(path), f"is a symlink leaving its directory ({name} -> {text}); not followed")
    return parts


def open_regular(dir_fd: int, name: str, shown: Path | str) -> int:
    """Open ``name`` in ``dir_fd`` for reading: no symlink, no blocking, and a regular file, else the error."""
    st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    if not stat.S_ISREG(st.st_mode):  # checked before opening: opening a device or a tape can have effects
        raise NotRegularFileError(str(shown), describe_mode(st.st_mode))
    try:
        fd = os.open(name, _READ_FLAGS, dir_fd=dir_fd)
    except OSError as e:
        if e.errno in (errno.ELOOP, errno.ENXIO):  # replaced by a symlink or a socket since the lstat
            raise NotRegularFileError(str(shown), "a symlink" if e.errno == errno.ELOOP else "a socket") from e
        raise
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode):
        os.close(fd)
        raise NotRegularFileError(str(shown), describe_mode(st.st_mode))
    return fd


def read_fd(fd: int, limit: int) -> bytes:
    """At most ``limit + 1`` bytes from ``fd`` (from its current offset)."""
    chunks: list[bytes] = []
    left = limit + 1
    while left > 0:
        chunk = os.read(fd, min(left, _CHUNK))
        if not chunk:
            break
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def read_file(
    path: Path | str, *, limit: int, symlinks: Symlinks = "within", base: Path | str | None = None
) -> FileContent:
    """Read a regular file safely: at most ``limit + 1`` bytes, symlinks by the rule of :func:`resolved`.

    Raises FileNotFoundError when absent, :class:`~promptwatch.errors.NotRegularFileError` for a FIFO,
    directory, device, socket or symlink loop, :class:`~promptwatch.errors.SymlinkRefusedError` for a
    symlink not followed, and other OSErrors (EACCES, EIO) as they are.  ``base``: see :func:`resolved`.
    """
    with resolved(path, symlinks=symlinks, base=base) as (dir_fd, name):
        fd = open_regular(dir_fd, name, path)
    try:
        st = os.fstat(fd)
        return FileContent(read_fd(fd, limit), st, limit)
    finally:
        os.close(fd)


def ensure_private_dir(path: Path, *, mode: int = 0o700, create: bool = True) -> bool:
    """Create ``path`` (and its parent) as private directories of ours, or check that they are.

    Returns False when ``create`` is off and a level does not exist.

    Each level is opened without following symlinks and ``fstat``-checked: owned by our uid and not a
    symlink, else :class:`~promptwatch.errors.UnsafeDirectoryError` (another user pre-created it: we
    refuse it rather than use it); group or world bits on a directory of ours are removed.
    """
    for level in (path.parent, path):
        if create:
            with contextlib.suppress(FileExistsError):
                os.mkdir(level, mode)
        try:
            fd = os.open(level, _DIR_FLAGS | os.O_NOFOLLOW)
        except FileNotFoundError:
            if create:
                raise
            return False
        except OSError as e:
            if e.errno in (errno.ELOOP, errno.ENOTDIR):
                raise UnsafeDirectoryError(str(level), "is a symlink or not a directory; refusing to use it") from e
            raise
        try:
            st = os.fstat(fd)
            if st.st_uid != os.geteuid():
                raise UnsafeDirectoryError(
                    str(level),
                    f"is owned by uid {st.st_uid}, not by us (uid {os.geteuid()}): someone else created it; "
                    "refusing to use it (remove it, or set PROMPTS_STATUS_DIR)",
                )
            if stat.S_IMODE(st.st_mode) & ~mode:
                os.fchmod(fd, mode)
        finally:
            os.close(fd)
    return True
