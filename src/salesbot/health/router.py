from __future__ import annotations

from dataclasses import asdict
from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from salesbot.dependencies import ResourcesDep
from salesbot.health.service import check_readiness

router = APIRouter(tags=["health"])


@router.get("/healthz", summary="The process is alive")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get(
    "/readyz",
    summary="Database, pgvector, Redis and a worker are available",
    responses={503: {"description": "At least one check failed"}},
)
async def readyz(resources: ResourcesDep) -> JSONResponse:
    results = await check_readiness(resources)
    ready = all(result.ok for result in results.values())
    body: dict[str, Any] = {
        "status": "ready" if ready else "not_ready",
        "checks": {name: asdict(result) for name, result in results.items()},
    }
    return JSONResponse(body, status_code=200 if ready else 503)
