"""Typed errors of promptwatch.

Every error names the place it is about: a file with line and column, a field path, or the
path of the file that could not be written.  Library code raises these; only the command-line
``main()`` functions map them to exit codes.

Hierarchy::

    PromptwatchError
    ├── DocumentError            the prompts document is not acceptable
    │   ├── DocumentSyntaxError  not JSON / not UTF-8            (FILE:LINE:COL: message)
    │   ├── DocumentSchemaError  JSON, but fails the schema      (field path: message, one per error)
    │   └── DocumentTooLargeError  over the size limit
    ├── ConflictError            conditional write: the file changed since it was read
    ├── WriteError               the atomic write failed (I/O); the target is untouched
    ├── UnsafeFileError          a path is not what it must be; nothing was read or written  (PATH: reason)
    │   ├── NotRegularFileError    a FIFO, directory, device, socket or symlink loop where a file must be
    │   ├── SymlinkRefusedError    a symlink leaving its directory, or planted by another user
    │   └── UnsafeDirectoryError   a private directory owned by another user or open to others
    └── StartupError             a consumer cannot start (no valid prompts at start, bad settings)
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "ConflictError",
    "DocumentError",
    "DocumentSchemaError",
    "DocumentSyntaxError",
    "DocumentTooLargeError",
    "FieldError",
    "NotRegularFileError",
    "PromptwatchError",
    "StartupError",
    "SymlinkRefusedError",
    "UnsafeDirectoryError",
    "UnsafeFileError",
    "WriteError",
]


class PromptwatchError(Exception):
    """Base class of every error promptwatch raises."""


class DocumentError(PromptwatchError):
    """The prompts document cannot be accepted.  ``source`` names the file (or ``<stdin>``)."""

    def __init__(self, message: str, *, source: str) -> None:
        super().__init__(message)
        self.source = source


class DocumentSyntaxError(DocumentError):
    """Not valid UTF-8 JSON.  ``str()`` reads ``FILE:LINE:COL: message``."""

    def __init__(self, msg: str, *, source: str, line: int, col: int) -> None:
        self.msg = msg
        self.line = line
        self.col = col
        super().__init__(f"{source}:{line}:{col}: {msg}", source=source)


@dataclass(frozen=True)
class FieldError:
    """One schema violation: ``loc`` is the JSON path (``fillers[2]``), ``msg`` the reason, ``kind`` a stable
    machine-readable name of the rule (pydantic's error type, or ``blank``, ``not_object``)."""

    loc: str
    msg: str
    kind: str = "invalid"

    def __str__(self) -> str:
        return f"{self.loc}: {self.msg}"


class DocumentSchemaError(DocumentError):
    """Valid JSON that fails the prompts schema; ``errors`` lists every violation with its path."""

    def __init__(self, errors: list[FieldError], *, source: str) -> None:
        self.errors = errors
        lines = "; ".join(str(e) for e in errors)
        super().__init__(f"{source}: {lines}", source=source)


class DocumentTooLargeError(DocumentError):
    """The document exceeds the size limit."""

    def __init__(self, size: int, limit: int, *, source: str) -> None:
        self.size = size
        self.limit = limit
        super().__init__(f"{source}: document is {size} bytes, the limit is {limit}", source=source)


class ConflictError(PromptwatchError):
    """A conditional write found different content on disk than the writer had read."""

    def __init__(self, path: str, *, expected: str, current: str | None) -> None:
        self.path = path
        self.expected = expected
        self.current = current
        now = f"sha256 {current}" if current else "no file"
        wanted = f"sha256 {expected}" if expected else "no file"
        super().__init__(f"{path}: changed since it was read (expected {wanted}, found {now})")


class WriteError(PromptwatchError):
    """The atomic write failed; the target keeps its previous content."""

    def __init__(self, path: str, reason: str) -> None:
        self.path = path
        super().__init__(f"{path}: write failed: {reason}")


class UnsafeFileError(PromptwatchError):
    """A path that is not what it must be (someone else's file, a FIFO, a symlink out of its directory).

    Nothing was read from or written to it.  ``str()`` reads ``PATH: reason``.
    """

    def __init__(self, path: str, reason: str) -> None:
        self.path = path
        self.reason = reason
        super().__init__(f"{path}: {reason}")


class NotRegularFileError(UnsafeFileError):
    """A FIFO, directory, device, socket or symlink loop where a regular file must be; ``kind`` says which."""

    def __init__(self, path: str, kind: str) -> None:
        self.kind = kind
        super().__init__(path, f"is {kind}, not a regular file")


class SymlinkRefusedError(UnsafeFileError):
    """A symlink that is not followed: it leaves its directory, or is owned by a user not trusted there."""


class UnsafeDirectoryError(UnsafeFileError):
    """A private directory (the default status directory) owned by another user, open to others, or a symlink."""


class StartupError(PromptwatchError):
    """A consumer cannot start: no valid prompts at start, or unusable settings."""
