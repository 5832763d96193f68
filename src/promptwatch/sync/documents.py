"""Which local files the agent distributes, under which document name, and how each is validated.

The main prompts file (``PROMPTS_PATH``) is the document ``prompts`` on every host, whatever its local
path.  A label file beside it, ``<stem>.<label>.json`` (``prompts.staging.json``), is the document
``prompts.<label>``; a label that exists in Redis but not yet on this host is created beside the main
file.  Consumers of the same document on different hosts are matched by this name, not by their path.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ..schema import MAX_DOCUMENT_BYTES, parse_document

__all__ = ["MAIN", "Document", "DocumentSet"]

MAIN = "prompts"
LABEL_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")

Validate = Callable[[bytes, str], object]
"""``validate(data, source)`` raises :class:`~promptwatch.errors.DocumentError` naming ``source``."""


def _validate_prompts(data: bytes, source: str) -> object:
    return parse_document(data, source=source, limit=MAX_DOCUMENT_BYTES)


@dataclass(frozen=True)
class Document:
    """One distributed file: its name in Redis, its path on this host, its validation."""

    name: str
    path: Path
    validate: Validate = _validate_prompts
    limit: int = MAX_DOCUMENT_BYTES


class DocumentSet:
    """The main prompts file and its label files, all in one directory."""

    def __init__(self, main: Path) -> None:
        self.main = main
        self.directory = main.parent
        self._stem = main.name.removesuffix(".json")

    def name_of(self, path: Path) -> str | None:
        """The document name of a file in the directory, or None when it is not one of ours."""
        if path.parent != self.directory:
            return None
        if path.name == self.main.name:
            return MAIN
        prefix = f"{self._stem}."
        if path.name.startswith(prefix) and path.name.endswith(".json"):
            label = path.name[len(prefix) : -len(".json")]
            if LABEL_RE.match(label):
                return f"{MAIN}.{label}"
        return None

    def document(self, name: str) -> Document | None:
        """The local document for ``name`` (``prompts`` or ``prompts.<label>``); None for a foreign name."""
        if name == MAIN:
            return Document(MAIN, self.main)
        label = name.removeprefix(f"{MAIN}.")
        if label != name and LABEL_RE.match(label):
            return Document(name, self.directory / f"{self._stem}.{label}.json")
        return None

    def local(self) -> list[Document]:
        """Every document present on this host: the main file (even when missing) and the label files."""
        docs = [Document(MAIN, self.main)]
        try:
            entries = sorted(self.directory.iterdir())
        except OSError:
            return docs
        for path in entries:
            name = self.name_of(path)
            if name is not None and name != MAIN and path.is_file():
                docs.append(Document(name, path))
        return docs
