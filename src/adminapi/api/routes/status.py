"""``/api/status``: the sha256 on disk and every live consumer, in sync or not."""

from __future__ import annotations

from fastapi import APIRouter

from ...consumers import consumer_views, missing_services
from ..deps import EditorDep, OperatorDep, SettingsDep
from ..problems import AUTH_RESPONSES
from ..schemas import ConsumerOut, StatusOut

__all__ = ["router"]

router = APIRouter(prefix="/api/status", tags=["status"], responses=AUTH_RESPONSES)


@router.get("", summary="Which process runs which prompts", response_model=StatusOut)
async def get_status(editor: EditorDep, settings: SettingsDep, _operator: OperatorDep) -> StatusOut:
    state = editor.read()
    views = consumer_views(settings.prompts_status_dir, settings.prompts_file, state.sha256)
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
    )
