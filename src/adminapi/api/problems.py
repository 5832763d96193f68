"""Error responses: one :class:`ApiError` raised by the routes, one JSON shape (:class:`Problem`) for all."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from promptwatch import (
    DocumentError,
    DocumentSchemaError,
    DocumentSyntaxError,
    DocumentTooLargeError,
    UnsafeFileError,
)
from promptwatch.schema import format_loc

from .schemas import ErrorItem, Problem

__all__ = ["AUTH_RESPONSES", "CODES", "ApiError", "default_code", "document_error", "install_handlers", "responses"]

CODES: dict[int, str] = {
    400: "bad_request",
    401: "token_required",
    403: "token_wrong",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    412: "stale_etag",
    413: "too_large",
    415: "unsupported_content",
    422: "invalid_request",
    429: "too_many_requests",
    500: "internal",
    503: "unavailable",
}
"""The stable machine-readable ``code`` of each status when no more precise one is given.  More precise
codes used by the routes: ``invalid_json``, ``invalid_document``, ``prompts_invalid_on_disk``,
``patch_not_possible``, ``write_failed``, ``ticket_invalid``, ``kb_bad_name``."""


def default_code(status: int) -> str:
    return CODES.get(status, "client_error" if status < 500 else "internal")


class ApiError(Exception):
    """An HTTP error with a :class:`Problem` body."""

    def __init__(
        self,
        status: int,
        detail: str,
        *,
        code: str | None = None,
        errors: list[ErrorItem] | None = None,
        current_sha256: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.problem = Problem(
            code=code or default_code(status), detail=detail, errors=errors or [], current_sha256=current_sha256
        )
        self.headers = headers or {}


def document_error(e: DocumentError) -> ApiError:
    """422 with the path and message of each error, or 413 when too large."""
    if isinstance(e, DocumentTooLargeError):
        return ApiError(413, f"the document is {e.size} bytes, the limit is {e.limit}")
    if isinstance(e, DocumentSyntaxError):
        item = ErrorItem(path="$", message=e.msg, kind="json_syntax", line=e.line, col=e.col)
        return ApiError(422, "not valid JSON", code="invalid_json", errors=[item])
    if isinstance(e, DocumentSchemaError):
        items = [ErrorItem(path=f.loc, message=f.msg, kind=f.kind) for f in e.errors]
        return ApiError(422, f"{len(items)} invalid field(s)", code="invalid_document", errors=items)
    return ApiError(422, str(e), code="invalid_document")


def _json(status: int, problem: Problem, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(problem.model_dump(mode="json"), status_code=status, headers=headers)


async def _api_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ApiError)
    return _json(exc.status, exc.problem, exc.headers)


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    items = [
        ErrorItem(path=format_loc(tuple(err["loc"])), message=str(err["msg"]), kind=str(err["type"]))
        for err in exc.errors()
    ]
    return _json(422, Problem(code="invalid_request", detail="invalid request", errors=items))


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    problem = Problem(code=default_code(exc.status_code), detail=str(exc.detail))
    return _json(exc.status_code, problem, dict(exc.headers or {}))


async def _unsafe_file(request: Request, exc: Exception) -> JSONResponse:
    """A FIFO, directory, device or refused symlink where a file must be: nothing read or written (409)."""
    assert isinstance(exc, UnsafeFileError)
    return _json(409, Problem(code="unsafe_file", detail=str(exc)))


def install_handlers(app: FastAPI) -> None:
    app.add_exception_handler(ApiError, _api_error)
    app.add_exception_handler(UnsafeFileError, _unsafe_file)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)


def responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI entries for error statuses, all with the :class:`Problem` body."""
    text = {
        400: "Bad request (an unsafe file name, or a body that cannot be read)",
        401: "No bearer token",
        403: "Wrong token",
        404: "Not found",
        409: "The request cannot be applied to the current state",
        412: "The prompts changed since the ETag given in If-Match (body and ETag header: the current sha256)",
        413: "Body over the size limit",
        415: "Not UTF-8 text of an accepted kind",
        429: "Too many requests outstanding",
        422: "Invalid: the JSON path and message of each error",
        503: "Not available yet",
    }
    return {code: {"model": Problem, "description": text[code]} for code in codes}


AUTH_RESPONSES = responses(401, 403)
