"""Which local files the agent distributes, under which document name, and how each is validated.

The main prompts file (``PROMPTS_PATH``) is the document ``prompts`` on every host, whatever its local
path.  A label file beside it, ``<stem>.<label>.json`` (``prompts.staging.json``), is the document
``prompts.<label>``; a label that exists in Redis but not yet on this host is created beside the main
file.  A knowledge-base file ``KB_DIR/<name>`` is the document ``kb/<name>`` (checked by the shared
:mod:`promptwatch.kbrules`); knowledge-base files can be deleted, which is distributed as a version
without content.  Consumers of the same document on different hosts are matched by this name, not by
their path.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ..errors import DocumentError
from ..kbrules import KB_MAX_BYTES, KbContentError, KbNameError, check_kb_content, check_kb_name, is_kb_document
from ..labels import PRODUCTION, document_name, is_label, label_of, label_path
from ..schema import MAX_DOCUMENT_BYTES, parse_document

__all__ = ["KB_PREFIX", "MAIN", "Document", "DocumentSet"]

MAIN = "prompts"
KB_PREFIX = "kb/"

Validate = Callable[[bytes, str], object]
"""``validate(data, source)`` raises :class:`~promptwatch.errors.DocumentError` naming ``source``."""


def _prompts_validator(limit: int) -> Validate:
    def validate(data: bytes, source: str) -> object:
        return parse_document(data, source=source, limit=limit)

    return validate


_validate_prompts = _prompts_validator(MAX_DOCUMENT_BYTES)


def _kb_validator(name: str, limit: int) -> Validate:
    def validate(data: bytes, source: str) -> object:
        if len(data) > limit:
            raise DocumentError(f"{source}: {len(data)} bytes, the knowledge-base limit is {limit}", source=source)
        try:
            check_kb_content(name, data)
        except KbContentError as e:
            raise DocumentError(f"{source}: {e}", source=source) from None
        return None

    return validate


@dataclass(frozen=True)
class Document:
    """One distributed file: its name in Redis, its path on this host, its validation."""

    name: str
    path: Path
    validate: Validate = _validate_prompts
    limit: int = MAX_DOCUMENT_BYTES
    deletable: bool = False
    """A deleted file is distributed as a deletion (knowledge-base files); else a missing file is not news."""


class DocumentSet:
    """The main prompts file and its label files, all in one directory."""

    def __init__(
        self, main: Path, kb_dir: Path | None = None, *, limit: int = MAX_DOCUMENT_BYTES, kb_limit: int = KB_MAX_BYTES
    ) -> None:
        self.main = main
        self.limit = limit
        self.directory = main.parent
        self.kb_dir = kb_dir
        self.kb_limit = kb_limit
        self._stem = main.name.removesuffix(".json")

    def name_of(self, path: Path) -> str | None:
        """The document name of a file in the directory, or None when it is not one of ours."""
        if path.parent != self.directory:
            return None
        if path.name == self.main.name:
            return MAIN
        label = label_of(self.main, path)  # the one naming rule of labels (promptwatch.labels)
        return document_name(label) if label is not None and label != PRODUCTION else None

    def document(self, name: str) -> Document | None:
        """The local document for ``name`` (``prompts`` or ``prompts.<label>``); None for a foreign name."""
        if name == MAIN:
            return self._prompts(MAIN, self.main)
        label = name.removeprefix(f"{MAIN}.")
        if label != name and is_label(label) and label != PRODUCTION:
            return self._prompts(name, label_path(self.main, label))
        if name.startswith(KB_PREFIX) and self.kb_dir is not None:
            try:
                filename = check_kb_name(name[len(KB_PREFIX) :])
            except KbNameError:
                return None
            if f"{KB_PREFIX}{filename}" != name:
                return None  # not in normal form: never two names for one file
            validate = _kb_validator(filename, self.kb_limit)
            return Document(name, self.kb_dir / filename, validate, self.kb_limit, deletable=True)
        return None

    def _prompts(self, name: str, path: Path) -> Document:
        return Document(name, path, _prompts_validator(self.limit), self.limit)

    def local(self) -> list[Document]:
        """Every document present on this host: the main file (even when missing) and the label files."""
        docs = [self._prompts(MAIN, self.main)]
        try:
            entries = sorted(self.directory.iterdir())
        except OSError:
            return docs
        for path in entries:
            name = self.name_of(path)
            if name is not None and name != MAIN and path.is_file():
                docs.append(self._prompts(name, path))
        if self.kb_dir is not None:
            try:
                kb = sorted(e.name for e in os.scandir(self.kb_dir) if is_kb_document(e.name) and e.is_file())
            except OSError:
                kb = []
            for filename in kb:
                doc = self.document(f"{KB_PREFIX}{filename}")
                if doc is not None:
                    docs.append(doc)
        return docs
