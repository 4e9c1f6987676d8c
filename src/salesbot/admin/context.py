"""What every admin view shares: the site it is bound to (as a protocol: views never import the site), the
hardened model view, form and formatting helpers. The site imports the views; nothing here imports the site."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, ClassVar, Protocol

from sqladmin import ModelView
from sqladmin.templating import Jinja2Templates
from sqlalchemy import Select, false, select
from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response

from salesbot.admin.auth import CSRF_FIELD, csrf_valid
from salesbot.resources import Resources
from salesbot.settings import Settings


class AdminSite(Protocol):
    """The parts of the admin site a view uses."""

    salesbot_settings: Settings
    templates: Jinja2Templates

    @property
    def resources(self) -> Resources: ...


def _money(value: Decimal | None, places: int = 2) -> str:
    return "" if value is None else f"{value:,.{places}f}"


def _when(value: datetime | None) -> str:
    return "" if value is None else value.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def _parse_id(raw: object) -> int | None:
    if isinstance(raw, str) and raw.isdigit() and raw.isascii():
        value = int(raw)
        return value if 0 < value < 2**63 else None
    return None


def _pk(request: Request) -> int | None:
    return _parse_id(request.path_params.get("pk", ""))


def _search_term(term: str) -> str:
    """At most 100 characters, without control characters (PostgreSQL refuses NUL in a query parameter)."""
    return "".join(ch for ch in term[:100] if ch.isprintable() or ch == " ")


async def checked_form(request: Request) -> FormData | Response:
    """The posted form, or the 403 to answer when it lacks the session's CSRF token."""
    form = await request.form()
    if not csrf_valid(request, form.get(CSRF_FIELD)):
        return PlainTextResponse("invalid or missing CSRF token; reload the page", status_code=403)
    return form


class SiteView:
    """Access to the admin site (resources, settings) from a view; every view class is bound to one site."""

    _admin_ref: ClassVar[Any]

    @property
    def site(self) -> AdminSite:
        site: AdminSite = self._admin_ref
        return site


class SalesbotModelView(SiteView, ModelView):
    """SQLAdmin's model view, hardened: a malformed id is a 404 and search text never reaches SQL unsanitised."""

    def _stmt_by_identifier(self, identifier: str) -> Select[Any]:
        pk = _parse_id(identifier)
        # Every salesbot table has one BIGINT primary key: anything else matches no row (404), not a DB error.
        return select(self.model).where(self.pk_columns[0] == pk if pk is not None else false())

    def search_query(self, stmt: Select[Any], term: str) -> Select[Any]:
        return super().search_query(stmt, _search_term(term))


class ReadOnlyModelView(SalesbotModelView):
    """A list of what the bot, jobs and managers' actions wrote (messages, alerts, payments, the audit log):
    managers read it here; nothing is created, edited or deleted through the form."""

    can_create = False
    can_edit = False
    can_delete = False
    can_export = False
    page_size = 50
