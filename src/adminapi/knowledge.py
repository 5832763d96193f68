"""The knowledge-base directory: UTF-8 text files (Markdown, plain text, JSON) the consumers hot-reload.

Names follow :mod:`promptwatch.kbrules` (shared with the bot, so an accepted upload is always
loaded).  Content must be UTF-8 text without NUL bytes (JSON must parse).  Files are
written with :func:`promptwatch.atomic_write`, so a consumer never reads half a file.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from pathlib import Path

from promptwatch import atomic_write, file_lock, kbrules, sha256_hex
from promptwatch.atomic import lock_path
from promptwatch.kbrules import KB_EXTENSIONS, check_kb_name

__all__ = ["KB_EXTENSIONS", "KbContentError", "KbError", "KbFile", "KbNameError", "KbStore", "KbTooLargeError"]


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

    def list(self) -> list[KbFile]:
        out: list[KbFile] = []
        try:
            entries = list(os.scandir(self.directory))
        except FileNotFoundError:
            return out
        for entry in entries:
            if entry.name.startswith(".") or not entry.is_file(follow_symlinks=False):
                continue
            if not kbrules.is_kb_document(entry.name):
                continue
            with contextlib.suppress(OSError):
                data = Path(entry.path).read_bytes()
                st = entry.stat(follow_symlinks=False)
                out.append(KbFile(entry.name, st.st_size, st.st_mtime, sha256_hex(data)))
        return sorted(out, key=lambda f: f.name)

    @staticmethod
    def check_name(name: str) -> str:
        return check_name(name)

    def _path(self, name: str) -> Path:
        return self.directory / check_name(name)

    def read(self, name: str) -> tuple[KbFile, bytes] | None:
        path = self._path(name)
        if path.is_symlink() or not path.is_file():
            return None
        try:
            data = path.read_bytes()
            st = path.stat()
        except FileNotFoundError:
            return None
        return KbFile(path.name, st.st_size, st.st_mtime, sha256_hex(data)), data

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
        sha = atomic_write(path, data)
        with contextlib.suppress(FileNotFoundError):
            lock_path(path).unlink()  # no conditional writes here: keep the directory free of lock files
        st = path.stat()
        return KbFile(path.name, st.st_size, st.st_mtime, sha), created

    def delete(self, name: str) -> bool:
        """Remove a file; False when there was none."""
        path = self._path(name)
        if path.is_symlink() or not path.is_file():
            return False
        with file_lock(path):
            try:
                path.unlink()
            except FileNotFoundError:
                return False
        with contextlib.suppress(FileNotFoundError):
            lock_path(path).unlink()
        return True
