"""Accounts in the admin: users and their API tokens (admins only), and the audit log (every manager)."""

from __future__ import annotations

from typing import Any, ClassVar

from sqladmin import expose
from sqladmin.flash import Flash
from sqlalchemy import Select, select
from sqlalchemy.orm import selectinload
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from wtforms.validators import Length, Optional, Regexp

from salesbot.accounts import service as accounts
from salesbot.accounts.service import EMAIL_REGEX
from salesbot.admin.auth import csrf_token, current_actor
from salesbot.admin.context import ReadOnlyModelView, SalesbotModelView, _pk, _when, checked_form
from salesbot.admin.filters import DistinctValuesFilter
from salesbot.audit import repository as audit
from salesbot.audit.actor import Actor
from salesbot.db import unit_of_work
from salesbot.kit.errors import NotFoundError
from salesbot.models import ApiToken, AuditEvent, User, UserRole


def _actor(request: Request) -> Actor | None:
    actor: Actor | None = getattr(request.state, "actor", None)
    return actor


class AdminOnlyView(SalesbotModelView):
    """Hidden from managers, and every route of it is a 403 for them."""

    def is_accessible(self, request: Request) -> bool:
        actor = _actor(request)
        return actor is not None and actor.is_admin


class UserAdmin(AdminOnlyView, model=User):
    name = "User"
    name_plural = "Users"
    icon = "fa-solid fa-user-gear"
    category = "Accounts"
    can_create = False  # `salesbot users add`: the password never goes through a web form
    can_delete = False  # disable instead: the audit log and assignments refer to the account
    can_export = False
    column_list: ClassVar[Any] = [User.username, User.name, User.email, User.role, User.active, User.created_at]
    column_details_list: ClassVar[Any] = [
        User.id,
        User.username,
        User.name,
        User.email,
        User.role,
        User.active,
        User.created_at,
        User.updated_at,
    ]
    column_formatters: ClassVar[Any] = {
        User.role: lambda m, a: m.role.value,
        User.created_at: lambda m, a: _when(m.created_at),
    }
    column_formatters_detail: ClassVar[Any] = column_formatters
    column_searchable_list: ClassVar[Any] = [User.username, User.name, User.email]
    column_default_sort: ClassVar[Any] = [("username", False)]
    form_columns: ClassVar[Any] = [User.name, User.email, User.role, User.active]
    form_args: ClassVar[Any] = {
        "name": {"validators": [Optional(), Length(max=200)]},
        "email": {"validators": [Optional(), Regexp(EMAIL_REGEX, message="not an e-mail address"), Length(max=320)]},
    }

    async def on_model_change(self, data: dict[str, Any], model: Any, is_created: bool, request: Request) -> None:
        # An admin who demoted or disabled themselves could lock every admin out; another admin (or the CLI) can.
        role = getattr(data.get("role"), "value", data.get("role"))
        if model.id == current_actor(request).user_id and (role != UserRole.ADMIN.value or not data.get("active")):
            raise ValueError("You cannot demote or disable your own account.")

    async def after_model_change(self, data: dict[str, Any], model: Any, is_created: bool, request: Request) -> None:
        async with unit_of_work(self.site.resources.sessionmaker) as session:
            await audit.record(
                session, current_actor(request), "edit_user", details={"user": model.username, "fields": sorted(data)}
            )


class ApiTokenAdmin(AdminOnlyView, model=ApiToken):
    name = "API token"
    name_plural = "API tokens"
    icon = "fa-solid fa-key"
    category = "Accounts"
    can_create = False  # `salesbot users token USERNAME` prints a new token once
    can_edit = False
    can_delete = False  # revoke instead: the row remembers when and that it existed
    can_export = False
    column_list: ClassVar[Any] = [
        ApiToken.id,
        "user.username",
        ApiToken.prefix,
        ApiToken.created_at,
        ApiToken.revoked_at,
    ]
    column_details_list: ClassVar[Any] = column_list
    column_labels: ClassVar[Any] = {"user.username": "User", ApiToken.prefix: "Starts with"}
    column_formatters: ClassVar[Any] = {
        "user.username": lambda m, a: m.user.username,
        ApiToken.prefix: lambda m, a: f"{m.prefix}…",
        ApiToken.created_at: lambda m, a: _when(m.created_at),
        ApiToken.revoked_at: lambda m, a: _when(m.revoked_at) or "—",
    }
    column_formatters_detail: ClassVar[Any] = column_formatters
    column_default_sort: ClassVar[Any] = [("id", True)]
    details_template = "salesbot/token_details.html"

    def list_query(self, request: Request) -> Select[Any]:
        return select(ApiToken).options(selectinload(ApiToken.user))

    def details_query(self, request: Request) -> Select[Any]:
        return self._stmt_by_identifier(request.path_params["pk"]).options(selectinload(ApiToken.user))

    async def details_context(self, request: Request) -> dict[str, Any]:
        return {"csrf_token": csrf_token(request)}

    @expose("/{pk}/revoke", methods=["POST"])
    async def revoke(self, request: Request) -> Response:
        form = await checked_form(request)
        if isinstance(form, Response):
            return form
        pk = _pk(request)
        if pk is None:
            raise HTTPException(status_code=404)
        try:
            async with unit_of_work(self.site.resources.sessionmaker) as session:
                await accounts.revoke_token(session, pk, actor=current_actor(request))
        except NotFoundError as exc:
            raise HTTPException(status_code=404, detail=exc.message) from exc
        Flash.success(request, "Token revoked: requests with it are refused from now on.")
        return RedirectResponse(request.url_for("admin:details", identity=self.identity, pk=str(pk)), status_code=303)


class AuditLogAdmin(ReadOnlyModelView, model=AuditEvent):
    name = "Audit log"
    name_plural = "Audit log"
    icon = "fa-solid fa-clipboard-list"
    column_list: ClassVar[Any] = [
        AuditEvent.at,
        AuditEvent.actor,
        AuditEvent.action,
        AuditEvent.conversation_id,
        AuditEvent.details,
    ]
    column_details_list: ClassVar[Any] = column_list
    column_labels: ClassVar[Any] = {AuditEvent.at: "When", AuditEvent.conversation_id: "Conversation"}
    column_formatters: ClassVar[Any] = {
        AuditEvent.at: lambda m, a: _when(m.at),
        AuditEvent.details: lambda m, a: ", ".join(f"{key}: {value}" for key, value in m.details.items()) or "—",
    }
    column_formatters_detail: ClassVar[Any] = column_formatters
    column_sortable_list: ClassVar[Any] = [AuditEvent.at, AuditEvent.actor, AuditEvent.action]
    column_default_sort: ClassVar[Any] = [("at", True), ("id", True)]
    column_filters: ClassVar[Any] = [
        DistinctValuesFilter(AuditEvent.actor, title="Who", parameter_name="actor", max_length=64),
        DistinctValuesFilter(AuditEvent.action, title="Action", parameter_name="action", max_length=40),
    ]


ACCOUNT_VIEWS = (AuditLogAdmin, UserAdmin, ApiTokenAdmin)
