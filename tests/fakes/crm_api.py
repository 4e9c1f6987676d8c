"""Recording fakes of HubSpot's CRM v3 objects API and of Zoho CRM (accounts token endpoint + REST v5), served as
local HTTP servers, answering in the documented shapes.

HubSpot: `POST /crm/v3/objects/{contacts|deals}` -> 201 `{"id", "properties", "createdAt", "updatedAt",
"archived"}`; a second contact with an existing e-mail -> 409 `{"status": "error", "message": "Contact already
exists. Existing ID: N", "correlationId", "category": "CONFLICT"}`; `PATCH .../{id}` -> 200, or 404 `{"status":
"error", "message": "resource not found", "category": "OBJECT_NOT_FOUND"}`; unknown deal stages and
associations to unknown contacts -> 400 `VALIDATION_ERROR`; no or wrong bearer token -> 401.

Zoho: `POST /oauth/v2/token` (refresh_token grant) -> `{"access_token", "api_domain", "token_type",
"expires_in"}`, or HTTP 200 `{"error": "invalid_code"}` for a wrong client or refresh token; the API wants
`Authorization: Zoho-oauthtoken <token>` of an unexpired token (else 401 `INVALID_TOKEN`); `POST
/crm/v5/Contacts/upsert` (duplicate check on Email), `POST /crm/v5/Deals`, `PUT /crm/v5/{module}` answer one
result per record: `{"code": "SUCCESS", "duplicate_field", "action", "details": {"Modified_Time",
"Modified_By", "Created_Time", "id", "Created_By"}, "message", "status": "success"}`, or an error record
(`MANDATORY_NOT_FOUND`, `INVALID_DATA` with `details.api_name`).
"""

from __future__ import annotations

import contextlib
import json
import secrets
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl

from starlette.types import Receive, Scope, Send

from tests.fakes.server import local_server

HUBSPOT_STAGES = frozenset(
    {
        "appointmentscheduled",
        "qualifiedtobuy",
        "presentationscheduled",
        "decisionmakerboughtin",
        "contractsent",
        "closedwon",
        "closedlost",
    }
)
ZOHO_STAGES = frozenset(
    {
        "Qualification",
        "Needs Analysis",
        "Value Proposition",
        "Identify Decision Makers",
        "Proposal/Price Quote",
        "Negotiation/Review",
        "Closed Won",
        "Closed Lost",
    }
)

Answer = tuple[int, dict[str, Any]]


@dataclass(frozen=True)
class CrmRequest:
    method: str
    path: str
    headers: dict[str, str]
    body: Any


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class _Asgi:
    """Reads the request, records it, answers JSON."""

    requests: list[CrmRequest]
    fail_next: deque[Answer]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        assert scope["type"] == "http"
        raw = b""
        while True:
            message = await receive()
            raw += message.get("body", b"")
            if not message.get("more_body"):
                break
        headers = {k.decode().lower(): v.decode() for k, v in scope["headers"]}
        if headers.get("content-type", "").startswith("application/x-www-form-urlencoded"):
            body: Any = dict(parse_qsl(raw.decode(), keep_blank_values=True))
        else:
            body = json.loads(raw) if raw else None
        request = CrmRequest(scope["method"], scope["path"], headers, body)
        self.requests.append(request)
        forced = self.fail_next and self.can_fail(request)
        status, answer = self.fail_next.popleft() if forced else self.handle(request)
        await send(
            {"type": "http.response.start", "status": status, "headers": [(b"content-type", b"application/json")]}
        )
        await send({"type": "http.response.body", "body": json.dumps(answer).encode()})

    def handle(self, request: CrmRequest) -> Answer:
        raise NotImplementedError

    def can_fail(self, request: CrmRequest) -> bool:
        """Whether `fail_next` answers this request."""
        return True


def _hubspot_error(status: int, category: str, message: str) -> Answer:
    return status, {
        "status": "error",
        "message": message,
        "correlationId": secrets.token_hex(16),
        "category": category,
    }


