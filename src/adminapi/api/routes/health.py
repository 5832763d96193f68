"""``/healthz``: open, for load balancers and ``systemctl`` checks."""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel

__all__ = ["router"]

router = APIRouter(tags=["health"])


class Health(BaseModel):
    status: str


@router.get("/healthz", summary="Liveness (no token needed)", response_model=Health)
async def healthz() -> Health:
    return Health(status="ok")
