"""The panel's editor of every label: production's from the start, another's when first used.

Each label has its own :class:`PromptsEditor` (its file, its watcher reporting in the status
directory, its own history database), so saves, history, diffs and rollbacks work per label the
same way as for production.  Every method here touches the disk: call them in a worker thread.
"""

from __future__ import annotations

import logging
import os
import stat
import threading
from collections.abc import Iterator
from dataclasses import dataclass

from promptwatch import LabelError, parse_document
from promptwatch.errors import DocumentError, UnsafeFileError
from promptwatch.history import HistoryStore, history_file
from promptwatch.labels import MAX_LABELS, PRODUCTION, LabelFile, check_label, label_path, list_labels, read_label

from .editor import PromptsEditor
from .settings import AdminSettings

__all__ = ["LabelEditors", "LabelState", "NoSuchLabel"]

logger = logging.getLogger("adminapi.labels")


class NoSuchLabel(LabelError):
    """A well-formed label name without a file (404)."""


@dataclass(frozen=True)
class LabelState:
    """A label on disk and whether its content is valid prompts."""

    file: LabelFile
    error: str | None


class LabelEditors:
    """Editors by label; safe to share between threads."""

    def __init__(self, settings: AdminSettings, production: PromptsEditor) -> None:
        self.settings = settings
        self._lock = threading.Lock()
        self._editors: dict[str, PromptsEditor] = {PRODUCTION: production}
        self._closed = False

    def get(self, label: str, *, create: bool = False) -> PromptsEditor:
        """The editor of ``label``.  :class:`LabelError` for a malformed name or a file that is not a
        regular file; :class:`NoSuchLabel` when it has no file and ``create`` is false."""
        check_label(label)
        editor = self._editors.get(label)
        if editor is not None:
            return editor
        path = label_path(self.settings.prompts_file, label)
        try:
            st = os.stat(path)
        except FileNotFoundError:
            if not create:
                raise NoSuchLabel(f"no label {label!r}: {path.name} does not exist") from None
            if len(list_labels(self.settings.prompts_file, limit=1)) >= MAX_LABELS:
                raise LabelError(f"there are already {MAX_LABELS} labels: remove one first") from None
        else:
            if not stat.S_ISREG(st.st_mode):
                raise LabelError(f"label {label!r}: {path.name} is not a regular file")
        with self._lock:
            if self._closed:
                raise LabelError("the panel is stopping")
            editor = self._editors.get(label)
            if editor is None:
                history = HistoryStore(
                    history_file(self.settings.state_dir, label), retention=self.settings.admin_history_retention
                )
                editor = PromptsEditor(self.settings, history, label=label)
                editor.start()
                self._editors = {**self._editors, label: editor}
                logger.info("editing label %s (%s)", label, path)
        return editor

    def states(self) -> list[LabelState]:
        """Every label on disk (production first), each checked against the schema."""
        out: list[LabelState] = []
        for lf in list_labels(self.settings.prompts_file, limit=self.settings.prompts_max_bytes):
            error: str | None = None
            try:
                read = read_label(lf.path, limit=self.settings.prompts_max_bytes)
                if read is None:
                    continue  # removed meanwhile
                parse_document(read[0], source=lf.path.name, limit=self.settings.prompts_max_bytes)
            except DocumentError as e:
                error = str(e)
            except (OSError, UnsafeFileError) as e:
                error = f"{lf.path.name}: {getattr(e, 'strerror', None) or e}"
            out.append(LabelState(lf, error))
        return out

    def __iter__(self) -> Iterator[PromptsEditor]:
        return iter(list(self._editors.values()))

    def close(self) -> None:
        """Close every label's editor and history but production's (its owner closes it)."""
        with self._lock:
            self._closed = True
            others = [e for label, e in self._editors.items() if label != PRODUCTION]
            self._editors = {k: v for k, v in self._editors.items() if k == PRODUCTION}
        for editor in others:
            editor.close()
            editor.history.close()