@dataclass
class FakeHubSpot(_Asgi):
    token: str = "pat-na1-suite-0f4c2b7e-1d2a-4b8c-9e3f-5a6b7c8d9e0f"
    requests: list[CrmRequest] = field(default_factory=list)
    fail_next: deque[Answer] = field(default_factory=deque)
    contacts: dict[str, dict[str, str]] = field(default_factory=dict)
    deals: dict[str, dict[str, str]] = field(default_factory=dict)
    # deal id -> contact ids
    associations: dict[str, list[str]] = field(default_factory=dict)
    url: str = ""
    _next_id: int = 51

    def handle(self, request: CrmRequest) -> Answer:
        if request.headers.get("authorization") != f"Bearer {self.token}":
            return _hubspot_error(
                401, "INVALID_AUTHENTICATION", "Authentication credentials not found. This API supports OAuth 2.0."
            )
        parts = request.path.strip("/").split("/")
        if parts[:3] != ["crm", "v3", "objects"] or len(parts) not in (4, 5) or parts[3] not in ("contacts", "deals"):
            return _hubspot_error(404, "OBJECT_NOT_FOUND", "resource not found")
        store = self.contacts if parts[3] == "contacts" else self.deals
        body = request.body if isinstance(request.body, dict) else {}
        properties = body.get("properties")
        if not isinstance(properties, dict) or not all(isinstance(v, str) for v in properties.values()):
            return _hubspot_error(400, "VALIDATION_ERROR", "Invalid input JSON on line 1")
        if parts[3] == "deals" and "dealstage" in properties and properties["dealstage"] not in HUBSPOT_STAGES:
            return _hubspot_error(
                400,
                "VALIDATION_ERROR",
                f'Property values were not valid: [{{"isValid":false,"message":"{properties["dealstage"]} was not '
                'one of the allowed options","error":"INVALID_OPTION","name":"dealstage"}]',
            )
        if len(parts) == 5:
            if request.method != "PATCH" or parts[4] not in store:
                return _hubspot_error(404, "OBJECT_NOT_FOUND", "resource not found")
            store[parts[4]].update(properties)
            return 200, self._object(parts[4], store[parts[4]])
        if request.method != "POST":
            return _hubspot_error(405, "VALIDATION_ERROR", "Method not allowed")
        if parts[3] == "contacts":
            email = properties.get("email")
            existing = next((cid for cid, c in self.contacts.items() if email and c.get("email") == email), None)
            if existing is not None:
                return _hubspot_error(409, "CONFLICT", f"Contact already exists. Existing ID: {existing}")
        linked: list[str] = []
        for association in body.get("associations") or []:
            target = str(association.get("to", {}).get("id"))
            types = association.get("types") or []
            if target not in self.contacts or not any(
                t.get("associationCategory") == "HUBSPOT_DEFINED" and t.get("associationTypeId") == 3 for t in types
            ):
                return _hubspot_error(400, "VALIDATION_ERROR", f"Invalid association to {target}")
            linked.append(target)
        object_id = str(self._next_id)
        self._next_id += 1
        store[object_id] = dict(properties)
        if parts[3] == "deals":
            self.associations[object_id] = linked
        return 201, self._object(object_id, store[object_id])

    @staticmethod
    def _object(object_id: str, properties: dict[str, str]) -> dict[str, Any]:
        now = _now()
        return {
            "id": object_id,
            "properties": {**properties, "createdate": now, "hs_object_id": object_id, "lastmodifieddate": now},
            "createdAt": now,
            "updatedAt": now,
            "archived": False,
        }


def _zoho_error(code: str, message: str, api_name: str | None = None) -> dict[str, Any]:
    return {"code": code, "details": {"api_name": api_name} if api_name else {}, "message": message, "status": "error"}


