"""The knowledge-base directory: UTF-8 text files (Markdown, plain text, JSON) the consumers hot-reload.

Names follow :mod:`promptwatch.kbrules` (shared with the bot, so an accepted upload is always
loaded).  Content must be UTF-8 text without NUL bytes (JSON must parse).  Files are
written with :func:`promptwatch.atomic_write`, so a consumer never reads half a file, and read with
:func:`promptwatch.read_file` (regular files only, never a symlink, at most ``max_bytes + 1`` bytes).
"""

from __future__ import annotations

import contextlib
import os
import re
from dataclasses import dataclass
from pathlib import Path

from promptwatch import UnsafeFileError, atomic_write, file_lock, kbrules, read_file, sha256_hex
from promptwatch.atomic import lock_path
from promptwatch.kbrules import KB_EXTENSIONS, KB_NEW_NAME_PATTERN, check_kb_name
from promptwatch.safeio import resolved

__all__ = [
    "KB_EXTENSIONS",
    "UPLOAD_NAME_PATTERN",
    "KbContentError",
    "KbError",
    "KbFile",
    "KbNameError",
    "KbStore",
    "KbTooLargeError",
    "check_upload_name",
]


class KbError(Exception):
    """A knowledge-base file that cannot be accepted; the message names the file and the reason."""


class KbNameError(KbError):
    """The file name is unsafe or not allowed (400)."""


class KbContentError(KbError):
    """The content is not UTF-8 text of the named kind (415)."""


class KbTooLargeError(KbError):
    """Over the size limit (413)."""


@dataclass(frozen=True)
class KbFile:
    name: str
    size: int
    mtime: float
    sha256: str

    @property
    def media_type(self) -> str:
        return KB_EXTENSIONS.get(Path(self.name).suffix.lower(), "text/plain")


UPLOAD_NAME_PATTERN = KB_NEW_NAME_PATTERN
_UPLOAD_NAME = re.compile(UPLOAD_NAME_PATTERN)


def check_upload_name(raw: str) -> str:
    """The name a new file is stored under (NFC), or :class:`KbNameError`."""
    name = check_name(raw)
    if not _UPLOAD_NAME.match(name):
        raise KbNameError(
            f"{raw!r}: a new file's name is letters, digits, spaces and common punctuation (at most 63 characters), "
            f"ending in {', '.join(sorted(KB_EXTENSIONS))}"
        )
    return name


def check_name(raw: str) -> str:
    """The safe, NFC-normalised file name (the rules every process shares), or :class:`KbNameError`."""
    try:
        return check_kb_name(raw)
    except kbrules.KbNameError as e:
        raise KbNameError(str(e)) from None


def check_content(name: str, data: bytes) -> None:
    """Raise :class:`KbContentError` unless ``data`` is UTF-8 text (valid JSON for ``.json``)."""
    try:
        kbrules.check_kb_content(name, data)
    except kbrules.KbContentError as e:
        raise KbContentError(str(e)) from None


class KbStore:
    """The files of the knowledge-base directory."""

    def __init__(self, directory: Path, *, max_bytes: int) -> None:
        self.directory = directory
        self.max_bytes = max_bytes
        # The directory above is trusted as it is; the knowledge-base directory itself may sit in a
        # group-writable one, so it is walked like a file: replaced by a symlink out, it is refused.
        self._base = Path(os.path.abspath(directory)).parent

    def list(self) -> list[KbFile]:
        """The regular files of the directory (symlinks, FIFOs and the like are not knowledge-base files)."""
        out: list[KbFile] = []
        try:
            names = os.listdir(self.directory)
        except FileNotFoundError:
            return out
        for name in names:
            if not kbrules.is_kb_document(name):
                continue
            try:
                content = read_file(self.directory / name, limit=self.max_bytes, symlinks="never", base=self._base)
            except (OSError, UnsafeFileError):
                continue  # gone meanwhile, or not a regular file
            out.append(KbFile(name, content.size, content.stat.st_mtime, sha256_hex(content.data)))
        return sorted(out, key=lambda f: f.name)

    @staticmethod
    def check_name(name: str) -> str:
        return check_name(name)

    def _path(self, name: str) -> Path:
        return self.directory / check_name(name)

    def read(self, name: str) -> tuple[KbFile, bytes] | None:
        """The file and its content (at most ``max_bytes + 1`` bytes); None when absent.

        A symlink, FIFO, directory or device under that name: :class:`~promptwatch.UnsafeFileError`.
        """
        path = self._path(name)
        try:
            content = read_file(path, limit=self.max_bytes, symlinks="never", base=self._base)
        except FileNotFoundError:
            return None
        data = content.data
        return KbFile(path.name, content.size, content.stat.st_mtime, sha256_hex(data)), data

    def write(self, name: str, data: bytes) -> tuple[KbFile, bool]:
        """Check and store a file atomically; returns it and whether it is new."""
        path = self._path(name)
        if len(data) > self.max_bytes:
            raise KbTooLargeError(f"{path.name}: {len(data)} bytes, the limit is {self.max_bytes}")
        check_content(path.name, data)
        if path.is_symlink() or (path.exists() and not path.is_file()):
            raise KbNameError(f"{path.name}: exists and is not a regular file")
        self.directory.mkdir(parents=True, exist_ok=True)
        created = not path.exists()
        try:
            sha = atomic_write(path, data, base=self._base)
        finally:
            with contextlib.suppress(FileNotFoundError):
                lock_path(path).unlink()  # no conditional writes here: keep the directory free of lock files
        st = path.lstat()
        return KbFile(path.name, st.st_size, st.st_mtime, sha), created

    def delete(self, name: str) -> bool:
        """Remove a file; False when there was none."""
        path = self._path(name)
        if path.is_symlink() or not path.is_file():
            return False
        with file_lock(path, base=self._base), resolved(path, symlinks="never", base=self._base) as (dir_fd, entry):
            try:
                os.unlink(entry, dir_fd=dir_fd)
            except FileNotFoundError:
                return False
        with contextlib.suppress(FileNotFoundError):
            lock_path(path).unlink()
        return True
