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

__all__ = ["AUTH_RESPONSES", "ApiError", "document_error", "install_handlers", "responses"]


class ApiError(Exception):
    """An HTTP error with a :class:`Problem` body."""

    def __init__(
        self,
        status: int,
        detail: str,
        *,
        errors: list[ErrorItem] | None = None,
        current_sha256: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.problem = Problem(detail=detail, errors=errors or [], current_sha256=current_sha256)
        self.headers = headers or {}


def document_error(e: DocumentError) -> ApiError:
    """422 with the path and message of each error, or 413 when too large."""
    if isinstance(e, DocumentTooLargeError):
        return ApiError(413, f"the document is {e.size} bytes, the limit is {e.limit}")
    if isinstance(e, DocumentSyntaxError):
        return ApiError(422, "not valid JSON", errors=[ErrorItem(path="$", message=e.msg, line=e.line, col=e.col)])
    if isinstance(e, DocumentSchemaError):
        items = [ErrorItem(path=f.loc, message=f.msg) for f in e.errors]
        return ApiError(422, f"{len(items)} invalid field(s)", errors=items)
    return ApiError(422, str(e))


def _json(status: int, problem: Problem, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(problem.model_dump(mode="json"), status_code=status, headers=headers)


async def _api_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ApiError)
    return _json(exc.status, exc.problem, exc.headers)


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    items = [ErrorItem(path=format_loc(tuple(err["loc"])), message=str(err["msg"])) for err in exc.errors()]
    return _json(422, Problem(detail="invalid request", errors=items))


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    return _json(exc.status_code, Problem(detail=str(exc.detail)), dict(exc.headers or {}))


async def _unsafe_file(request: Request, exc: Exception) -> JSONResponse:
    """A FIFO, directory, device or refused symlink where a file must be: nothing read or written (409)."""
    assert isinstance(exc, UnsafeFileError)
    return _json(409, Problem(detail=str(exc)))


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
        422: "Invalid: the JSON path and message of each error",
        503: "Not available yet",
    }
    return {code: {"model": Problem, "description": text[code]} for code in codes}


AUTH_RESPONSES = responses(401, 403)
