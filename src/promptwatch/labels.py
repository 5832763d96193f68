"""Labels: named versions of the prompts document, each a file beside the production one.

``prompts.json`` is the label ``production`` (unchanged, so nothing existing breaks) and
``prompts.<label>.json`` any other label (``prompts.staging.json``).  The naming rule, the
file a label lives in, the name other stores key a label's document by (:func:`document_name`),
and the listing of the labels on disk are declared here once; the CLI, the bot and the panel import
them.  A label file is validated, written atomically, watched and hot-reloaded exactly like the
production file: it *is* a prompts file.

    label_path(Path("/etc/m/prompts.json"), "staging")  -> /etc/m/prompts.staging.json
    label_of(Path("/etc/m/prompts.json"), Path("/etc/m/prompts.staging.json"))  -> "staging"
    document_name("staging")  -> "prompts.staging"
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from .atomic import read_content
from .errors import LabelError, UnsafeFileError
from .schema import MAX_DOCUMENT_BYTES, sha256_hex

__all__ = [
    "LABEL_PATTERN",
    "MAX_LABELS",
    "PRODUCTION",
    "LabelFile",
    "check_label",
    "document_name",
    "is_label",
    "label_of",
    "label_path",
    "list_labels",
    "read_label",
]

PRODUCTION = "production"
"""The label of the prompts file itself (``PROMPTS_PATH``)."""

LABEL_PATTERN = r"[a-z0-9][a-z0-9_-]{0,31}"
"""What a label name looks like (also safe inside a file name, a URL path and a Redis key)."""

MAX_LABELS = 256
"""At most this many labels are listed (a directory full of look-alike names cannot stall a reader)."""

_LABEL_RE = re.compile(LABEL_PATTERN)


def is_label(name: str) -> bool:
    """True when ``name`` is a well-formed label name."""
    return _LABEL_RE.fullmatch(name) is not None


def check_label(name: str) -> str:
    """``name`` when it is a well-formed label, else :class:`LabelError` naming the rule."""
    if not is_label(name):
        shown = name if len(name) <= 40 else name[:40] + "…"
        raise LabelError(f"invalid label {shown!r}: a label is 1-32 of a-z 0-9 _ - and starts with a letter or digit")
    return name


def _split(prompts_path: Path) -> tuple[str, str]:
    name = prompts_path.name
    stem, dot, suffix = name.rpartition(".")
    return (stem, f".{suffix}") if dot and stem else (name, "")


def label_path(prompts_path: Path, label: str) -> Path:
    """The file of ``label``: ``prompts_path`` itself for production, else ``STEM.<label>.SUFFIX`` beside it."""
    check_label(label)
    if label == PRODUCTION:
        return prompts_path
    stem, suffix = _split(prompts_path)
    return prompts_path.with_name(f"{stem}.{label}{suffix}")


def label_of(prompts_path: Path, path: Path) -> str | None:
    """Which label ``path`` (a file in the prompts directory) holds, or None when it is no label file.

    ``prompts.production.json`` is no label file: production is ``prompts.json``.
    """
    if path.parent != prompts_path.parent:
        return None
    if path.name == prompts_path.name:
        return PRODUCTION
    stem, suffix = _split(prompts_path)
    name = path.name
    if not (name.startswith(stem + ".") and name.endswith(suffix)) or len(name) <= len(stem) + 1 + len(suffix):
        return None
    middle = name[len(stem) + 1 : len(name) - len(suffix)] if suffix else name[len(stem) + 1 :]
    return middle if is_label(middle) and middle != PRODUCTION else None


def document_name(label: str) -> str:
    """The name a store outside the file system keys the document of ``label`` by (``prompts``,
    ``prompts.staging``): the same for every process and host."""
    check_label(label)
    return "prompts" if label == PRODUCTION else f"prompts.{label}"


@dataclass(frozen=True)
class LabelFile:
    """A label as it is on disk now."""

    label: str
    path: Path
    sha256: str
    size: int
    mtime: float


def read_label(path: Path, *, limit: int = MAX_DOCUMENT_BYTES) -> tuple[bytes, float] | None:
    """The bytes (at most ``limit + 1``) and mtime of a label file; None when it does not exist.

    Read with :func:`promptwatch.atomic.read_content` (the safe reader): only a regular file (a FIFO or device planted
    under a label's name is refused with :class:`~promptwatch.errors.NotRegularFileError`, never
    opened for a blocking read), symlinks only within the directory, as for a ConfigMap mount.
    """
    try:
        content = read_content(path, limit=limit)
    except NotADirectoryError:
        return None
    return (content.data, content.stat.st_mtime) if content is not None else None


def list_labels(prompts_path: Path, *, limit: int = MAX_DOCUMENT_BYTES) -> list[LabelFile]:
    """Every label on disk: production first (when its file exists), then the others by name.

    A file that vanishes meanwhile, or is no regular file, is left out.
    """
    directory = prompts_path.parent
    found: dict[str, Path] = {}
    try:
        with os.scandir(directory) as entries:
            for entry in entries:
                label = label_of(prompts_path, directory / entry.name)
                if label is not None:
                    found[label] = directory / entry.name
                    if len(found) >= MAX_LABELS:
                        break
    except FileNotFoundError:
        return []
    out: list[LabelFile] = []
    for label in sorted(found, key=lambda name: (name != PRODUCTION, name)):
        try:
            read = read_label(found[label], limit=limit)
        except (OSError, UnsafeFileError):
            continue  # unreadable, or no regular file: not a label
        if read is None:
            continue
        data, mtime = read
        out.append(LabelFile(label, found[label], sha256_hex(data), len(data), mtime))
    return out
