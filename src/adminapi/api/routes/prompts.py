"""``/api/prompts``: the document with ETags, conditional saves, per-key patches, history, diff, rollback."""

from __future__ import annotations

import logging
from typing import Annotated, Any

from fastapi import APIRouter, Header, Query, Request, Response
from starlette.concurrency import run_in_threadpool

from promptwatch import ConflictError, DocumentError, Prompts, WriteError

from ...cluster import Cluster
from ...consumers import ConsumerView, consumer_views, wait_for_consumers
from ...editor import EditorError, SaveResult, normalize
from ...history import key_changes, unified_diff
from ..deps import ClusterDep, EditorDep, MetricsDep, OperatorDep, SettingsDep
from ..problems import AUTH_RESPONSES, ApiError, document_error, responses
from ..schemas import ConsumerOut, DiffOut, HistoryList, KeyChangeOut, PatchBody, RevisionOut, SaveOut

__all__ = ["etag", "parse_etags", "router"]

logger = logging.getLogger("adminapi.prompts")

router = APIRouter(prefix="/api/prompts", tags=["prompts"], responses=AUTH_RESPONSES)

PROMPTS_SCHEMA_REF = {"$ref": "#/components/schemas/Prompts"}
DOCUMENT_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "description": "The whole prompts document (UTF-8 JSON)",
        "content": {"application/json": {"schema": PROMPTS_SCHEMA_REF}},
    }
}
ETAG_HEADER = {"ETag": {"description": "The sha256 of the document, quoted", "schema": {"type": "string"}}}

WaitMs = Annotated[
    int,
    Query(ge=0, le=600_000, description="Wait up to this many ms (capped by ADMIN_WAIT_MAX_MS) for every consumer"),
]
Message = Annotated[str, Query(max_length=500, description="A note kept in the history")]
IfMatch = Annotated[
    str | None, Header(description="The ETag the edit is based on; a stale one gets 412 and nothing is written")
]


def etag(sha: str) -> str:
    return f'"{sha}"'


def parse_etags(value: str) -> list[str]:
    """``"a", W/"b", c`` → ``["a", "b", "c"]``; ``*`` stays ``*``."""
    out: list[str] = []
    for part in value.split(","):
        part = part.strip()
        if part.startswith("W/"):
            part = part[2:]
        part = part.strip('"').strip().lower()
        if part:
            out.append(part)
    return out


def _condition(if_match: str | None, current: str | None) -> str | None:
    """The sha256 a write must find on disk (``""``: no file), or None for an unconditional write."""
    if if_match is None:
        return None
    tags = parse_etags(if_match)
    if not tags:
        raise ApiError(412, "If-Match is empty", current_sha256=current, headers=_etag_headers(current))
    if "*" in tags:
        if current is None:
            raise ApiError(412, "If-Match: * but there is no prompts file", current_sha256=None)
        return None
    if current is not None and current in tags:
        return current
    return tags[0]


def _etag_headers(sha: str | None) -> dict[str, str]:
    return {"ETag": etag(sha)} if sha else {}


async def _finish(
    result: SaveResult,
    wait_ms: int,
    settings: SettingsDep,
    metrics: MetricsDep,
    origin: str,
    response: Response,
    cluster: Cluster | None = None,
) -> SaveOut:
    """The save's outcome: the consumers of every host (with Redis), waited for up to ``wait_ms``."""
    metrics.saves.labels(origin).inc()
    timeout = min(wait_ms, settings.admin_wait_max_ms) / 1000
    remote = cluster.remote_consumers if cluster is not None else None
    if timeout > 0:
        waited = await wait_for_consumers(
            settings.prompts_status_dir,
            settings.prompts_file,
            result.sha256,
            since=result.written_at,
            timeout=timeout,
            host=settings.prompts_host,
            remote=remote,
        )
        views, all_applied, waited_ms = waited.consumers, waited.all_applied, waited.waited_ms
        for v in views:
            if v.latency_ms is not None:
                metrics.apply_latency.observe(v.latency_ms / 1000)
    else:
        views = consumer_views(
            settings.prompts_status_dir,
            settings.prompts_file,
            result.sha256,
            result.written_at,
            host=settings.prompts_host,
        )
        if remote is not None:
            views += [ConsumerView.from_record(r, result.sha256, result.written_at) for r in await remote()]
        all_applied, waited_ms = all(v.in_sync for v in views), 0.0
    response.headers["ETag"] = etag(result.sha256)
    return SaveOut(
        sha256=result.sha256,
        size=result.size,
        previous_sha256=result.previous_sha256,
        revision=RevisionOut.of(result.revision) if result.revision else None,
        consumers=[ConsumerOut.of(v) for v in views],
        all_applied=all_applied,
        waited_ms=round(waited_ms, 3),
    )


