"""Error responses: one :class:`ApiError` raised by the routes, one JSON shape (:class:`Problem`) for all.

Every error answer carries a stable machine-readable ``code`` (the web UI translates it) next to the
English ``detail``.  All codes are the members of :class:`Code`, each with the one HTTP status it is
answered with; the OpenAPI schema lists them as the enum of ``Problem.code``.
"""

from __future__ import annotations

import errno
from enum import StrEnum
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import compile_path

from promptwatch import (
    DocumentError,
    DocumentSchemaError,
    DocumentSyntaxError,
    DocumentTooLargeError,
    UnsafeFileError,
)
from promptwatch.schema import format_loc

__all__ = [
    "AUTH_RESPONSES",
    "STATUS",
    "ApiError",
    "Code",
    "ErrorItem",
    "Problem",
    "document_error",
    "install_handlers",
    "problem_body",
    "responses",
    "write_error",
]


class Code(StrEnum):
    """Every ``code`` an error answer can carry.  Stable: clients (the web UI) key their messages on them."""

    BAD_REQUEST = "bad_request"
    """A body that cannot be read as what the operation takes."""
    KB_BAD_NAME = "kb_bad_name"
    """An unsafe or not accepted knowledge-base file name."""
    TOKEN_REQUIRED = "token_required"
    WRONG_TOKEN = "wrong_token"
    NOT_FOUND = "not_found"
    """No such path."""
    NO_PROMPTS_FILE = "no_prompts_file"
    NO_REVISION = "no_revision"
    NO_VALID_PROMPTS = "no_valid_prompts"
    """A diff against the disk while the file on disk is missing or invalid."""
    KB_NOT_FOUND = "kb_not_found"
    NO_CALL = "no_call"
    METHOD_NOT_ALLOWED = "method_not_allowed"
    BODY_TIMEOUT = "body_timeout"
    UNSAFE_FILE = "unsafe_file"
    """A FIFO, directory, device or refused symlink where a file must be: nothing read or written."""
    PROMPTS_UNREADABLE = "prompts_unreadable"
    """The prompts path is not a regular file that can be read (a FIFO, a directory, a device, no permission)."""
    PROMPTS_INVALID_ON_DISK = "prompts_invalid_on_disk"
    """The file on disk is invalid and no valid revision is known."""
    NOT_PATCHABLE = "not_patchable"
    """No file, or not a JSON object on disk: save the whole document instead."""
    PATCH_BUSY = "patch_busy"
    """The file kept changing while a patch was applied."""
    STALE_ETAG = "stale_etag"
    IF_MATCH_EMPTY = "if_match_empty"
    IF_MATCH_NO_FILE = "if_match_no_file"
    TOO_LARGE = "too_large"
    KB_NOT_TEXT = "kb_not_text"
    INVALID_JSON = "invalid_json"
    INVALID_DOCUMENT = "invalid_document"
    INVALID_REQUEST = "invalid_request"
    """Parameters or body fields that do not match the operation's schema."""
    PATCH_EMPTY = "patch_empty"
    """A patch with neither ``value`` nor ``remove: true``."""
    WRITE_FAILED = "write_failed"
    INTERNAL = "internal"
    NOT_READY = "not_ready"
    NO_SPACE = "no_space"
    TICKET_INVALID = "ticket_invalid"
    """An event-stream ticket that is unknown, used or expired: ask ``POST /api/events/ticket`` for a new one."""
    TOO_MANY_TICKETS = "too_many_tickets"
    TOO_MANY_STREAMS = "too_many_streams"
    """The panel's limit of open event streams is reached."""


class ErrorItem(BaseModel):
    """One reason a request was refused: the JSON path (``fillers[2]``, ``$`` for the document) and why."""

    path: str
    message: str
    kind: str = Field(
        default="invalid", description="A stable name of the rule broken (missing, blank, json_syntax, …)"
    )
    line: int | None = None
    col: int | None = None


class Problem(BaseModel):
    """Every error response: a stable code, a sentence, the individual errors, and the current ETag on a conflict."""

    code: Code = Field(description="Stable and machine-readable; `detail` is the English sentence")
    detail: str
    errors: list[ErrorItem] = Field(default_factory=list)
    current_sha256: str | None = None


STATUS: dict[Code, int] = {
    Code.BAD_REQUEST: 400,
    Code.KB_BAD_NAME: 400,
    Code.TOKEN_REQUIRED: 401,
    Code.WRONG_TOKEN: 403,
    Code.NOT_FOUND: 404,
    Code.NO_PROMPTS_FILE: 404,
    Code.NO_REVISION: 404,
    Code.NO_VALID_PROMPTS: 404,
    Code.KB_NOT_FOUND: 404,
    Code.NO_CALL: 404,
    Code.METHOD_NOT_ALLOWED: 405,
    Code.BODY_TIMEOUT: 408,
    Code.UNSAFE_FILE: 409,
    Code.PROMPTS_UNREADABLE: 409,
    Code.PROMPTS_INVALID_ON_DISK: 409,
    Code.NOT_PATCHABLE: 409,
    Code.PATCH_BUSY: 409,
    Code.STALE_ETAG: 412,
    Code.IF_MATCH_EMPTY: 412,
    Code.IF_MATCH_NO_FILE: 412,
    Code.TOO_LARGE: 413,
    Code.KB_NOT_TEXT: 415,
    Code.INVALID_JSON: 422,
    Code.INVALID_DOCUMENT: 422,
    Code.INVALID_REQUEST: 422,
    Code.PATCH_EMPTY: 422,
    Code.WRITE_FAILED: 500,
    Code.INTERNAL: 500,
    Code.NOT_READY: 503,
    Code.NO_SPACE: 507,
    Code.TICKET_INVALID: 401,
    Code.TOO_MANY_TICKETS: 429,
    Code.TOO_MANY_STREAMS: 503,
}
"""The HTTP status of each code (one status per code)."""


