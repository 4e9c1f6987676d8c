"""Zoho's OAuth refresh-token exchange, shared by the inventory source and the CRM client (each caches the token
its own way and maps the two failures onto its own errors)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx

DEFAULT_LIFETIME_SECONDS = 3600


class ZohoTokenUnavailableError(Exception):
    """Zoho's accounts server could not answer now (network, 429, 5xx): try again later."""


class ZohoTokenRefusedError(Exception):
    """Zoho refused the client or the refresh token: retrying will not help."""


@dataclass(frozen=True)
class ZohoToken:
    access_token: str
    lifetime_seconds: int


async def exchange_refresh_token(
    http: httpx.AsyncClient, *, accounts_url: str, client_id: str, client_secret: str, refresh_token: str
) -> ZohoToken:
    try:
        response = await http.post(
            f"{accounts_url.rstrip('/')}/oauth/v2/token",
            data={
                "grant_type": "refresh_token",
                "client_id": client_id,
                "client_secret": client_secret,
                "refresh_token": refresh_token,
            },
        )
    except httpx.HTTPError as exc:
        raise ZohoTokenUnavailableError(f"Zoho accounts unreachable: {type(exc).__name__}") from exc
    if response.status_code == 429 or response.status_code >= 500:
        raise ZohoTokenUnavailableError(f"Zoho accounts answered {response.status_code}")
    try:
        payload: Any = response.json()
    except ValueError:
        raise ZohoTokenRefusedError(f"Zoho answered HTTP {response.status_code} with a non-JSON body") from None
    if not isinstance(payload, dict):
        raise ZohoTokenRefusedError("Zoho answered with an unexpected JSON document")
    token = payload.get("access_token")
    # Zoho reports a bad refresh token or client as HTTP 200 with {"error": "invalid_code"}.
    if response.status_code != 200 or not isinstance(token, str) or not token:
        error = payload.get("error") or f"HTTP {response.status_code}"
        raise ZohoTokenRefusedError(f"Zoho refused the refresh token: {error}")
    expires_in = payload.get("expires_in")
    lifetime = int(expires_in) if isinstance(expires_in, int | float) and expires_in > 0 else DEFAULT_LIFETIME_SECONDS
    return ZohoToken(token, lifetime)