def _conflict(e: ConflictError, metrics: MetricsDep) -> ApiError:
    metrics.conflicts.inc()
    metrics.save_failures.labels("conflict").inc()
    return ApiError(
        412,
        "the prompts were changed by someone else since you loaded them: reload, or see the diff",
        current_sha256=e.current,
        headers=_etag_headers(e.current),
    )


def _invalid(e: DocumentError, metrics: MetricsDep) -> ApiError:
    err = document_error(e)
    metrics.save_failures.labels("too_large" if err.status == 413 else "invalid").inc()
    return err


def _write_failed(e: WriteError, metrics: MetricsDep) -> ApiError:
    metrics.save_failures.labels("io").inc()
    logger.error("save failed: %s", e)
    return ApiError(500, str(e))


@router.get(
    "",
    summary="The prompts document",
    response_model=None,
    responses={
        200: {"model": Prompts, "description": "The document as on disk", "headers": ETAG_HEADER},
        304: {"description": "Unchanged since the ETag in If-None-Match", "headers": ETAG_HEADER},
        **responses(404, 409),
    },
)
async def get_prompts(
    editor: EditorDep,
    _operator: OperatorDep,
    if_none_match: Annotated[str | None, Header(description="An ETag you have: 304 when still current")] = None,
) -> Response:
    """Read from disk on every request, so it is never stale.  When the file on disk is invalid (a broken
    hand edit), the newest valid revision is served with the disk's ETag and ``X-Prompts-Valid: false``:
    saving with that ETag replaces the broken file."""
    state = editor.read()
    if not state.readable:
        raise ApiError(409, state.error or f"{editor.path}: cannot be read")
    if state.data is None or state.sha256 is None:
        raise ApiError(404, f"{editor.path}: no prompts file yet; PUT one")
    headers = {"ETag": etag(state.sha256), "Cache-Control": "no-cache"}
    if if_none_match is not None:
        tags = parse_etags(if_none_match)
        if "*" in tags or state.sha256 in tags:
            return Response(status_code=304, headers=headers)
    body = state.data
    if state.prompts is None:
        good = editor.last_good()
        if good is None:
            raise ApiError(
                409,
                f"the prompts file is invalid and no valid revision is known: {state.error}",
                current_sha256=state.sha256,
                headers=headers,
            )
        body = good
        headers["X-Prompts-Valid"] = "false"
    return Response(body, media_type="application/json", headers=headers)


SAVE_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"description": "Written; per-consumer results", "headers": ETAG_HEADER},
    **responses(412, 413, 422),
}


async def _save(
    request: Request,
    response: Response,
    editor: EditorDep,
    operator: OperatorDep,
    settings: SettingsDep,
    metrics: MetricsDep,
    wait_ms: int,
    message: str,
    if_match: str | None,
    cluster: ClusterDep,
) -> SaveOut:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > editor.limit:
        metrics.save_failures.labels("too_large").inc()
        raise ApiError(413, f"the document is {declared} bytes, the limit is {editor.limit}")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > editor.limit:
            metrics.save_failures.labels("too_large").inc()
            raise ApiError(413, f"the document is over the limit of {editor.limit} bytes")
    try:
        data = normalize(bytes(body), limit=editor.limit)
        condition = _condition(if_match, editor.read().sha256)
        result = await run_in_threadpool(
            editor.save, data, if_match=condition, author=operator.name, origin="api", message=message
        )
    except DocumentError as e:
        raise _invalid(e, metrics) from None
    except ConflictError as e:
        raise _conflict(e, metrics) from None
    except WriteError as e:
        raise _write_failed(e, metrics) from None
    return await _finish(result, wait_ms, settings, metrics, "api", response, cluster)


@router.put("", summary="Replace the prompts", responses=SAVE_RESPONSES, openapi_extra=DOCUMENT_BODY)
async def put_prompts(
    request: Request,
    response: Response,
    editor: EditorDep,
    operator: OperatorDep,
    settings: SettingsDep,
    metrics: MetricsDep,
    cluster: ClusterDep,
    wait_ms: WaitMs = 0,
    message: Message = "",
    if_match: IfMatch = None,
) -> SaveOut:
    """Validate and write atomically.  Nothing is written on 412, 413 or 422."""
    return await _save(request, response, editor, operator, settings, metrics, wait_ms, message, if_match, cluster)


@router.post("", summary="Replace the prompts (same as PUT)", responses=SAVE_RESPONSES, openapi_extra=DOCUMENT_BODY)
async def post_prompts(
    request: Request,
    response: Response,
    editor: EditorDep,
    operator: OperatorDep,
    settings: SettingsDep,
    metrics: MetricsDep,
    cluster: ClusterDep,
    wait_ms: WaitMs = 0,
    message: Message = "",
    if_match: IfMatch = None,
) -> SaveOut:
    """Kept for existing scripts: the same as PUT."""
    return await _save(request, response, editor, operator, settings, metrics, wait_ms, message, if_match, cluster)


