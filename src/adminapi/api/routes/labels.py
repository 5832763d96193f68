"""``/api/labels``: the labels on disk, a new label as a copy, two labels compared, promotion.

A label's document, history, diff and rollback are production's endpoints with ``?label=``
(``/api/prompts?label=staging``, ``/api/prompts/history?label=staging``…): the same ETags,
412/413/422 and per-consumer results (see :func:`adminapi.api.deps.get_editor`).

Promotion writes the source label's exact bytes over the target and needs the target's ETag in
``If-Match`` (required): a change of the target made meanwhile is a 412, never overwritten.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Header, Query, Response
from fastapi import Path as PathParam
from starlette.concurrency import run_in_threadpool

from promptwatch import LabelError
from promptwatch.labels import LABEL_PATTERN, document_name

from ...consumers import consumer_views
from ...editor import PromptsEditor, SaveResult
from ...history import key_changes, unified_diff
from ...label_editors import LabelEditors
from ..deps import ClusterDep, LabelEditorsDep, MetricsDep, OperatorDep, SettingsDep, label_editor
from ..label_schemas import LabelCreate, LabelList, LabelOut
from ..problems import AUTH_RESPONSES, ApiError, Code, responses
from ..schemas import ConsumerOut, DiffOut, KeyChangeOut, SaveOut
from . import prompts as single
from .prompts import ETAG_HEADER, WaitMs

__all__ = ["router"]

router = APIRouter(prefix="/api/labels", tags=["labels"], responses={**AUTH_RESPONSES, **responses(404, 422)})

Label = Annotated[
    str, PathParam(pattern=f"^{LABEL_PATTERN}$", description="A label name; `production` is PROMPTS_PATH")
]


@router.get("", summary="Every label, its version and the processes running it", response_model=LabelList)
async def list_labels(labels: LabelEditorsDep, settings: SettingsDep, _operator: OperatorDep) -> LabelList:
    def collect() -> LabelList:
        items: list[LabelOut] = []
        for state in labels.states():
            lf = state.file
            views = consumer_views(settings.prompts_status_dir, lf.path, lf.sha256)
            in_sync = sum(v.in_sync for v in views)
            items.append(
                LabelOut(
                    label=lf.label,
                    document=document_name(lf.label),
                    file=lf.path.name,
                    sha256=lf.sha256,
                    size=lf.size,
                    mtime=lf.mtime,
                    valid=state.error is None,
                    error=state.error,
                    consumers=[ConsumerOut.of(v) for v in views],
                    in_sync=in_sync,
                    out_of_sync=len(views) - in_sync,
                )
            )
        return LabelList(items=items)

    return await run_in_threadpool(collect)


async def _promote(
    dst: str,
    src: str,
    if_match: str | None,
    *,
    labels: LabelEditors,
    operator_name: str,
    origin: str,
    metrics: MetricsDep,
    create: bool,
    message: str | None = None,
) -> tuple[PromptsEditor, SaveResult]:
    """``src``'s bytes written as ``dst`` under ``if_match`` (an ETag of ``dst``; ``""``: must not exist)."""
    await label_editor(labels, src)  # 404 for a source label without a file
    editor = await label_editor(labels, dst, create=create)

    def write(condition: str | None) -> SaveResult:
        return editor.promote_from(src, if_match=condition, author=operator_name, origin=origin, message=message)

    result: SaveResult | None
    try:
        with single._save_errors(metrics):
            if create:
                result = await run_in_threadpool(write, "")
            else:
                result = await run_in_threadpool(single._conditional, editor, if_match, write)
    except ApiError as e:
        if create and e.problem.code is Code.STALE_ETAG:
            raise ApiError(Code.LABEL_EXISTS, f"label {dst!r} exists already") from None
        raise
    except LabelError as e:  # onto itself, or the source is no regular file
        raise ApiError(Code.LABEL_CONFLICT, str(e)) from None
    assert result is not None
    return editor, result


@router.post(
    "",
    summary="Create a label as a copy of another",
    status_code=201,
    responses={201: {"description": "Created", "headers": ETAG_HEADER}, **responses(400, 404, 409, 422)},
)
async def create_label(
    body: LabelCreate,
    response: Response,
    labels: LabelEditorsDep,
    operator: OperatorDep,
    settings: SettingsDep,
    metrics: MetricsDep,
    cluster: ClusterDep,
    wait_ms: WaitMs = 0,
) -> SaveOut:
    """Writes the source label's bytes as the new label; 409 when the label exists already."""
    editor, result = await _promote(
        body.label,
        body.from_label,
        "",  # the new label's file must not exist yet
        labels=labels,
        operator_name=operator.name,
        origin="copy",
        metrics=metrics,
        create=True,
        message=f"new label, a copy of {body.from_label}",
    )
    response.headers["Location"] = f"/api/prompts?label={body.label}"
    return await single._finish(result, wait_ms, settings, metrics, "copy", response, cluster, path=editor.path)


@router.get(
    "/compare",
    summary="Differences between two labels as they are now",
    response_model=DiffOut,
    responses=responses(404, 409, 422),
)
async def compare_labels(
    labels: LabelEditorsDep,
    _operator: OperatorDep,
    from_label: Annotated[str, Query(alias="from", pattern=f"^{LABEL_PATTERN}$", description="e.g. production")],
    to_label: Annotated[str, Query(alias="to", pattern=f"^{LABEL_PATTERN}$", description="e.g. staging")],
) -> DiffOut:
    """What promoting ``to`` onto ``from`` would change, prompt by prompt and as a unified diff."""
    old_editor = await label_editor(labels, from_label)
    new_editor = await label_editor(labels, to_label)
    old, new = await run_in_threadpool(old_editor.read), await run_in_threadpool(new_editor.read)
    for name, state in ((from_label, old), (to_label, new)):
        if state.data is None or state.sha256 is None:
            raise ApiError(Code.NO_LABEL, f"label {name!r} has no file")
        if state.prompts is None:
            raise ApiError(Code.PROMPTS_INVALID_ON_DISK, f"label {name!r} is not valid prompts on disk: {state.error}")
    assert old.data is not None and new.data is not None and old.sha256 is not None and new.sha256 is not None
    return DiffOut(
        from_sha256=old.sha256,
        to_sha256=new.sha256,
        changes=[KeyChangeOut(**c.__dict__) for c in key_changes(old.data, new.data)],
        unified=unified_diff(old.data, new.data, f"{from_label} {old.sha256[:12]}", f"{to_label} {new.sha256[:12]}"),
    )


@router.post(
    "/{label}/promote",
    summary="Write another label's exact bytes as this label",
    responses={
        200: {"description": "Promoted; per-consumer results", "headers": ETAG_HEADER},
        **responses(404, 409, 412, 422),
    },
)
async def promote_label(
    label: Label,
    response: Response,
    labels: LabelEditorsDep,
    operator: OperatorDep,
    settings: SettingsDep,
    metrics: MetricsDep,
    cluster: ClusterDep,
    from_label: Annotated[
        str, Query(alias="from", pattern=f"^{LABEL_PATTERN}$", description="The label to promote, e.g. staging")
    ],
    if_match: Annotated[str, Header(description="This (the target) label's ETag as reviewed; a change since is a 412")],
    wait_ms: WaitMs = 0,
) -> SaveOut:
    """Recorded in this label's history as a promotion from ``from`` at its sha256."""
    editor, result = await _promote(
        label, from_label, if_match, labels=labels, operator_name=operator.name, origin="promote", metrics=metrics,
        create=False,
    )  # fmt: skip
    return await single._finish(result, wait_ms, settings, metrics, "promote", response, cluster, path=editor.path)
