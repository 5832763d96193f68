"""The hot prompts of every label one process runs: production from the start, others on first use.

labels = LabelSet.from_settings(settings, service="metrotech-bot", preload=["staging"])
labels.production.current         # the production snapshot
labels.get("staging").current     # loads prompts.staging.json (blocking) the first time
pinned = labels.pin()             # {label: snapshot} of every loaded label, taken at once
labels.close()

Each label is a :class:`~promptwatch.HotPrompts` of its own file: watched, hot-reloaded, keeping
its last good snapshot, and publishing its own status entry (so every consumer reports the sha it
runs for each label it has loaded).
"""

from __future__ import annotations

import logging
import os
import stat
import threading
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path

from .errors import LabelError, StartupError
from .labels import PRODUCTION, check_label, label_path
from .settings import PromptsSettings
from .snapshot import HotPrompts, ReloadCallback, Snapshot

__all__ = ["HotPromptsFactory", "LabelSet"]

logger = logging.getLogger("promptwatch.labels")

HotPromptsFactory = Callable[[Path, str], HotPrompts]
"""``factory(path, label)``: a started :class:`HotPrompts` of one label file."""


class LabelSet:
    """One :class:`HotPrompts` per label; safe to use from several threads."""

    def __init__(self, prompts_path: Path, factory: HotPromptsFactory, *, preload: Iterable[str] = ()) -> None:
        self.prompts_path = prompts_path
        self._factory = factory
        self._lock = threading.Lock()
        self._callbacks: list[ReloadCallback] = []
        self.production = factory(label_path(prompts_path, PRODUCTION), PRODUCTION)
        self._hot: dict[str, HotPrompts] = {PRODUCTION: self.production}
        try:
            for label in preload:
                self.get(label)
        except BaseException:
            self.close()
            raise

    @classmethod
    def from_settings(
        cls,
        settings: PromptsSettings,
        *,
        service: str | None = None,
        preload: Iterable[str] = (),
    ) -> LabelSet:
        """The labels of ``settings.prompts_path``, each watched as the settings say."""

        def factory(path: Path, label: str) -> HotPrompts:
            return HotPrompts.from_settings(settings, service=service, path=path, label=label)

        return cls(settings.prompts_path, factory, preload=preload)

    def get(self, label: str) -> HotPrompts:
        """The hot prompts of ``label``, loading its file the first time (this reads the disk).

        :class:`LabelError` for a malformed name or a label without a file; :class:`StartupError`
        when the label's file is not valid prompts.
        """
        hot = self._hot.get(label)
        if hot is not None:
            return hot
        path = label_path(self.prompts_path, check_label(label))
        with self._lock:
            hot = self._hot.get(label)
            if hot is not None:
                return hot
            try:
                st = os.stat(path)
            except FileNotFoundError:
                raise LabelError(f"no label {label!r}: {path} does not exist") from None
            except OSError as e:
                raise LabelError(f"label {label!r}: cannot read {path}: {e.strerror or e}") from e
            if not stat.S_ISREG(st.st_mode):  # a FIFO planted under a label's name must not hang a reader
                raise LabelError(f"label {label!r}: {path} is not a regular file")
            try:
                hot = self._factory(path, label)
            except StartupError as e:
                raise StartupError(f"label {label!r}: {e}") from e
            for callback in self._callbacks:
                hot.on_reload(callback)
            self._hot = {**self._hot, label: hot}  # one reference assignment: readers need no lock
        return hot

    def loaded(self) -> Mapping[str, HotPrompts]:
        """The labels loaded so far (production first)."""
        return dict(self._hot)

    def pin(self) -> dict[str, Snapshot]:
        """The current snapshot of every loaded label, taken at once (lock-free)."""
        return {label: hot.current for label, hot in self._hot.items()}

    def on_reload(self, callback: ReloadCallback) -> ReloadCallback:
        """``callback(old, new)`` on every reload of any label, loaded now or later."""
        with self._lock:
            self._callbacks.append(callback)
            for hot in self._hot.values():
                hot.on_reload(callback)
        return callback

    def reload(self, source: str = "signal") -> dict[str, bool]:
        """Read every loaded label now (SIGHUP); which ones changed."""
        return {label: hot.reload(source) for label, hot in self._hot.items()}

    def close(self) -> None:
        """Stop watching every label.  Idempotent."""
        with self._lock:
            hots, self._hot = list(self._hot.values()), {}
        for hot in hots:
            hot.close()
