"""Dependencies of the routes, as ``Annotated`` aliases; all state is read from ``request.app.state``.

They are ``async def`` on purpose: FastAPI runs plain ``def`` dependencies in its thread pool, one thread
hop each, which costs more than the work they do.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Query, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.concurrency import run_in_threadpool

from promptwatch import LabelError
from promptwatch.labels import LABEL_PATTERN, PRODUCTION
from stasis.calllog import CallLog

from ..auth import Operator, TokenSet, parse_bearer
from ..cluster import Cluster
from ..editor import PromptsEditor
from ..knowledge import KbStore
from ..label_editors import LabelEditors, NoSuchLabel
from ..metrics import AdminMetrics
from ..settings import AdminSettings
from .problems import ApiError, Code

__all__ = [
    "CallLogDep",
    "ClusterDep",
    "EditorDep",
    "KbDep",
    "LabelEditorsDep",
    "MetricsDep",
    "OperatorDep",
    "SettingsDep",
    "get_settings",
    "label_editor",
    "require_operator",
]

bearer = HTTPBearer(auto_error=False, description="The admin token (ADMIN_TOKEN, or the generated one)")


async def get_settings(request: Request) -> AdminSettings:
    settings: AdminSettings = request.app.state.settings
    return settings


async def get_tokens(request: Request) -> TokenSet:
    tokens: TokenSet = request.app.state.tokens
    return tokens


async def require_operator(
    request: Request,
    tokens: Annotated[TokenSet, Depends(get_tokens)],
    _credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> Operator:
    """The operator whose token the request carries: 401 without a bearer token, 403 with a wrong one.

    Requests with a body met the same check in :class:`~adminapi.api.guard.RequestGuard` before their
    body was read; the header is parsed by the same :func:`~adminapi.auth.parse_bearer` in both places.
    """
    token = parse_bearer(request.headers.get("authorization"))
    if token is None:
        raise ApiError(Code.TOKEN_REQUIRED, "a bearer token is required", headers={"WWW-Authenticate": "Bearer"})
    operator = tokens.check(token)
    if operator is None:
        raise ApiError(Code.WRONG_TOKEN, "wrong token")
    return operator


async def get_label_editors(request: Request) -> LabelEditors:
    labels = getattr(request.app.state, "labels", None)
    if not isinstance(labels, LabelEditors):
        raise ApiError(Code.NOT_READY, "the label editors are not available (the app is starting or stopping)")
    return labels


async def get_editor(
    request: Request,
    label: Annotated[
        str | None,
        Query(
            pattern=f"^{LABEL_PATTERN}$",
            description="The prompts label (`staging`: prompts.staging.json); default production (PROMPTS_PATH)",
        ),
    ] = None,
) -> PromptsEditor:
    """Production's editor, or with ``?label=`` that label's (its first use opens its history and starts
    its watcher, in a worker thread).  A whole-document save creates a label that has no file yet."""
    editor = getattr(request.app.state, "editor", None)
    if not isinstance(editor, PromptsEditor):
        raise ApiError(Code.NOT_READY, "the prompts editor is not available (the app is starting or stopping)")
    if label is None or label == PRODUCTION:
        return editor
    labels = await get_label_editors(request)
    create = request.method == "PUT" or (request.method == "POST" and request.url.path.rstrip("/") == "/api/prompts")
    return await label_editor(labels, label, create=create)


async def label_editor(labels: LabelEditors, label: str, *, create: bool = False) -> PromptsEditor:
    """The label's editor (its first use opens its history and starts its watcher, in a worker thread);
    404 ``no_label`` without a file (unless ``create``), 422 ``invalid_label`` for a bad name."""
    try:
        return await run_in_threadpool(labels.get, label, create=create)
    except NoSuchLabel as e:
        raise ApiError(Code.NO_LABEL, str(e)) from None
    except LabelError as e:
        raise ApiError(Code.INVALID_LABEL, str(e)) from None


async def get_kb(request: Request) -> KbStore:
    kb: KbStore = request.app.state.kb
    return kb


async def get_calllog(request: Request) -> CallLog:
    calllog = getattr(request.app.state, "calllog", None)
    if not isinstance(calllog, CallLog):
        raise ApiError(Code.NOT_READY, "the call log is not available (the app is starting or stopping)")
    return calllog


async def get_metrics(request: Request) -> AdminMetrics:
    metrics: AdminMetrics = request.app.state.metrics
    return metrics


async def get_cluster(request: Request) -> Cluster | None:
    """The other hosts through Redis, or None without ``PROMPTS_REDIS_URL``."""
    cluster: Cluster | None = getattr(request.app.state, "cluster", None)
    return cluster


SettingsDep = Annotated[AdminSettings, Depends(get_settings)]
OperatorDep = Annotated[Operator, Depends(require_operator)]
EditorDep = Annotated[PromptsEditor, Depends(get_editor)]
KbDep = Annotated[KbStore, Depends(get_kb)]
LabelEditorsDep = Annotated[LabelEditors, Depends(get_label_editors)]
CallLogDep = Annotated[CallLog, Depends(get_calllog)]
MetricsDep = Annotated[AdminMetrics, Depends(get_metrics)]
ClusterDep = Annotated[Cluster | None, Depends(get_cluster)]
