"""Which label a call runs: the dialplan's choice, else the traffic split, else production.

- ``Stasis(metrotech,label=staging)``: the application argument ``label=staging`` (StasisStart ``args``);
- the channel variable ``PROMPTS_LABEL`` (``Set(PROMPTS_LABEL=staging)`` before ``Stasis()``);
- ``PROMPTS_SPLIT=staging:10,short-greeting:5``: of the calls the dialplan left on production, 10 %
  go to staging and 5 % to short-greeting, chosen by a hash of the caller's number, so a caller
  who calls back hears the same version (a call without a number is placed by its channel id).

An invalid or unknown label is the caller's problem, never the call's: it is logged at error level
by the service and the call runs on production.  :func:`choose_label` is pure, so the split is
tested directly over many callers.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from promptwatch.labels import PRODUCTION, is_label

__all__ = [
    "LABEL_ARG",
    "LABEL_VARIABLE",
    "Choice",
    "SplitShare",
    "choose_label",
    "label_from_args",
    "parse_split",
    "split_bucket",
]

LABEL_ARG = "label"
"""The application argument: ``Stasis(app,label=NAME)``."""
LABEL_VARIABLE = "PROMPTS_LABEL"
"""The channel variable the dialplan may set instead."""

BUCKETS = 10_000
"""The split's resolution: shares are kept in hundredths of a percent."""

Origin = Literal["arg", "variable", "split", "default"]


@dataclass(frozen=True, slots=True)
class SplitShare:
    """``percent`` % of the production calls go to ``label``."""

    label: str
    percent: float

    @property
    def buckets(self) -> int:
        return round(self.percent * BUCKETS / 100)


def parse_split(spec: str) -> tuple[SplitShare, ...]:
    """``"staging:10,short-greeting:5"`` → shares; ValueError naming the bad item otherwise."""
    shares: list[SplitShare] = []
    for raw in spec.split(","):
        item = raw.strip()
        if not item:
            continue
        label, sep, pct = item.partition(":")
        label = label.strip()
        if not sep:
            raise ValueError(f"{item!r}: expected LABEL:PERCENT, e.g. staging:10")
        if not is_label(label):
            raise ValueError(f"{item!r}: {label!r} is not a label name (1-32 of a-z 0-9 _ -)")
        if label == PRODUCTION:
            raise ValueError(f"{item!r}: production gets what the other labels leave")
        if any(s.label == label for s in shares):
            raise ValueError(f"{item!r}: {label} appears twice")
        try:
            percent = float(pct)
        except ValueError:
            raise ValueError(f"{item!r}: {pct.strip()!r} is not a percentage") from None
        if not 0 <= percent <= 100:
            raise ValueError(f"{item!r}: the percentage must be between 0 and 100")
        shares.append(SplitShare(label, percent))
    total = sum(s.buckets for s in shares)
    if total > BUCKETS:
        raise ValueError(f"the shares add up to {total * 100 / BUCKETS:g} %, more than 100 %")
    return tuple(shares)


def label_from_args(args: Sequence[object]) -> str | None:
    """The ``label=NAME`` application argument (the last one given), as written, or None."""
    found: str | None = None
    for arg in args:
        if isinstance(arg, str):
            key, sep, value = arg.partition("=")
            if sep and key.strip() == LABEL_ARG:
                found = value.strip()
    return found


def split_bucket(key: str) -> int:
    """A stable bucket in ``[0, BUCKETS)`` for a caller: the same number always lands in the same one."""
    digest = hashlib.sha256(b"promptwatch-split\0" + key.encode("utf-8", "surrogatepass")).digest()
    return int.from_bytes(digest[:8], "big") % BUCKETS


@dataclass(frozen=True, slots=True)
class Choice:
    """The label asked for and where the choice came from (``requested`` as given, maybe invalid)."""

    requested: str
    origin: Origin


def choose_label(*, arg: str | None, variable: str | None, caller: str, split: Sequence[SplitShare] = ()) -> Choice:
    """The label a call asks for: the argument, else the variable, else the split, else production.

    An empty argument or variable counts as not given.  The result may name an invalid or unknown
    label: the caller of this function checks it and falls back to production.
    """
    if arg:
        return Choice(arg, "arg")
    if variable:
        return Choice(variable, "variable")
    if split:
        bucket = split_bucket(caller)
        edge = 0
        for share in split:
            edge += share.buckets
            if bucket < edge:
                return Choice(share.label, "split")
    return Choice(PRODUCTION, "default")