class ApiError(Exception):
    """An HTTP error with a :class:`Problem` body; the status follows from the code."""

    def __init__(
        self,
        code: Code,
        detail: str,
        *,
        errors: list[ErrorItem] | None = None,
        current_sha256: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(detail)
        self.status = STATUS[code]
        self.problem = Problem(code=code, detail=detail, errors=errors or [], current_sha256=current_sha256)
        self.headers = headers or {}


def problem_body(code: Code, detail: str) -> bytes:
    """The JSON bytes of a :class:`Problem` (for answers sent below the app, by the request guard)."""
    return Problem(code=code, detail=detail).model_dump_json().encode()


def document_error(e: DocumentError) -> ApiError:
    """422 with the path and message of each error, or 413 when too large."""
    if isinstance(e, DocumentTooLargeError):
        return ApiError(Code.TOO_LARGE, f"the document is {e.size} bytes, the limit is {e.limit}")
    if isinstance(e, DocumentSyntaxError):
        item = ErrorItem(path="$", message=e.msg, kind="json_syntax", line=e.line, col=e.col)
        return ApiError(Code.INVALID_JSON, "not valid JSON", errors=[item])
    if isinstance(e, DocumentSchemaError):
        items = [ErrorItem(path=f.loc, message=f.msg, kind=f.kind) for f in e.errors]
        return ApiError(Code.INVALID_DOCUMENT, f"{len(items)} invalid field(s)", errors=items)
    return ApiError(Code.INVALID_DOCUMENT, str(e))


def write_error(e: BaseException) -> ApiError:
    """A write that failed (nothing changed): 507 when the disk or quota is full, else 500; the message
    names the file and the reason.  Looks through ``WriteError``'s cause for the ``errno``."""
    cause: BaseException | None = e
    while cause is not None and not isinstance(cause, OSError):
        cause = cause.__cause__
    full = isinstance(cause, OSError) and cause.errno in (errno.ENOSPC, errno.EDQUOT)
    if isinstance(e, OSError):
        detail = f"{e.filename}: {e.strerror}" if e.filename and e.strerror else str(e)
    else:
        detail = str(e)
    return ApiError(Code.NO_SPACE if full else Code.WRITE_FAILED, detail)


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
    return _json(422, Problem(code=Code.INVALID_REQUEST, detail="invalid request", errors=items))


_HTTP_CODES = {404: Code.NOT_FOUND, 405: Code.METHOD_NOT_ALLOWED, 400: Code.BAD_REQUEST}


def _allowed_methods(request: Request) -> str:
    """Every method the API documents for this path (Starlette names only those of the first route)."""
    methods: set[str] = set()
    path = request.scope["path"]
    for template, operations in request.app.openapi().get("paths", {}).items():
        if compile_path(template)[0].match(path):
            methods |= {m.upper() for m in operations}
    return ", ".join(sorted(methods))


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    """Starlette's own errors (unknown path, method not allowed, a body FastAPI cannot parse)."""
    assert isinstance(exc, StarletteHTTPException)
    code = _HTTP_CODES.get(exc.status_code, Code.BAD_REQUEST)
    status = STATUS[code] if exc.status_code not in _HTTP_CODES else exc.status_code
    headers = dict(exc.headers or {})
    if status == 405:
        headers["Allow"] = _allowed_methods(request) or headers.get("Allow", "")
    return _json(status, Problem(code=code, detail=str(exc.detail)), headers)


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    """A bug: still the JSON body (the traceback goes to the log, not to the operator)."""
    return _json(500, Problem(code=Code.INTERNAL, detail=f"internal error ({type(exc).__name__}); see the panel's log"))


async def _unsafe_file(request: Request, exc: Exception) -> JSONResponse:
    """A FIFO, directory, device or refused symlink where a file must be: nothing read or written (409)."""
    assert isinstance(exc, UnsafeFileError)
    return _json(STATUS[Code.UNSAFE_FILE], Problem(code=Code.UNSAFE_FILE, detail=str(exc)))


def install_handlers(app: FastAPI) -> None:
    app.add_exception_handler(Exception, _unexpected)  # Starlette logs it (with the traceback) after answering
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
        408: "The request body did not arrive in time",
        409: "The request cannot be applied to the current state",
        412: "The prompts changed since the ETag given in If-Match (body and ETag header: the current sha256)",
        413: "Body over the size limit",
        415: "Not UTF-8 text of an accepted kind",
        422: "Invalid: the JSON path and message of each error",
        429: "Too many requests outstanding",
        500: "The file could not be written (the message names it and why)",
        503: "Not available yet",
        507: "The disk is full: nothing was changed",
    }
    return {code: {"model": Problem, "description": text[code]} for code in codes}


AUTH_RESPONSES = responses(401, 403)
