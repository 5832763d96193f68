"""The public API is exactly what ``promptwatch.__all__`` names, and every name is importable."""

from __future__ import annotations

import importlib
import pkgutil

import pytest

import promptwatch

EXPORTED = {
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
}


def test_all_is_pinned() -> None:
    assert set(promptwatch.__all__) == EXPORTED
    assert len(promptwatch.__all__) == len(EXPORTED)


MODULES = sorted(m.name for m in pkgutil.iter_modules(promptwatch.__path__))


def test_every_exported_name_exists() -> None:
    for name in promptwatch.__all__:
        assert hasattr(promptwatch, name), name


def test_no_private_or_module_leaks() -> None:
    public = {n for n in dir(promptwatch) if not n.startswith("_")}
    assert public - set(MODULES) == EXPORTED


@pytest.mark.parametrize("module", MODULES)
def test_module_all_names_exist(module: str) -> None:
    mod = importlib.import_module(f"promptwatch.{module}")
    for name in mod.__all__:
        assert hasattr(mod, name), f"promptwatch.{module}.{name}"


def test_errors_hierarchy() -> None:
    for name in EXPORTED:
        obj = getattr(promptwatch, name)
        if isinstance(obj, type) and issubclass(obj, Exception):
            assert issubclass(obj, promptwatch.PromptwatchError), name
    assert issubclass(promptwatch.DocumentSyntaxError, promptwatch.DocumentError)
    assert issubclass(promptwatch.DocumentSchemaError, promptwatch.DocumentError)
    assert issubclass(promptwatch.DocumentTooLargeError, promptwatch.DocumentError)
