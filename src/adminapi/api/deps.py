"""Dependencies of the routes, as ``Annotated`` aliases; all state is read from ``request.app.state``.

They are ``async def`` on purpose: FastAPI runs plain ``def`` dependencies in its thread pool, one thread
hop each, which costs more than the work they do.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from stasis.calllog import CallLog

from ..auth import Operator, TokenSet
from ..cluster import Cluster
from ..editor import PromptsEditor
from ..knowledge import KbStore
from ..metrics import AdminMetrics
from ..settings import AdminSettings
from .problems import ApiError

__all__ = [
    "CallLogDep",
    "ClusterDep",
    "EditorDep",
    "KbDep",
    "MetricsDep",
    "OperatorDep",
    "SettingsDep",
    "get_settings",
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
    tokens: Annotated[TokenSet, Depends(get_tokens)],
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> Operator:
    """The operator whose token the request carries: 401 without a bearer token, 403 with a wrong one."""
    if credentials is None or not credentials.credentials:
        raise ApiError(401, "a bearer token is required", headers={"WWW-Authenticate": "Bearer"})
    operator = tokens.check(credentials.credentials)
    if operator is None:
        raise ApiError(403, "wrong token")
    return operator


async def get_editor(request: Request) -> PromptsEditor:
    editor = getattr(request.app.state, "editor", None)
    if not isinstance(editor, PromptsEditor):
        raise ApiError(503, "the prompts editor is not available (the app is starting or stopping)")
    return editor


async def get_kb(request: Request) -> KbStore:
    kb: KbStore = request.app.state.kb
    return kb


async def get_calllog(request: Request) -> CallLog:
    calllog = getattr(request.app.state, "calllog", None)
    if not isinstance(calllog, CallLog):
        raise ApiError(503, "the call log is not available (the app is starting or stopping)")
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
CallLogDep = Annotated[CallLog, Depends(get_calllog)]
MetricsDep = Annotated[AdminMetrics, Depends(get_metrics)]
ClusterDep = Annotated[Cluster | None, Depends(get_cluster)]
