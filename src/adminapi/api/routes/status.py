"""``/api/status``: the sha256 on disk and every live consumer, in sync or not."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from starlette.concurrency import run_in_threadpool

from ...consumers import ConsumerView, consumer_views, missing_services
from ..deps import ClusterDep, EditorDep, OperatorDep, SettingsDep
from ..problems import AUTH_RESPONSES
from ..schemas import AgentOut, ConsumerOut, HostOut, StatusOut

__all__ = ["router"]


def _host(view: dict[str, Any], target: str | None) -> HostOut:
    return HostOut(
        host=view["host"],
        connected=view["connected"],
        agent=AgentOut.model_validate(view["agent"]) if view["agent"] else None,
        consumers=[ConsumerOut.of(ConsumerView.from_record(c, target, None)) for c in view["consumers"]],
    )


router = APIRouter(prefix="/api/status", tags=["status"], responses=AUTH_RESPONSES)


@router.get("", summary="Which process runs which prompts (on every host, with Redis)", response_model=StatusOut)
async def get_status(
    editor: EditorDep, settings: SettingsDep, cluster: ClusterDep, _operator: OperatorDep
) -> StatusOut:
    state = await run_in_threadpool(editor.read)
    extra: dict[str, Any] = {"host": settings.prompts_host}
    if cluster is None:
        views = await run_in_threadpool(
            consumer_views, settings.prompts_status_dir, settings.prompts_file, state.sha256, host=settings.prompts_host
        )
    else:
        found = await cluster.state()
        views = [ConsumerView.from_record(c, state.sha256, None) for c in found.view["consumers"]]
        extra.update(
            distributing=found.view["distributing"],
            not_distributing_reason=found.view["not_distributing_reason"],
            hosts=[_host(h, state.sha256) for h in found.view["hosts"]],
            conflicts=found.conflicts,
        )
    in_sync = sum(v.in_sync for v in views)
    missing = missing_services(settings.expected_consumers, views)
    return StatusOut(
        **extra,
        path=str(editor.path),
        sha256=state.sha256,
        size=len(state.data) if state.data is not None else None,
        valid=state.prompts is not None,
        error=state.error,
        watching=editor.hot.mode if editor.hot is not None else "off",
        consumers=[ConsumerOut.of(v) for v in views],
        in_sync=in_sync,
        out_of_sync=len(views) - in_sync,
        missing=missing,
        all_in_sync=state.sha256 is not None and in_sync == len(views) and not missing,
    )
