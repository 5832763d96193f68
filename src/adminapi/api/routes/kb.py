"""``/api/kb``: the knowledge-base files (upload, list, read, delete), stored atomically."""

from __future__ import annotations

import logging
from typing import Annotated
from urllib.parse import quote

from fastapi import APIRouter, File, Form, Path, Response, UploadFile
from starlette.concurrency import run_in_threadpool

from promptwatch import WriteError

from ...knowledge import (
    UPLOAD_NAME_PATTERN,
    KbContentError,
    KbError,
    KbNameError,
    KbTooLargeError,
    check_upload_name,
)
from ..deps import KbDep, OperatorDep
from ..problems import AUTH_RESPONSES, ApiError, Code, responses, write_error
from ..schemas import KbFileOut, KbList

__all__ = ["router"]

logger = logging.getLogger("adminapi.kb")

router = APIRouter(prefix="/api/kb", tags=["knowledge base"], responses=AUTH_RESPONSES)

# Documented, and checked by the store (400 ``kb_bad_name``), not by FastAPI: a file copied in by hand under
# another safe name can still be read and deleted.
KbName = Annotated[
    str,
    Path(
        description="A file name (the names the panel creates match the pattern; any safe name can be read)",
        json_schema_extra={"pattern": UPLOAD_NAME_PATTERN},
    ),
]


def _error(e: KbError) -> ApiError:
    if isinstance(e, KbNameError):
        return ApiError(Code.KB_BAD_NAME, str(e))
    if isinstance(e, KbTooLargeError):
        return ApiError(Code.TOO_LARGE, str(e))
    if isinstance(e, KbContentError):
        return ApiError(Code.KB_NOT_TEXT, str(e))
    return ApiError(Code.BAD_REQUEST, str(e))


@router.get("", summary="The knowledge-base files", response_model=KbList)
async def list_files(kb: KbDep, _operator: OperatorDep) -> KbList:
    files = await run_in_threadpool(kb.list)
    return KbList(files=[KbFileOut(**f.__dict__) for f in files], max_bytes=kb.max_bytes)


@router.post(
    "",
    summary="Upload a file (replaces one with the same name)",
    status_code=201,
    response_model=KbFileOut,
    responses={
        200: {"model": KbFileOut, "description": "Replaced an existing file"},
        **responses(400, 408, 413, 415, 422, 500, 507),
    },
)
async def upload(
    kb: KbDep,
    _operator: OperatorDep,
    response: Response,
    file: Annotated[UploadFile, File(description="UTF-8 Markdown, text or JSON")],
    name: Annotated[
        str | None,
        Form(
            description="Store under this name instead of the uploaded file name",
            json_schema_extra={"pattern": UPLOAD_NAME_PATTERN},
        ),
    ] = None,
) -> KbFileOut:
    target = name or file.filename or ""
    try:
        check_upload_name(target)
        data = await file.read(kb.max_bytes + 1)
        stored, created = await run_in_threadpool(kb.write, target, data)
    except KbError as e:
        raise _error(e) from None
    except (WriteError, OSError) as e:
        logger.error("knowledge base: upload of %r failed: %s", target, e)
        raise write_error(e) from None
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
async def read_file(name: KbName, kb: KbDep, _operator: OperatorDep) -> Response:
    try:
        found = await run_in_threadpool(kb.read, name)
    except KbError as e:
        raise _error(e) from None
    if found is None:
        raise ApiError(Code.KB_NOT_FOUND, f"{name}: no such file in the knowledge base")
    info, data = found
    return Response(
        data,
        media_type=f"{info.media_type}; charset=utf-8",
        headers={
            "ETag": f'"{info.sha256}"',
            "Content-Disposition": f"inline; filename*=UTF-8''{quote(info.name)}",
        },
    )


@router.delete("/{name}", summary="Delete a file", status_code=204, responses=responses(400, 404, 500))
async def delete_file(name: KbName, kb: KbDep, _operator: OperatorDep) -> Response:
    try:
        deleted = await run_in_threadpool(kb.delete, name)
    except KbError as e:
        raise _error(e) from None
    except (WriteError, OSError) as e:
        logger.error("knowledge base: deleting %r failed: %s", name, e)
        raise write_error(e) from None
    if not deleted:
        raise ApiError(Code.KB_NOT_FOUND, f"{name}: no such file in the knowledge base")
    return Response(status_code=204)
