"""Zoho CRM (REST API v5) with an OAuth refresh token: a self-client registered in the Zoho API console with scope
`ZohoCRM.modules.contacts.ALL,ZohoCRM.modules.deals.ALL` and a refresh token issued to it.

The access token (valid an hour) comes from `POST {accounts}/oauth/v2/token` (grant_type=refresh_token) and is
cached in Redis until shortly before it expires, so every worker shares one token instead of each refreshing
(Zoho limits how often a refresh token may be used). An API answer 401 drops it and refreshes once.

Contacts: `PUT /crm/v5/Contacts` with the id when known, else `POST /crm/v5/Contacts/upsert` with Email as the
duplicate check (an existing contact with that e-mail is updated, not duplicated). Deals: `PUT /crm/v5/Deals`
with the id, else `POST /crm/v5/Deals` with `Contact_Name` pointing at the contact. Each answer carries one
result per record (`{"data": [{"code": "SUCCESS", "details": {"id": ...}, "status": "success"}]}`); an error
record (`"status": "error"`, `code`, `message`, `details.api_name`) is a refusal. Zoho has regional data
centres: set both `ZOHO_ACCOUNTS_URL` and `ZOHO_API_DOMAIN` for the same region.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx
from redis.asyncio import Redis
from redis.exceptions import RedisError

from salesbot.crm.base import CrmContact, CrmDeal, CrmRejectedError, CrmUnavailableError
from salesbot.kit.hashing import short_hash
from salesbot.kit.logging import get_logger
from salesbot.kit.zoho_oauth import ZohoTokenRefusedError, ZohoTokenUnavailableError, exchange_refresh_token
from salesbot.models import SalesStage

log = get_logger(__name__)

TOKEN_MARGIN_SECONDS = 120
# Zoho's default Deals stage picklist.
DEAL_STAGES: dict[SalesStage, str] = {
    SalesStage.GREETING: "Qualification",
    SalesStage.QUALIFYING: "Qualification",
    SalesStage.NEEDS_ANALYSIS: "Needs Analysis",
    SalesStage.SOLUTION: "Value Proposition",
    SalesStage.COMPANY_DETAILS: "Identify Decision Makers",
    SalesStage.QUOTING: "Proposal/Price Quote",
    SalesStage.CLOSING: "Negotiation/Review",
}
PAID_STAGE = "Closed Won"


@dataclass
class ZohoCrm:
    http: httpx.AsyncClient
    redis: Redis
    client_id: str
    client_secret: str
    refresh_token: str
    accounts_url: str = "https://accounts.zoho.com"
    api_domain: str = "https://www.zohoapis.com"
    name: str = "zoho"

    @property
    def _token_key(self) -> str:
        # Per client and refresh token, hashed: a rotated token never reuses the old one's access token.
        return f"sb:crm:zoho:token:{short_hash(self.client_id + ':' + self.refresh_token)}"

    async def _refresh(self) -> str:
        try:
            issued = await exchange_refresh_token(
                self.http,
                accounts_url=self.accounts_url,
                client_id=self.client_id,
                client_secret=self.client_secret,
                refresh_token=self.refresh_token,
            )
        except ZohoTokenUnavailableError as exc:
            raise CrmUnavailableError(str(exc)) from exc
        except ZohoTokenRefusedError as exc:
            raise CrmRejectedError(str(exc)) from exc
        token, lifetime = issued.access_token, issued.lifetime_seconds
        try:
            await self.redis.set(self._token_key, token, ex=max(lifetime - TOKEN_MARGIN_SECONDS, 60))
        except RedisError:
            log.warning("crm.zoho_token_not_cached")
        log.info("crm.zoho_token_refreshed")
        return token

    async def _token(self) -> str:
        try:
            cached = await self.redis.get(self._token_key)
        except RedisError:
            cached = None
        if isinstance(cached, bytes) and cached:
            return cached.decode()
        return await self._refresh()

    async def _call(self, method: str, path: str, body: dict[str, Any]) -> dict[str, Any]:
        """One record written; returns its result's `details`."""
        for attempt in (1, 2):
            token = await self._token()
            try:
                response = await self.http.request(
                    method,
                    f"{self.api_domain.rstrip('/')}/crm/v5{path}",
                    json=body,
                    headers={"Authorization": f"Zoho-oauthtoken {token}"},
                )
            except httpx.HTTPError as exc:
                raise CrmUnavailableError(f"Zoho CRM unreachable: {type(exc).__name__}") from exc
            if response.status_code == 401 and attempt == 1:
                # Expired early or revoked: a fresh token, once.
                try:
                    await self.redis.delete(self._token_key)
                except RedisError:
                    log.warning("crm.zoho_token_not_dropped")
                continue
            if response.status_code == 429 or response.status_code >= 500:
                raise CrmUnavailableError(f"Zoho CRM answered {response.status_code}")
            return _record_result(response)
        raise CrmRejectedError("Zoho CRM rejected a freshly refreshed access token")

    async def upsert_contact(self, contact: CrmContact, external_id: str | None) -> str:
        first, last = contact.first_and_last_name
        record: dict[str, Any] = {"Last_Name": last}
        if first:
            record["First_Name"] = first
        if contact.email:
            record["Email"] = contact.email
        if contact.phone:
            record["Mobile"] = contact.phone
        if contact.company:
            # Account_Name is a lookup to the Accounts module; the company travels as text.
            record["Description"] = f"Company: {contact.company}"
        if external_id is not None:
            return await self._write("PUT", "/Contacts", {**record, "id": external_id})
        body: dict[str, Any] = {"data": [record]}
        if contact.email:
            body["duplicate_check_fields"] = ["Email"]
        return _id(await self._call("POST", "/Contacts/upsert", body))

    async def upsert_deal(self, deal: CrmDeal, external_id: str | None, contact_id: str) -> str:
        record: dict[str, Any] = {
            "Deal_Name": deal.name,
            "Stage": PAID_STAGE if deal.paid else DEAL_STAGES[deal.stage],
            "Contact_Name": {"id": contact_id},
            "Description": deal.description,
        }
        if deal.amount is not None:
            record["Amount"] = float(deal.amount)
        if external_id is not None:
            return await self._write("PUT", "/Deals", {**record, "id": external_id})
        return _id(await self._call("POST", "/Deals", {"data": [record]}))

    async def _write(self, method: str, path: str, record: dict[str, Any]) -> str:
        return _id(await self._call(method, path, {"data": [record]}))


def _record_result(response: httpx.Response) -> dict[str, Any]:
    payload = _json(response)
    data = payload.get("data")
    result = data[0] if isinstance(data, list) and data and isinstance(data[0], dict) else payload
    if result.get("status") == "success" and response.status_code in (200, 201, 202):
        details = result.get("details")
        return details if isinstance(details, dict) else {}
    details = result.get("details")
    field = details.get("api_name") if isinstance(details, dict) else None
    message = f"Zoho CRM answered {response.status_code}: {result.get('code')}: {result.get('message')}"
    raise CrmRejectedError(message + (f" ({field})" if field else ""))


def _id(details: dict[str, Any]) -> str:
    value = details.get("id")
    if not isinstance(value, str | int) or not str(value):
        raise CrmRejectedError("Zoho CRM answered without a record id")
    return str(value)


def _json(response: httpx.Response) -> dict[str, Any]:
    try:
        payload = response.json()
    except ValueError:
        raise CrmRejectedError(f"Zoho answered HTTP {response.status_code} with a non-JSON body") from None
    if not isinstance(payload, dict):
        raise CrmRejectedError("Zoho answered with an unexpected JSON document")
    return payload
