"""``/api/kb``: the knowledge-base files (upload, list, read, delete), stored atomically."""

from __future__ import annotations

from typing import Annotated
from urllib.parse import quote

from fastapi import APIRouter, File, Form, Response, UploadFile
from starlette.concurrency import run_in_threadpool

from ...knowledge import KbContentError, KbError, KbNameError, KbTooLargeError
from ..deps import KbDep, OperatorDep
from ..problems import AUTH_RESPONSES, ApiError, responses
from ..schemas import KbFileOut, KbList

__all__ = ["router"]

router = APIRouter(prefix="/api/kb", tags=["knowledge base"], responses=AUTH_RESPONSES)


def _error(e: KbError) -> ApiError:
    if isinstance(e, KbNameError):
        return ApiError(400, str(e), code="kb_bad_name")
    if isinstance(e, KbTooLargeError):
        return ApiError(413, str(e))
    if isinstance(e, KbContentError):
        return ApiError(415, str(e))
    return ApiError(400, str(e))


@router.get("", summary="The knowledge-base files", response_model=KbList)
async def list_files(kb: KbDep, _operator: OperatorDep) -> KbList:
    files = await run_in_threadpool(kb.list)
    return KbList(files=[KbFileOut(**f.__dict__) for f in files], max_bytes=kb.max_bytes)


@router.post(
    "",
    summary="Upload a file (replaces one with the same name)",
    status_code=201,
    response_model=KbFileOut,
    responses={200: {"model": KbFileOut, "description": "Replaced an existing file"}, **responses(400, 413, 415)},
)
async def upload(
    kb: KbDep,
    _operator: OperatorDep,
    response: Response,
    file: Annotated[UploadFile, File(description="UTF-8 Markdown, text or JSON")],
    name: Annotated[str | None, Form(description="Store under this name instead of the uploaded file name")] = None,
) -> KbFileOut:
    target = name or file.filename or ""
    try:
        await run_in_threadpool(lambda: kb.check_name(target))
        data = await file.read(kb.max_bytes + 1)
        stored, created = await run_in_threadpool(kb.write, target, data)
    except KbError as e:
        raise _error(e) from None
    finally:
        await file.close()
    response.status_code = 201 if created else 200
    return KbFileOut(**stored.__dict__)


@router.get(
    "/{name}",
    summary="The content of one file",
    response_class=Response,
    responses={
        200: {
            "description": "The file, as stored",
            "content": {
                "text/markdown": {"schema": {"type": "string"}},
                "text/plain": {"schema": {"type": "string"}},
                "application/json": {},
            },
        },
        **responses(400, 404),
    },
)
async def read_file(name: str, kb: KbDep, _operator: OperatorDep) -> Response:
    try:
        found = await run_in_threadpool(kb.read, name)
    except KbError as e:
        raise _error(e) from None
    if found is None:
        raise ApiError(404, f"{name}: no such file in the knowledge base", code="kb_not_found")
    info, data = found
    return Response(
        data,
        media_type=f"{info.media_type}; charset=utf-8",
        headers={
            "ETag": f'"{info.sha256}"',
            "Content-Disposition": f"inline; filename*=UTF-8''{quote(info.name)}",
        },
    )


@router.delete("/{name}", summary="Delete a file", status_code=204, responses=responses(400, 404))
async def delete_file(name: str, kb: KbDep, _operator: OperatorDep) -> Response:
    try:
        deleted = await run_in_threadpool(kb.delete, name)
    except KbError as e:
        raise _error(e) from None
    if not deleted:
        raise ApiError(404, f"{name}: no such file in the knowledge base", code="kb_not_found")
    return Response(status_code=204)
