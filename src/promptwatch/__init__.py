"""promptwatch: validated, atomically written prompts that go live in every process within milliseconds."""

from .atomic import atomic_write, file_lock, write_document
from .errors import (
    ConflictError,
    DocumentError,
    DocumentSchemaError,
    DocumentSyntaxError,
    DocumentTooLargeError,
    FieldError,
    NotRegularFileError,
    PromptwatchError,
    StartupError,
    SymlinkRefusedError,
    UnsafeDirectoryError,
    UnsafeFileError,
    WriteError,
)
from .reload import Reloader
from .safeio import read_file
from .schema import MAX_DOCUMENT_BYTES, Prompts, parse_document, sha256_hex
from .settings import PromptsSettings
from .snapshot import HotPrompts, Snapshot
from .status import ConsumerStatus, read_statuses
from .watch import WatchMode, start_watcher

__all__ = [
    "MAX_DOCUMENT_BYTES",
    "ConflictError",
    "ConsumerStatus",
    "DocumentError",
    "DocumentSchemaError",
    "DocumentSyntaxError",
    "DocumentTooLargeError",
    "FieldError",
    "HotPrompts",
    "NotRegularFileError",
    "Prompts",
    "PromptsSettings",
    "PromptwatchError",
    "Reloader",
    "Snapshot",
    "StartupError",
    "SymlinkRefusedError",
    "UnsafeDirectoryError",
    "UnsafeFileError",
    "WatchMode",
    "WriteError",
    "atomic_write",
    "file_lock",
    "parse_document",
    "read_file",
    "read_statuses",
    "sha256_hex",
    "start_watcher",
    "write_document",
]