@dataclass
class FakeZoho(_Asgi):
    client_id: str = "1000.SUITE0CLIENT0ID0TESTS"
    client_secret: str = "suite0client0secret0f00d"
    refresh_token: str = "1000.suite0refresh.token0"
    requests: list[CrmRequest] = field(default_factory=list)
    fail_next: deque[Answer] = field(default_factory=deque)
    contacts: dict[str, dict[str, Any]] = field(default_factory=dict)
    deals: dict[str, dict[str, Any]] = field(default_factory=dict)
    tokens: set[str] = field(default_factory=set)
    refreshes: int = 0
    url: str = ""

    def expire_tokens(self) -> None:
        self.tokens.clear()

    def can_fail(self, request: CrmRequest) -> bool:
        # `fail_next` is for the CRM API; the accounts server has its own answers (`invalid_code`).
        return request.path != "/oauth/v2/token"

    def handle(self, request: CrmRequest) -> Answer:
        if request.path == "/oauth/v2/token":
            return self._token(request)
        auth = request.headers.get("authorization", "")
        if not auth.startswith("Zoho-oauthtoken ") or auth.removeprefix("Zoho-oauthtoken ") not in self.tokens:
            return 401, _zoho_error("INVALID_TOKEN", "invalid oauth token")
        body = request.body if isinstance(request.body, dict) else {}
        records = body.get("data")
        if not isinstance(records, list) or len(records) != 1 or not isinstance(records[0], dict):
            return 400, _zoho_error("INVALID_DATA", "invalid data")
        record = records[0]
        path = request.path
        if request.method == "POST" and path == "/crm/v5/Contacts/upsert":
            return self._upsert_contact(record, body.get("duplicate_check_fields") or [])
        if request.method == "POST" and path == "/crm/v5/Deals":
            return self._insert_deal(record)
        if request.method == "PUT" and path in ("/crm/v5/Contacts", "/crm/v5/Deals"):
            store = self.contacts if path.endswith("Contacts") else self.deals
            record_id = str(record.get("id"))
            if record_id not in store:
                return 400, {"data": [_zoho_error("INVALID_DATA", "the id given seems to be invalid", "id")]}
            problem = self._deal_problem(record) if store is self.deals else None
            if problem is not None:
                return 400, {"data": [problem]}
            store[record_id].update({k: v for k, v in record.items() if k != "id"})
            return 200, {"data": [self._success(record_id, "update", "record updated")]}
        return 404, _zoho_error("INVALID_URL_PATTERN", "Please check if the URL trying to access is a correct one")

    def _token(self, request: CrmRequest) -> Answer:
        form = request.body if isinstance(request.body, dict) else {}
        if (
            form.get("grant_type") != "refresh_token"
            or form.get("client_id") != self.client_id
            or form.get("client_secret") != self.client_secret
            or form.get("refresh_token") != self.refresh_token
        ):
            return 200, {"error": "invalid_code"}
        self.refreshes += 1
        token = "1000." + secrets.token_hex(16) + "." + secrets.token_hex(16)
        self.tokens.add(token)
        return 200, {"access_token": token, "api_domain": self.url, "token_type": "Bearer", "expires_in": 3600}

    def _upsert_contact(self, record: dict[str, Any], duplicate_check: list[str]) -> Answer:
        if not record.get("Last_Name"):
            return 400, {"data": [_zoho_error("MANDATORY_NOT_FOUND", "required field not found", "Last_Name")]}
        if "Email" in duplicate_check and record.get("Email"):
            for contact_id, contact in self.contacts.items():
                if contact.get("Email") == record["Email"]:
                    contact.update(record)
                    return 200, {"data": [self._success(contact_id, "update", "record updated", "Email")]}
        contact_id = self._new_id()
        self.contacts[contact_id] = dict(record)
        return 201, {"data": [self._success(contact_id, "insert", "record added")]}

    def _insert_deal(self, record: dict[str, Any]) -> Answer:
        for mandatory in ("Deal_Name", "Stage"):
            if not record.get(mandatory):
                return 400, {"data": [_zoho_error("MANDATORY_NOT_FOUND", "required field not found", mandatory)]}
        problem = self._deal_problem(record)
        if problem is not None:
            return 400, {"data": [problem]}
        deal_id = self._new_id()
        self.deals[deal_id] = dict(record)
        return 201, {"data": [self._success(deal_id, "insert", "record added")]}

    def _deal_problem(self, record: dict[str, Any]) -> dict[str, Any] | None:
        if "Stage" in record and record["Stage"] not in ZOHO_STAGES:
            return _zoho_error("INVALID_DATA", "invalid data", "Stage")
        contact = record.get("Contact_Name")
        if contact is not None and (not isinstance(contact, dict) or str(contact.get("id")) not in self.contacts):
            return _zoho_error("INVALID_DATA", "invalid data", "Contact_Name")
        if "Amount" in record and not isinstance(record["Amount"], int | float):
            return _zoho_error("INVALID_DATA", "invalid data", "Amount")
        return None

    @staticmethod
    def _new_id() -> str:
        return "554023000000" + str(secrets.randbelow(10**7)).zfill(7)

    @staticmethod
    def _success(record_id: str, action: str, message: str, duplicate_field: str | None = None) -> dict[str, Any]:
        now = datetime.now(UTC).isoformat(timespec="seconds")
        user = {"name": "Patricia Boyle", "id": "554023000000235011"}
        return {
            "code": "SUCCESS",
            "duplicate_field": duplicate_field,
            "action": action,
            "details": {
                "Modified_Time": now,
                "Modified_By": user,
                "Created_Time": now,
                "id": record_id,
                "Created_By": user,
            },
            "message": message,
            "status": "success",
        }


@contextlib.asynccontextmanager
async def serve_crm(fake: FakeHubSpot | FakeZoho) -> AsyncIterator[Any]:
    async with local_server(fake) as port:
        fake.url = f"http://127.0.0.1:{port}"
        yield fake
