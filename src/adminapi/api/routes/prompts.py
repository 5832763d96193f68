"""``/api/prompts``: the document with ETags, conditional saves, per-key patches, history, diff, rollback."""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Header, Query, Request, Response
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool

from promptwatch import ConflictError, DocumentError, Prompts, WriteError
from promptwatch.labels import document_name, label_of
from promptwatch.schema import format_loc

from ...cluster import Cluster
from ...consumers import ConsumerView, RemoteConsumers, consumer_views, wait_for_consumers
from ...editor import EditorBusyError, EditorError, PromptsEditor, SaveResult
from ...history import key_changes, unified_diff
from ..deps import ClusterDep, EditorDep, MetricsDep, OperatorDep, SettingsDep
from ..problems import AUTH_RESPONSES, ApiError, Code, ErrorItem, document_error, responses, write_error
from ..schemas import (
    PATCH_ADAPTER,
    ConsumerOut,
    DiffOut,
    HistoryList,
    KeyChangeOut,
    PatchRemove,
    PatchSet,
    RevisionOut,
    SaveOut,
)

__all__ = ["etag", "parse_etags", "router"]

logger = logging.getLogger("adminapi.prompts")

router = APIRouter(prefix="/api/prompts", tags=["prompts"], responses={**AUTH_RESPONSES, **responses(404, 422)})

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
IF_MATCH_PATTERN = r'^\s*(\*|(W/)?"?[0-9A-Za-z]+"?(\s*,\s*(W/)?"?[0-9A-Za-z]+"?)*)\s*$'
"""``*`` or a list of entity tags (quoted or not, ``W/`` ignored): anything else is 422, not a condition."""
IfMatch = Annotated[
    str | None,
    Header(
        pattern=IF_MATCH_PATTERN,
        description="The ETag the edit is based on (or `*`); a stale one gets 412 and nothing is written",
    ),
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
        raise ApiError(Code.IF_MATCH_EMPTY, "If-Match is empty", current_sha256=current, headers=_etag_headers(current))
    if "*" in tags:
        if current is None:
            raise ApiError(Code.IF_MATCH_NO_FILE, "If-Match: * but there is no prompts file", current_sha256=None)
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
    path: Path | None = None,
) -> SaveOut:
    """The save's outcome: the consumers of ``path`` (default: production's file) on every host (with Redis:
    a label's consumers on other hosts by its document name), waited for up to ``wait_ms``."""
    path = path if path is not None else settings.prompts_file
    metrics.saves.labels(origin).inc()
    timeout = min(wait_ms, settings.admin_wait_max_ms) / 1000
    remote: RemoteConsumers | None = None
    label = label_of(settings.prompts_file, path)
    if cluster is not None and label is not None:
        remote = functools.partial(cluster.remote_consumers, document_name(label))
    if timeout > 0:
        waited = await wait_for_consumers(
            settings.prompts_status_dir,
            path,
            result.sha256,
            since=result.written_at,
            timeout=timeout,
            host=settings.prompts_host,
            remote=remote,
        )  # polls the status dir from the thread pool, the other hosts' records through redis.asyncio
        views, all_applied, waited_ms = waited.consumers, waited.all_applied, waited.waited_ms
        for v in views:
            if v.latency_ms is not None:
                metrics.apply_latency.observe(v.latency_ms / 1000)
    else:
        local = settings.prompts_status_dir, path, result.sha256, result.written_at
        views = await run_in_threadpool(consumer_views, *local, host=settings.prompts_host)
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
        warnings=list(result.warnings),
    )


@contextmanager
def _save_errors(metrics: MetricsDep) -> Iterator[None]:
    """The answers of a save that wrote nothing, in one place: 412, 413, 422, 409, 507/500."""
    try:
        yield
    except DocumentError as e:
        err = document_error(e)
        metrics.save_failures.labels("too_large" if err.status == 413 else "invalid").inc()
        raise err from None
    except ConflictError as e:
        metrics.conflicts.inc()
        metrics.save_failures.labels("conflict").inc()
        raise ApiError(
            Code.STALE_ETAG,
            "the prompts were changed by someone else since you loaded them: reload, or see the diff",
            current_sha256=e.current,
            headers=_etag_headers(e.current),
        ) from None
    except EditorBusyError as e:
        raise ApiError(Code.PATCH_BUSY, str(e)) from None
    except EditorError as e:
        raise ApiError(Code.NOT_PATCHABLE, str(e)) from None
    except WriteError as e:
        metrics.save_failures.labels("io").inc()
        logger.error("save failed: %s", e)
        raise write_error(e) from None


def _conditional(
    editor: PromptsEditor, if_match: str | None, write: Callable[[str | None], SaveResult | None]
) -> SaveResult | None:
    """Resolve ``If-Match`` against the disk, then ``write`` with the sha256 it must find (in the thread pool)."""
    return write(_condition(if_match, editor.read().sha256))


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
    state = await run_in_threadpool(editor.read)
    if not state.readable:
        raise ApiError(Code.PROMPTS_UNREADABLE, state.error or f"{editor.path}: cannot be read")
    if state.data is None or state.sha256 is None:
        raise ApiError(Code.NO_PROMPTS_FILE, f"{editor.path}: no prompts file yet; PUT one")
    headers = {"ETag": etag(state.sha256), "Cache-Control": "no-cache"}
    if if_none_match is not None:
        tags = parse_etags(if_none_match)
        if "*" in tags or state.sha256 in tags:
            return Response(status_code=304, headers=headers)
    body = state.data
    if state.prompts is None:
        good = await run_in_threadpool(editor.last_good)
        if good is None:
            raise ApiError(
                Code.PROMPTS_INVALID_ON_DISK,
                f"the prompts file is invalid and no valid revision is known: {state.error}",
                current_sha256=state.sha256,
                headers=headers,
            )
        body = good
        headers["X-Prompts-Valid"] = "false"
    return Response(body, media_type="application/json", headers=headers)