@router.get("/history", summary="Revisions, newest first", response_model=HistoryList)
async def list_history(
    editor: EditorDep,
    _operator: OperatorDep,
    limit: Annotated[int, Query(ge=1, le=1000)] = 50,
    offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0,
) -> HistoryList:
    items, total = await run_in_threadpool(editor.history.list, limit=limit, offset=offset)
    return HistoryList(items=[RevisionOut.of(r) for r in items], total=total, retention=editor.history.retention)


@router.get(
    "/history/{sha}",
    summary="The content of one revision",
    response_model=None,
    responses={
        200: {"model": Prompts, "description": "The document of that revision", "headers": ETAG_HEADER},
        **responses(404),
    },
)
async def get_revision(sha: str, editor: EditorDep, _operator: OperatorDep) -> Response:
    found = await run_in_threadpool(editor.history.find, sha)
    if found is None:
        raise ApiError(404, f"no revision {sha!r} in the history")
    rev, data = found
    return Response(data, media_type="application/json", headers={"ETag": etag(rev.sha256)})


@router.get("/diff", summary="Differences between two revisions", response_model=DiffOut, responses=responses(404))
async def diff(
    editor: EditorDep,
    _operator: OperatorDep,
    from_sha: Annotated[str, Query(alias="from", description="A revision's sha256 (or 7+ leading hex digits)")],
    to_sha: Annotated[str | None, Query(alias="to", description="Another revision; default: the file on disk")] = None,
) -> DiffOut:
    old = await run_in_threadpool(editor.history.find, from_sha)
    if old is None:
        raise ApiError(404, f"no revision {from_sha!r} in the history")
    if to_sha is None:
        state = editor.read()
        if state.data is None or state.sha256 is None or state.prompts is None:
            raise ApiError(404, f"no valid prompts file on disk: {state.error}")
        new_sha, new_data = state.sha256, state.data
    else:
        new = await run_in_threadpool(editor.history.find, to_sha)
        if new is None:
            raise ApiError(404, f"no revision {to_sha!r} in the history")
        new_sha, new_data = new[0].sha256, new[1]
    old_sha, old_data = old[0].sha256, old[1]
    return DiffOut(
        from_sha256=old_sha,
        to_sha256=new_sha,
        changes=[KeyChangeOut(**c.__dict__) for c in key_changes(old_data, new_data)],
        unified=unified_diff(old_data, new_data, old_sha[:12], new_sha[:12]),
    )


@router.post(
    "/rollback/{sha}",
    summary="Write an older revision as a new one",
    responses={200: {"description": "Written", "headers": ETAG_HEADER}, **responses(404, 412, 413, 422)},
)
async def rollback(
    sha: str,
    response: Response,
    editor: EditorDep,
    operator: OperatorDep,
    settings: SettingsDep,
    metrics: MetricsDep,
    cluster: ClusterDep,
    wait_ms: WaitMs = 0,
    if_match: IfMatch = None,
) -> SaveOut:
    try:
        condition = _condition(if_match, editor.read().sha256)
        result = await run_in_threadpool(editor.rollback, sha, if_match=condition, author=operator.name)
    except DocumentError as e:
        raise _invalid(e, metrics) from None
    except ConflictError as e:
        raise _conflict(e, metrics) from None
    except WriteError as e:
        raise _write_failed(e, metrics) from None
    if result is None:
        raise ApiError(404, f"no revision {sha!r} in the history")
    return await _finish(result, wait_ms, settings, metrics, "rollback", response, cluster)


@router.patch(
    "/{key}",
    summary="Change or remove one prompt",
    responses={200: {"description": "Written", "headers": ETAG_HEADER}, **responses(400, 409, 412, 413, 422)},
)
async def patch_prompt(
    key: str,
    body: PatchBody,
    response: Response,
    editor: EditorDep,
    operator: OperatorDep,
    settings: SettingsDep,
    metrics: MetricsDep,
    cluster: ClusterDep,
    wait_ms: WaitMs = 0,
    if_match: IfMatch = None,
) -> SaveOut:
    """With If-Match, 412 only when *this key* changed since that ETag; other keys may have changed."""
    if not body.remove and body.value is None:
        raise ApiError(422, "give a value, or remove: true", errors=[])
    try:
        condition = _condition(if_match, editor.read().sha256)
        result = await run_in_threadpool(
            editor.patch,
            key,
            body.value,
            remove=body.remove,
            if_match=condition,
            author=operator.name,
            message=body.message,
        )
    except DocumentError as e:
        raise _invalid(e, metrics) from None
    except ConflictError as e:
        raise _conflict(e, metrics) from None
    except EditorError as e:
        raise ApiError(409, str(e)) from None
    except WriteError as e:
        raise _write_failed(e, metrics) from None
    return await _finish(result, wait_ms, settings, metrics, "patch", response, cluster)
