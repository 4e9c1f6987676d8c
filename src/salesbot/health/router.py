from __future__ import annotations

import asyncio
from dataclasses import asdict
from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from salesbot.dependencies import ResourcesDep
from salesbot.health.configuration import advisory_items
from salesbot.health.service import check_readiness

router = APIRouter(tags=["health"])


@router.get("/healthz", summary="The process is alive")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get(
    "/readyz",
    summary="Database, pgvector, Redis, a worker and the playbook are available; LLM and providers are reported",
    responses={503: {"description": "At least one check failed"}},
)
async def readyz(resources: ResourcesDep) -> JSONResponse:
    results, advisory = await asyncio.gather(check_readiness(resources), advisory_items(resources))
    ready = all(result.ok for result in results.values())
    body: dict[str, Any] = {
        "status": "ready" if ready else "not_ready",
        "checks": {name: asdict(result) for name, result in results.items()},
        # Reported, never gating: without an LLM the offline responder answers, and a provider that refuses our
        # calls must not stop the webhooks that bring customer messages in.
        "advisory": {item.name: {"ok": item.ok, "detail": item.detail} for item in advisory},
    }
    return JSONResponse(body, status_code=200 if ready else 503)
