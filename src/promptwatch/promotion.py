"""Promotion: one label's exact bytes written as another label, conditionally on the target's sha256.

promote(Path("/etc/m/prompts.json"), "staging", "production", if_match=sha_of_production_read)

The source is read bounded (a regular file only), validated, and written to the target with
:func:`~promptwatch.atomic_write` under the target's lock and condition: a target changed since
the caller read it is a :class:`ConflictError` and nothing is written.  When a history directory is
given, the promotion is recorded in the *target's* history (origin ``promote``), so the panel's
watcher does not record the same change again as a hand edit.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from .atomic import atomic_write
from .errors import LabelError, UnsafeFileError
from .history import HistoryStore, Revision, history_file
from .labels import check_label, label_path, read_label
from .schema import MAX_DOCUMENT_BYTES, parse_document, sha256_hex

__all__ = ["Promotion", "promote", "promotion_message", "record_promotion"]


@dataclass(frozen=True)
class Promotion:
    """What a promotion did: ``dst`` now has the bytes ``src`` had (``sha256``)."""

    src: str
    dst: str
    sha256: str
    size: int
    previous_sha256: str | None
    data: bytes


def promotion_message(src: str, sha256: str) -> str:
    """The history note of a promotion (the same from the CLI and the panel)."""
    return f"promoted from {src} at {sha256[:12]}"


def promote(
    prompts_path: Path,
    src: str,
    dst: str,
    *,
    if_match: str | None = None,
    limit: int = MAX_DOCUMENT_BYTES,
    record: Callable[[Promotion], object] | None = None,
) -> Promotion:
    """Write the label ``src``'s exact bytes as the label ``dst``.

    :class:`LabelError` for a malformed name, the same label twice or a source without a file;
    :class:`~promptwatch.DocumentError` when the source is not valid prompts;
    :class:`~promptwatch.ConflictError` when ``dst`` no longer has the sha256 ``if_match``.
    Nothing is written in every one of those cases.  ``record(promotion)`` runs under the target's
    write lock once the bytes are in place (see :func:`record_promotion`).
    """
    check_label(src)
    check_label(dst)
    if src == dst:
        raise LabelError(f"cannot promote {src!r} onto itself")
    src_path = label_path(prompts_path, src)
    dst_path = label_path(prompts_path, dst)
    try:
        read = read_label(src_path, limit=limit)
    except UnsafeFileError as e:
        raise LabelError(f"label {src!r}: {e}") from e
    except OSError as e:
        raise LabelError(f"label {src!r}: cannot read {src_path}: {e.strerror or e}") from e
    if read is None:
        raise LabelError(f"no label {src!r}: {src_path} does not exist")
    data = read[0]
    parse_document(data, source=str(src_path), limit=limit)
    try:
        before = read_label(dst_path, limit=limit)
    except (OSError, UnsafeFileError):
        before = None  # the write below refuses what is unsafe to replace
    previous = sha256_hex(before[0]) if before is not None else None
    promotion = Promotion(src, dst, sha256_hex(data), len(data), previous, data)

    def recorded() -> None:
        if record is not None:
            record(promotion)

    atomic_write(dst_path, data, if_match=if_match, on_written=recorded)
    return promotion


def record_promotion(state_dir: Path, promotion: Promotion, *, author: str, retention: int = 100) -> Revision:
    """Append ``promotion`` to the target label's history in ``state_dir`` (pass it as ``record``: the
    panel's watcher takes the target's lock before it records a change it sees, so it finds this
    revision already there and does not record the promotion again as a hand edit)."""
    store = HistoryStore(history_file(state_dir, promotion.dst), retention=retention)
    try:
        return store.add(
            promotion.data,
            author=author,
            origin="promote",
            message=promotion_message(promotion.src, promotion.sha256),
        )
    finally:
        store.close()
