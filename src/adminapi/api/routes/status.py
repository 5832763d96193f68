"""``/api/status``: the sha256 on disk, every live consumer (in sync or not), and who is missing."""

from __future__ import annotations

import socket
import time
from typing import Any

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool

from promptwatch.status import software_version

from ...cluster import ClusterState
from ...consumers import ConsumerView, consumer_views, missing_services
from ...editor import PromptsEditor
from ...settings import AdminSettings
from ..deps import ClusterDep, EditorDep, OperatorDep, SettingsDep
from ..problems import AUTH_RESPONSES, responses
from ..schemas import AgentOut, ConsumerOut, HostOut, PanelOut, StatusOut

__all__ = ["build_status", "router"]

router = APIRouter(prefix="/api/status", tags=["status"], responses={**AUTH_RESPONSES, **responses(404, 422)})


def _host(view: dict[str, Any], target: str | None) -> HostOut:
    return HostOut(
        host=view["host"],
        connected=view["connected"],
        agent=AgentOut.model_validate(view["agent"]) if view["agent"] else None,
        consumers=[ConsumerOut.of(ConsumerView.from_record(c, target, None)) for c in view["consumers"]],
    )


def build_status(
    editor: PromptsEditor, settings: AdminSettings, started_at: float, cluster: ClusterState | None = None
) -> StatusOut:
    """The whole status (reads the disk: call it off the event loop).  With ``cluster`` (Redis), the
    consumers of every host, grouped by host too, and whether this host distributes its saves."""
    state = editor.read()
    extra: dict[str, Any] = {"host": settings.prompts_host}
    if cluster is None:
        views = consumer_views(
            settings.prompts_status_dir,
            editor.path,
            state.sha256,
            host=settings.prompts_host,  # ?label=: its file
        )
    else:
        views = [ConsumerView.from_record(c, state.sha256, None) for c in cluster.view["consumers"]]
        extra.update(
            distributing=cluster.view["distributing"],
            not_distributing_reason=cluster.view["not_distributing_reason"],
            hosts=[_host(h, state.sha256) for h in cluster.view["hosts"]],
            conflicts=cluster.conflicts,
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
        panel=PanelOut(
            hostname=socket.gethostname(), version=software_version(), started_at=started_at, now=time.time()
        ),
    )


@router.get("", summary="Which process runs which prompts (on every host, with Redis)", response_model=StatusOut)
async def get_status(
    request: Request, editor: EditorDep, settings: SettingsDep, cluster: ClusterDep, _operator: OperatorDep
) -> StatusOut:
    started_at: float = getattr(request.app.state, "started_at", time.time())
    found = await cluster.state(editor.path) if cluster is not None else None
    return await run_in_threadpool(build_status, editor, settings, started_at, found)
