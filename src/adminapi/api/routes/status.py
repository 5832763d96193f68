"""``/api/status``: the sha256 on disk, every live consumer (in sync or not), and who is missing."""

from __future__ import annotations

import socket
import time

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool

from promptwatch.status import software_version

from ...consumers import consumer_views, missing_services
from ...editor import PromptsEditor
from ...settings import AdminSettings
from ..deps import EditorDep, OperatorDep, SettingsDep
from ..problems import AUTH_RESPONSES, responses
from ..schemas import ConsumerOut, PanelOut, StatusOut

__all__ = ["build_status", "router"]

router = APIRouter(prefix="/api/status", tags=["status"], responses={**AUTH_RESPONSES, **responses(404, 422)})


def build_status(editor: PromptsEditor, settings: AdminSettings, started_at: float) -> StatusOut:
    """The whole status (reads the disk: call it off the event loop)."""
    state = editor.read()
    views = consumer_views(settings.prompts_status_dir, editor.path, state.sha256)  # ?label= selects the file
    in_sync = sum(v.in_sync for v in views)
    missing = missing_services(settings.expected_consumers, views)
    return StatusOut(
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


@router.get("", summary="Which process runs which prompts", response_model=StatusOut)
async def get_status(request: Request, editor: EditorDep, settings: SettingsDep, _operator: OperatorDep) -> StatusOut:
    started_at: float = getattr(request.app.state, "started_at", time.time())
    return await run_in_threadpool(build_status, editor, settings, started_at)
