"""`GET /metrics` for Prometheus, behind a bearer token (`API_TOKEN`, or the scrape-only `METRICS_TOKEN`)."""

from __future__ import annotations

import hmac
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Response, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from prometheus_client import CONTENT_TYPE_LATEST

from salesbot.dependencies import ResourcesDep, SettingsDep
from salesbot.observability import collector

router = APIRouter(tags=["operations"])

scrape_bearer = HTTPBearer(
    auto_error=False, scheme_name="MetricsToken", description="The METRICS_TOKEN (or API_TOKEN) setting."
)


async def require_scrape_token(
    settings: SettingsDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(scrape_bearer)],
) -> None:
    """`Authorization: Bearer <METRICS_TOKEN or API_TOKEN>`, compared in constant time; anything else is a 401."""
    supplied = credentials.credentials.encode("utf-8", "surrogateescape") if credentials is not None else b""
    accepted = [settings.auth.api_token.get_secret_value(), settings.auth.metrics_token.get_secret_value()]
    # Every configured token is compared (no short-circuit), so the time taken reveals nothing.
    matches = [hmac.compare_digest(supplied, token.encode("utf-8")) for token in accepted if token]
    if credentials is None or not any(matches):
        raise HTTPException(
            status_code=status.HTTP_401_UNAUTHORIZED,
            detail="missing or invalid metrics token" if credentials is not None else "missing metrics token",
            headers={"WWW-Authenticate": 'Bearer realm="salesbot"'},
        )


@router.get(
    "/metrics",
    summary="Prometheus metrics of the whole deployment (every API process and worker)",
    response_class=Response,
    dependencies=[Depends(require_scrape_token)],
    responses={200: {"content": {CONTENT_TYPE_LATEST: {}}}, 401: {"description": "missing or invalid token"}},
)
async def metrics(resources: ResourcesDep) -> Response:
    return Response(collector.render(await collector.gather(resources)), media_type=CONTENT_TYPE_LATEST)
