"""``/api/calls``: the call log the Stasis service writes (read-only here), newest first."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime
from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import BeforeValidator
from starlette.concurrency import run_in_threadpool

from stasis.calllog import CallDetail, CallSummary

from ..deps import CallLogDep, OperatorDep
from ..problems import AUTH_RESPONSES, ApiError, Code, responses
from ..schemas import CallDetailOut, CallList, CallOut

__all__ = ["router"]

router = APIRouter(prefix="/api/calls", tags=["calls"], responses=AUTH_RESPONSES)


def _epoch(value: datetime | date | None, *, end: bool = False) -> float | None:
    """A date means its whole day (UTC): ``since`` its start, ``until`` the start of the next day."""
    if value is None:
        return None
    if isinstance(value, datetime):
        return (value if value.tzinfo else value.replace(tzinfo=UTC)).timestamp()
    start = datetime(value.year, value.month, value.day, tzinfo=UTC).timestamp()
    return start + 86400 if end else start


_ISO = re.compile(r"\d{4}-\d{2}-\d{2}([T ].*)?")


def _iso(value: object) -> object:
    """Only ISO 8601 dates and times, as documented (``2026-11-25``, ``2026-11-25T10:00:00Z``): pydantic would
    also take ``0.5`` as a Unix time."""
    if isinstance(value, str) and not _ISO.fullmatch(value):
        raise ValueError("expected an ISO 8601 date (YYYY-MM-DD) or date-time")
    return value


def _summary(c: CallSummary) -> CallOut:
    return CallOut.model_validate(c, from_attributes=True)


def _detail(c: CallDetail) -> CallDetailOut:
    return CallDetailOut.model_validate(c, from_attributes=True)


@router.get("", summary="Calls, newest first", response_model=CallList)
async def list_calls(
    calllog: CallLogDep,
    _operator: OperatorDep,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0,
    caller: Annotated[str | None, Query(max_length=100, description="Part of the caller's number or name")] = None,
    since: Annotated[
        date | datetime | None, BeforeValidator(_iso), Query(description="From this date or time (UTC unless given)")
    ] = None,
    until: Annotated[
        date | datetime | None, BeforeValidator(_iso), Query(description="Until this date (inclusive) or time")
    ] = None,
    end_reason: Annotated[
        str | None, Query(max_length=40, description="Only calls that ended so (goodbye, no_input, error, …)")
    ] = None,
    had_error: Annotated[bool | None, Query(description="Only calls with (true) or without (false) an error")] = None,
) -> CallList:
    items, total = await run_in_threadpool(
        calllog.list_calls,
        limit=limit,
        offset=offset,
        caller=caller or None,
        since=_epoch(since),
        until=_epoch(until, end=True),
        end_reason=end_reason or None,
        had_error=had_error,
    )
    return CallList(items=[_summary(c) for c in items], total=total, limit=limit, offset=offset)


@router.get("/{call_id}", summary="One call with its turns", response_model=CallDetailOut, responses=responses(404))
async def get_call(call_id: str, calllog: CallLogDep, _operator: OperatorDep) -> CallDetailOut:
    call = await run_in_threadpool(calllog.get_call, call_id)
    if call is None:
        raise ApiError(Code.NO_CALL, f"no call {call_id!r} in the call log")
    return _detail(call)
