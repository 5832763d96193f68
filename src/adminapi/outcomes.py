"""Outcomes per label and version from the call log, and how sure a difference between two of them is.

For each (label, sha256) with ended calls in a period: the number of calls, the median number of
turns, the count and share of each end reason (``goodbye``, ``operator`` = transfer, ``no_input``,
``error``, ``caller_hangup``, ``max_turns``, ``busy``, ``shutdown``), the turns with a backend error
and the median reply latency (STT + LLM + TTS of the turns the bot answered).

Each version is compared with a baseline (by default the production version with the most calls)
on the goodbye and transfer shares: the difference of the two proportions with a 95 % Wald interval,
``p1 - p2 ± 1.96 · sqrt(p1(1-p1)/n1 + p2(1-p2)/n2)``.  The interval means little on few calls or
rare events, so it is flagged ``too_small`` unless both versions have at least
:data:`MIN_CALLS` calls and at least :data:`MIN_EVENTS` calls with and without the outcome.
"""

from __future__ import annotations

import math
import statistics
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from stasis.calllog import CallOutcome, ReplyLatency

__all__ = [
    "COMPARED_REASONS",
    "MIN_CALLS",
    "MIN_EVENTS",
    "Comparison",
    "VersionOutcome",
    "compare",
    "summarize",
    "two_proportion_interval",
]

COMPARED_REASONS = ("goodbye", "operator")
"""The end reasons compared between versions: a goodbye (the caller was served) and a transfer."""
MIN_CALLS = 30
MIN_EVENTS = 5
Z_95 = 1.959963984540054


@dataclass(frozen=True)
class Comparison:
    """``reason``'s share in a version minus its share in the baseline, with the 95 % interval."""

    reason: str
    difference: float
    low: float
    high: float
    too_small: bool
    """The samples are too small for the interval to mean much: say so instead of a verdict."""

    @property
    def significant(self) -> bool:
        return not self.too_small and (self.low > 0 or self.high < 0)


@dataclass
class VersionOutcome:
    """The calls of one label at one sha256."""

    label: str
    sha256: str
    calls: int = 0
    median_turns: float | None = None
    end_reasons: dict[str, int] = field(default_factory=dict)
    backend_errors: int = 0
    calls_with_errors: int = 0
    median_reply_ms: float | None = None
    replies: int = 0
    comparisons: list[Comparison] = field(default_factory=list)

    def share(self, reason: str) -> float:
        return self.end_reasons.get(reason, 0) / self.calls if self.calls else 0.0


def two_proportion_interval(x1: int, n1: int, x2: int, n2: int, z: float = Z_95) -> tuple[float, float, float]:
    """``(p1 - p2, low, high)``: the Wald interval of the difference of two proportions."""
    if n1 <= 0 or n2 <= 0:
        raise ValueError("both samples need at least one call")
    p1, p2 = x1 / n1, x2 / n2
    diff = p1 - p2
    half = z * math.sqrt(p1 * (1 - p1) / n1 + p2 * (1 - p2) / n2)
    return diff, diff - half, diff + half


def _too_small(x1: int, n1: int, x2: int, n2: int) -> bool:
    if min(n1, n2) < MIN_CALLS:
        return True
    return min(x1, n1 - x1, x2, n2 - x2) < MIN_EVENTS


def compare(version: VersionOutcome, baseline: VersionOutcome, reasons: Sequence[str] = COMPARED_REASONS) -> None:
    """Fill ``version.comparisons`` against ``baseline``."""
    version.comparisons = []
    for reason in reasons:
        x1, n1 = version.end_reasons.get(reason, 0), version.calls
        x2, n2 = baseline.end_reasons.get(reason, 0), baseline.calls
        diff, low, high = two_proportion_interval(x1, n1, x2, n2)
        version.comparisons.append(Comparison(reason, diff, low, high, _too_small(x1, n1, x2, n2)))


def summarize(calls: Iterable[CallOutcome], latencies: Iterable[ReplyLatency]) -> list[VersionOutcome]:
    """One :class:`VersionOutcome` per (label, sha256), production first, then by label and most calls."""
    turns: dict[tuple[str, str], list[int]] = defaultdict(list)
    out: dict[tuple[str, str], VersionOutcome] = {}
    for c in calls:
        key = (c.label, c.prompts_sha256)
        v = out.get(key)
        if v is None:
            v = out[key] = VersionOutcome(c.label, c.prompts_sha256)
        v.calls += 1
        v.end_reasons[c.end_reason] = v.end_reasons.get(c.end_reason, 0) + 1
        v.backend_errors += c.errors
        v.calls_with_errors += c.errors > 0
        turns[key].append(c.turn_count)
    replies: dict[tuple[str, str], list[float]] = defaultdict(list)
    for r in latencies:
        replies[(r.label, r.prompts_sha256)].append(r.ms)
    for key, v in out.items():
        v.median_turns = float(statistics.median(turns[key]))
        ms = replies.get(key)
        v.replies = len(ms) if ms else 0
        v.median_reply_ms = round(float(statistics.median(ms)), 1) if ms else None
        v.end_reasons = dict(sorted(v.end_reasons.items(), key=lambda kv: (-kv[1], kv[0])))
    return sorted(out.values(), key=lambda v: (v.label != "production", v.label, -v.calls, v.sha256))
