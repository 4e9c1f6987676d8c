"""HubSpot CRM v3 objects API with a private-app token (scopes crm.objects.contacts.write, crm.objects.deals.write).

Contacts: `PATCH /crm/v3/objects/contacts/{id}` when the id is known, else `POST /crm/v3/objects/contacts`; a
409 "Contact already exists. Existing ID: N" (same e-mail) makes that contact ours and it is updated. Deals:
`PATCH /crm/v3/objects/deals/{id}`, else `POST /crm/v3/objects/deals` with an association to the contact
(HUBSPOT_DEFINED type 3, deal to contact). A record deleted in HubSpot (404 on PATCH) is created again.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import httpx

from salesbot.crm.base import CrmContact, CrmDeal, CrmRejectedError, CrmUnavailableError
from salesbot.kit.logging import get_logger
from salesbot.models import SalesStage

log = get_logger(__name__)

DEAL_TO_CONTACT = 3
_EXISTING_ID = re.compile(r"Existing ID: (\d+)")
# Our sales stages on HubSpot's default sales pipeline (internal stage ids).
DEAL_STAGES: dict[SalesStage, str] = {
    SalesStage.GREETING: "appointmentscheduled",
    SalesStage.QUALIFYING: "appointmentscheduled",
    SalesStage.NEEDS_ANALYSIS: "qualifiedtobuy",
    SalesStage.SOLUTION: "presentationscheduled",
    SalesStage.COMPANY_DETAILS: "decisionmakerboughtin",
    SalesStage.QUOTING: "contractsent",
    SalesStage.CLOSING: "contractsent",
}
PAID_STAGE = "closedwon"


class _NotFound(Exception):
    pass


@dataclass
class HubSpotCrm:
    http: httpx.AsyncClient
    token: str
    api_url: str = "https://api.hubapi.com"
    pipeline: str = "default"
    name: str = "hubspot"

    async def _call(self, method: str, path: str, body: dict[str, Any]) -> dict[str, Any]:
        try:
            response = await self.http.request(
                method,
                f"{self.api_url.rstrip('/')}{path}",
                json=body,
                headers={"Authorization": f"Bearer {self.token}"},
            )
        except httpx.HTTPError as exc:
            raise CrmUnavailableError(f"HubSpot unreachable: {type(exc).__name__}") from exc
        payload = _json(response)
        if response.status_code in (200, 201):
            return payload
        message = f"HubSpot answered {response.status_code}: {payload.get('category')}: {payload.get('message')}"
        if response.status_code == 429 or response.status_code >= 500:
            raise CrmUnavailableError(message)
        if response.status_code == 404:
            raise _NotFound(message)
        if response.status_code == 409:
            existing = _EXISTING_ID.search(str(payload.get("message") or ""))
            if existing:
                return {"id": existing.group(1), "conflict": True}
        raise CrmRejectedError(message)

    async def upsert_contact(self, contact: CrmContact, external_id: str | None) -> str:
        first, last = contact.first_and_last_name
        properties = {
            "firstname": first,
            "lastname": last,
            "company": contact.company or "",
            "email": contact.email or "",
            "phone": contact.phone or "",
        }
        properties = {key: value for key, value in properties.items() if value}
        if external_id is not None:
            try:
                return _id(
                    await self._call("PATCH", f"/crm/v3/objects/contacts/{external_id}", {"properties": properties})
                )
            except _NotFound:
                log.info("crm.hubspot_contact_gone")
        created = await self._call("POST", "/crm/v3/objects/contacts", {"properties": properties})
        if created.get("conflict"):
            # Someone (a form, a manager) created this e-mail's contact before us: it is the customer's.
            return _id(
                await self._call("PATCH", f"/crm/v3/objects/contacts/{_id(created)}", {"properties": properties})
            )
        return _id(created)

    async def upsert_deal(self, deal: CrmDeal, external_id: str | None, contact_id: str) -> str:
        properties: dict[str, str] = {
            "dealname": deal.name,
            "dealstage": PAID_STAGE if deal.paid else DEAL_STAGES[deal.stage],
            "pipeline": self.pipeline,
            "description": deal.description,
        }
        if deal.amount is not None and deal.currency:
            properties["amount"] = str(deal.amount)
            properties["deal_currency_code"] = deal.currency
        if external_id is not None:
            try:
                return _id(
                    await self._call("PATCH", f"/crm/v3/objects/deals/{external_id}", {"properties": properties})
                )
            except _NotFound:
                log.info("crm.hubspot_deal_gone")
        association = {
            "to": {"id": contact_id},
            "types": [{"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": DEAL_TO_CONTACT}],
        }
        return _id(
            await self._call("POST", "/crm/v3/objects/deals", {"properties": properties, "associations": [association]})
        )


def _id(payload: dict[str, Any]) -> str:
    value = payload.get("id")
    if not isinstance(value, str | int) or not str(value):
        raise CrmRejectedError("HubSpot answered without an id")
    return str(value)


def _json(response: httpx.Response) -> dict[str, Any]:
    try:
        payload = response.json()
    except ValueError:
        if response.status_code == 429 or response.status_code >= 500:
            raise CrmUnavailableError(f"HubSpot answered {response.status_code}") from None
        raise CrmRejectedError(f"HubSpot answered {response.status_code} with a non-JSON body") from None
    if not isinstance(payload, dict):
        raise CrmRejectedError("HubSpot answered with an unexpected JSON document")
    return payload
