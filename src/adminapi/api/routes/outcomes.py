"""``/api/outcomes``: how each label and version did over a period, from the call log, side by side."""

from __future__ import annotations

import time
from datetime import date, datetime
from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import BeforeValidator
from starlette.concurrency import run_in_threadpool

from promptwatch.labels import LABEL_PATTERN, PRODUCTION

from ...outcomes import MIN_CALLS, MIN_EVENTS, VersionOutcome, compare, summarize
from ..deps import CallLogDep, OperatorDep
from ..label_schemas import ComparisonOut, OutcomesOut, VersionOutcomeOut
from ..problems import AUTH_RESPONSES, responses
from .calls import _epoch, _iso

__all__ = ["router"]

router = APIRouter(prefix="/api/outcomes", tags=["outcomes"], responses=AUTH_RESPONSES)

DEFAULT_DAYS = 7


def _out(v: VersionOutcome, baseline: VersionOutcome | None) -> VersionOutcomeOut:
    return VersionOutcomeOut(
        label=v.label,
        sha256=v.sha256,
        calls=v.calls,
        median_turns=v.median_turns,
        end_reasons=v.end_reasons,
        shares={reason: round(v.share(reason), 4) for reason in v.end_reasons},
        backend_errors=v.backend_errors,
        calls_with_errors=v.calls_with_errors,
        median_reply_ms=v.median_reply_ms,
        replies=v.replies,
        baseline=v is baseline,
        comparisons=[
            ComparisonOut(
                reason=c.reason,
                difference=round(c.difference, 4),
                low=round(c.low, 4),
                high=round(c.high, 4),
                too_small=c.too_small,
                significant=c.significant,
            )
            for c in v.comparisons
        ],
    )


@router.get("", summary="Calls, end reasons and latency per label and version", response_model=OutcomesOut,
            responses=responses(422))  # fmt: skip
async def get_outcomes(
    calllog: CallLogDep,
    _operator: OperatorDep,
    since: Annotated[
        date | datetime | None, BeforeValidator(_iso), Query(description="From this date or time (default: 7 days ago)")
    ] = None,
    until: Annotated[
        date | datetime | None, BeforeValidator(_iso), Query(description="Until this date (inclusive) or time")
    ] = None,
    baseline: Annotated[
        str,
        Query(pattern=f"^{LABEL_PATTERN}$", description="The label whose busiest version the others are compared with"),
    ] = PRODUCTION,
    baseline_sha: Annotated[
        str | None, Query(pattern="^[0-9a-f]{7,64}$", description="Compare with this version of the baseline label")
    ] = None,
) -> OutcomesOut:
    """Only calls that have ended count.  Each version's goodbye and transfer (``operator``) shares are
    compared with the baseline's: the difference and its 95 % interval, flagged ``too_small`` when the
    samples cannot tell."""
    end = _epoch(until, end=True) or time.time()
    start = _epoch(since) if since is not None else end - DEFAULT_DAYS * 86400
    assert start is not None
    calls, latencies = await run_in_threadpool(calllog.outcome_rows, since=start, until=end)  # none when start >= end
    versions = summarize(calls, latencies)
    candidates = [
        v for v in versions if v.label == baseline and (baseline_sha is None or v.sha256.startswith(baseline_sha))
    ]
    base = max(candidates, key=lambda v: v.calls) if candidates else None
    if base is not None:
        for v in versions:
            if v is not base:
                compare(v, base)
    return OutcomesOut(
        since=start,
        until=end,
        baseline=_out(base, base) if base is not None else None,
        items=[_out(v, base) for v in versions],
        min_calls=MIN_CALLS,
        min_events=MIN_EVENTS,
    )