SAVE_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"description": "Written; per-consumer results", "headers": ETAG_HEADER},
    **responses(408, 412, 413, 422, 500, 507),
}


async def _save(
    request: Request,
    response: Response,
    editor: EditorDep,
    operator: OperatorDep,
    settings: SettingsDep,
    metrics: MetricsDep,
    cluster: ClusterDep,
    wait_ms: int,
    message: str,
    if_match: str | None,
) -> SaveOut:
    # The body was capped (at the document limit) and read by the request guard; stored as sent.
    data = await request.body()

    def write(condition: str | None) -> SaveResult:
        return editor.save(data, if_match=condition, author=operator.name, origin="api", message=message)

    with _save_errors(metrics):
        result = await run_in_threadpool(_conditional, editor, if_match, write)
    assert result is not None
    return await _finish(result, wait_ms, settings, metrics, "api", response, cluster, path=editor.path)


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
    """Validate and write atomically the bytes sent (they are what the size limit applies to and what the
    ETag hashes).  Nothing is written on 412, 413 or 422.  When the prompts are written but the history
    cannot be (a full state dir), the answer is 200 with ``warnings``."""
    return await _save(request, response, editor, operator, settings, metrics, cluster, wait_ms, message, if_match)


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
    return await _save(request, response, editor, operator, settings, metrics, cluster, wait_ms, message, if_match)


@router.get("/history", summary="Revisions, newest first", response_model=HistoryList)
async def list_history(
    editor: EditorDep,
    _operator: OperatorDep,
    limit: Annotated[int, Query(ge=1, le=1000)] = 50,
    offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0,
) -> HistoryList:
    await run_in_threadpool(editor.repair_history)
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
        raise ApiError(Code.NO_REVISION, f"no revision {sha!r} in the history")
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
        raise ApiError(Code.NO_REVISION, f"no revision {from_sha!r} in the history")
    if to_sha is None:
        state = await run_in_threadpool(editor.read)
        if state.data is None or state.sha256 is None or state.prompts is None:
            raise ApiError(Code.NO_VALID_PROMPTS, f"no valid prompts file on disk: {state.error}")
        new_sha, new_data = state.sha256, state.data
    else:
        new = await run_in_threadpool(editor.history.find, to_sha)
        if new is None:
            raise ApiError(Code.NO_REVISION, f"no revision {to_sha!r} in the history")
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
    responses={200: {"description": "Written", "headers": ETAG_HEADER}, **responses(404, 412, 413, 422, 500, 507)},
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

    def write(condition: str | None) -> SaveResult | None:
        return editor.rollback(sha, if_match=condition, author=operator.name)

    with _save_errors(metrics):
        result = await run_in_threadpool(_conditional, editor, if_match, write)
    if result is None:
        raise ApiError(Code.NO_REVISION, f"no revision {sha!r} in the history")
    return await _finish(result, wait_ms, settings, metrics, "rollback", response, cluster, path=editor.path)


PATCH_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "description": "`value` (the new text, or a list of texts for `fillers`) or `remove: true` (UTF-8 JSON; "
        "the Content-Type is not checked, as for PUT)",
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/PatchBody"}}},
    }
}


def _patch_body(data: bytes) -> PatchSet | PatchRemove:
    """The body of a PATCH, whatever its Content-Type (as for PUT): 422 with the reason, in :class:`Problem` form."""
    try:
        raw = orjson.loads(data)
    except orjson.JSONDecodeError as e:
        raise ApiError(Code.INVALID_JSON, f"the body is not valid JSON: {e}") from None
    if isinstance(raw, dict) and "value" not in raw and "remove" not in raw:
        raise ApiError(Code.PATCH_EMPTY, "give a value, or remove: true")
    try:
        return PATCH_ADAPTER.validate_python(raw)
    except ValidationError as e:
        # A union reports each alternative: keep the one the body meant (``remove`` given or not).
        meant = "PatchRemove" if isinstance(raw, dict) and "remove" in raw and "value" not in raw else "PatchSet"
        errors = [err for err in e.errors(include_url=False) if not err["loc"] or err["loc"][0] == meant] or e.errors()
        items = [ErrorItem(path=format_loc(tuple(err["loc"][1:])), message=err["msg"]) for err in errors]
        raise ApiError(Code.INVALID_REQUEST, "invalid patch: give a value, or remove: true", errors=items) from None


@router.patch(
    "/{key}",
    summary="Change or remove one prompt",
    openapi_extra=PATCH_BODY,
    responses={
        200: {"description": "Written", "headers": ETAG_HEADER},
        **responses(408, 409, 412, 413, 422, 500, 507),
    },
)
async def patch_prompt(
    key: str,
    request: Request,
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
    body = _patch_body(await request.body())
    remove = isinstance(body, PatchRemove)
    value = None if isinstance(body, PatchRemove) else body.value

    def write(condition: str | None) -> SaveResult:
        return editor.patch(key, value, remove=remove, if_match=condition, author=operator.name, message=body.message)

    with _save_errors(metrics):
        result = await run_in_threadpool(_conditional, editor, if_match, write)
    assert result is not None
    return await _finish(result, wait_ms, settings, metrics, "patch", response, cluster, path=editor.path)
