"""The knowledge-base file rules every process shares: which files are documents, which names are safe.

The panel accepts an upload only under a name the bot will load, and both apply the same size limit
(``KB_MAX_BYTES``, the default of the ``KB_MAX_BYTES`` setting).  Declared once here, imported by the
panel's store (:mod:`adminapi.knowledge`), the bot's index (:mod:`stasis.kb`) and ``promptwatch config``.

Names are checked before anything touches the disk: one path component, no traversal, not hidden,
no control characters, a known text extension, at most 255 bytes; Unicode names (``тарифы.md``)
are normalised to NFC.
"""

from __future__ import annotations

import re
import unicodedata
from pathlib import PurePath

import orjson

__all__ = [
    "KB_EXTENSIONS",
    "KB_MAX_BYTES",
    "KB_NEW_NAME_PATTERN",
    "KbContentError",
    "KbNameError",
    "check_kb_content",
    "check_kb_name",
    "is_kb_document",
]

KB_EXTENSIONS: dict[str, str] = {
    ".md": "text/markdown",
    ".markdown": "text/markdown",
    ".txt": "text/plain",
    ".json": "application/json",
}
"""Extension → media type of the files that are knowledge-base documents."""

KB_MAX_BYTES = 2 * 1024 * 1024
"""The default size limit of one knowledge-base file."""

_NAME_MAX_BYTES = 255


def _any_case(text: str) -> str:
    return "".join(f"[{c.lower()}{c.upper()}]" if c.isalpha() else re.escape(c) for c in text)


KB_NEW_NAME_PATTERN = (
    r"^[\w(\[«„“‘][\w .,;:!?'()\[\]{}«»„“”‘’@#№%&+=~\-–—]{0,53}"
    + r"\.(?:"
    + "|".join(_any_case(ext.removeprefix(".")) for ext in KB_EXTENSIONS)
    + ")$"
)
"""The names the panel gives *new* files (documented in its API schema): letters and digits of any script,
spaces and common punctuation, at most 63 characters, ending in a knowledge-base extension.  A subset of
:func:`check_kb_name`, which governs reading and deleting, so every name the panel creates is loaded."""
_FORBIDDEN_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Co", "Cn"})


class KbNameError(ValueError):
    """The file name is unsafe or not a knowledge-base document; the message names it and why."""


class KbContentError(ValueError):
    """The content is not UTF-8 text of the named kind; the message names the file and why."""


def is_kb_document(name: str) -> bool:
    """True for a directory entry a consumer loads: not hidden (temps, locks), a known extension."""
    suffix = PurePath(name).suffix.lower()
    return not name.startswith(".") and suffix in KB_EXTENSIONS and PurePath(name).stem != ""


def check_kb_name(raw: str) -> str:
    """The safe, NFC-normalised file name, or :class:`KbNameError`."""
    name = unicodedata.normalize("NFC", raw)
    if not name or name in {".", ".."}:
        raise KbNameError(f"{raw!r}: empty file name")
    if "/" in name or "\\" in name:
        raise KbNameError(f"{raw!r}: a file name, not a path (no '/' or '\\')")
    if name.startswith("."):
        raise KbNameError(f"{raw!r}: hidden file names are not allowed")
    if any(unicodedata.category(c) in _FORBIDDEN_CATEGORIES for c in name):
        raise KbNameError(f"{raw!r}: control or unassigned characters in the file name")
    if name != name.strip():
        raise KbNameError(f"{raw!r}: leading or trailing spaces in the file name")
    if len(name.encode()) > _NAME_MAX_BYTES:
        raise KbNameError(f"{raw!r}: file name longer than {_NAME_MAX_BYTES} bytes")
    if not is_kb_document(name):
        allowed = ", ".join(sorted(KB_EXTENSIONS))
        raise KbNameError(f"{raw!r}: only {allowed} files are accepted")
    return name


def check_kb_content(name: str, data: bytes) -> None:
    """Raise :class:`KbContentError` unless ``data`` is UTF-8 text (valid JSON for ``.json``)."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise KbContentError(f"{name}: not UTF-8 text (byte 0x{data[e.start]:02x} at offset {e.start})") from None
    if "\x00" in text:
        raise KbContentError(f"{name}: binary content (NUL byte at offset {text.index(chr(0))})")
    if any(unicodedata.category(c) == "Cc" and c not in "\t\n\r\f" for c in text):
        raise KbContentError(f"{name}: binary content (control characters)")
    if name.lower().endswith(".json"):
        try:
            orjson.loads(data)
        except orjson.JSONDecodeError as e:
            raise KbContentError(f"{name}: not valid JSON: {e}") from None
