"""Dependencies of the REST API: the Bearer token check (who acts) and the query parameters of list and export."""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated

from fastapi import Depends, HTTPException, Query, status
from fastapi.exceptions import RequestValidationError
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from salesbot.accounts.service import USERNAME_REGEX, user_of_token
from salesbot.api.schemas import LANGUAGE_PATTERN, PHONE_PATTERN, IsoDateTime
from salesbot.audit.actor import SYSTEM_API, Actor
from salesbot.dependencies import SessionDep, SettingsDep
from salesbot.kit.phones import digits_only
from salesbot.models import ConversationStatus, Owner, SalesStage
from salesbot.reporting.repository import ConversationFilters

bearer_scheme = HTTPBearer(
    auto_error=False,
    scheme_name="ApiToken",
    description="The API_TOKEN setting, or a user's token from `salesbot users token USERNAME`.",
)


async def require_api_token(
    settings: SettingsDep,
    session: SessionDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer_scheme)],
) -> Actor:
    """Who is calling: `Authorization: Bearer <API_TOKEN>` (the system actor "api", compared in constant time) or
    an active user's unrevoked token (that user); anything else is a 401."""
    expected = settings.auth.api_token.get_secret_value().encode("utf-8")
    supplied = credentials.credentials.encode("utf-8", "surrogateescape") if credentials is not None else b""
    # compare_digest on both branches: the time taken does not reveal whether a token was sent at all.
    if hmac.compare_digest(supplied, expected) and credentials is not None:
        return SYSTEM_API
    user = await user_of_token(session, credentials.credentials) if credentials is not None else None
    if user is not None:
        return Actor.of(user)
    raise HTTPException(
        status_code=status.HTTP_401_UNAUTHORIZED,
        detail="missing or invalid API token" if credentials is not None else "missing API token",
        headers={"WWW-Authenticate": 'Bearer realm="salesbot"'},
    )


def _utc(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value


def conversation_filters(
    status_: Annotated[ConversationStatus | None, Query(alias="status", description="active or closed")] = None,
    stage: Annotated[SalesStage | None, Query(description="current sales stage")] = None,
    owner: Annotated[Owner | None, Query(description="bot or human")] = None,
    language: Annotated[
        str | None, Query(max_length=8, pattern=LANGUAGE_PATTERN, description="conversation language, e.g. en")
    ] = None,
    phone: Annotated[
        str | None,
        Query(max_length=40, pattern=PHONE_PATTERN, description="substring of the customer's phone number"),
    ] = None,
    updated_since: Annotated[
        IsoDateTime | None, Query(description="updated at or after (ISO 8601; no offset = UTC)")
    ] = None,
    updated_until: Annotated[
        IsoDateTime | None, Query(description="updated at or before (ISO 8601; no offset = UTC)")
    ] = None,
    assignee: Annotated[
        str | None,
        Query(pattern=USERNAME_REGEX, description="the assigned manager's username; `none`: unassigned only"),
    ] = None,
) -> ConversationFilters:
    # An inverted range (since > until) is valid input that matches nothing, like any other empty window.
    since, until = _utc(updated_since), _utc(updated_until)
    phone_digits = digits_only(phone) if phone is not None else None
    if phone is not None and not phone_digits:
        raise RequestValidationError(
            [{"type": "value_error", "loc": ("query", "phone"), "msg": "phone must contain digits", "input": phone}]
        )
    return ConversationFilters(
        status=status_,
        stage=stage,
        owner=owner,
        language=language,
        phone_digits=phone_digits,
        updated_since=since,
        updated_until=until,
        assignee=assignee,
    )


@dataclass(frozen=True)
class PageParams:
    page: int
    page_size: int

    @property
    def offset(self) -> int:
        return (self.page - 1) * self.page_size


def page_params(
    page: Annotated[int, Query(ge=1, le=1_000_000, description="1-based page number")] = 1,
    page_size: Annotated[int, Query(ge=1, le=200, description="items per page")] = 50,
) -> PageParams:
    return PageParams(page=page, page_size=page_size)


ActorDep = Annotated[Actor, Depends(require_api_token)]
ConversationFiltersDep = Annotated[ConversationFilters, Depends(conversation_filters)]
PageDep = Annotated[PageParams, Depends(page_params)]
