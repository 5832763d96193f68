"""``/metrics``: Prometheus text format, behind the same token as ``/api``."""

from __future__ import annotations

from fastapi import APIRouter, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.concurrency import run_in_threadpool

from ..deps import MetricsDep, OperatorDep
from ..problems import AUTH_RESPONSES

__all__ = ["router"]

router = APIRouter(tags=["metrics"], responses=AUTH_RESPONSES)


@router.get(
    "/metrics",
    summary="Prometheus metrics",
    response_class=Response,
    responses={
        200: {"description": "Prometheus text format", "content": {CONTENT_TYPE_LATEST: {"schema": {"type": "string"}}}}
    },
)
async def metrics(metrics: MetricsDep, _operator: OperatorDep) -> Response:
    body = await run_in_threadpool(generate_latest, metrics.registry)
    return Response(body, media_type=CONTENT_TYPE_LATEST)
