"""List filters for SQLAdmin that validate their input: an unknown value is a 400, never a database error."""

from __future__ import annotations

from collections.abc import Callable
from enum import StrEnum
from typing import Any

from sqladmin.filters import StaticValuesFilter
from sqlalchemy import Select, select
from starlette.exceptions import HTTPException
from starlette.requests import Request

from salesbot.accounts.service import USERNAME_PATTERN
from salesbot.models import User
from salesbot.reporting.repository import UNASSIGNED, ConversationFilters, apply_conversation_filters

ALL = "__all"


class EnumFilter(StaticValuesFilter):
    """One link per enum value; `?param=<value>` filters, anything else but "all" is refused."""

    def __init__(self, column: Any, enum: type[StrEnum], *, title: str, parameter_name: str) -> None:
        super().__init__(
            column,
            values=[(member.value, member.value.replace("_", " ")) for member in enum],
            title=title,
            parameter_name=parameter_name,
        )
        self._allowed = {member.value for member in enum}

    async def get_filtered_query(self, query: Select[Any], value: Any, model: Any) -> Select[Any]:
        if value in (None, "", ALL):
            return query
        if value not in self._allowed:
            raise HTTPException(status_code=400, detail=f"unknown {self.parameter_name} {value!r}")
        return await super().get_filtered_query(query, value, model)


class DistinctValuesFilter:
    """One link per distinct non-empty value of a text column (conversation languages, product categories)."""

    has_operator = False
    template = "sqladmin/filters/lookup_filter.html"

    def __init__(self, column: Any, *, title: str, parameter_name: str, max_length: int) -> None:
        self.column = column
        self.title = title
        self.parameter_name = parameter_name
        self.max_length = max_length

    async def lookups(
        self, request: Request, model: Any, run_query: Callable[[Select[Any]], Any]
    ) -> list[tuple[str, str]]:
        rows = await run_query(
            select(self.column).where(self.column.is_not(None), self.column != "").distinct().order_by(self.column)
        )
        return [(ALL, "All")] + [(row[0], row[0]) for row in rows]

    async def get_filtered_query(self, query: Select[Any], value: Any, model: Any) -> Select[Any]:
        if value in (None, "", ALL):
            return query
        if not isinstance(value, str) or len(value) > self.max_length or "\x00" in value:
            raise HTTPException(status_code=400, detail=f"invalid {self.parameter_name}")
        return query.where(self.column == value)


class AssigneeFilter:
    """Conversations by assigned manager: one link per user, and one for nobody (the same rule as the API's)."""

    has_operator = False
    template = "sqladmin/filters/lookup_filter.html"
    title = "Assignee"
    parameter_name = "assignee"

    async def lookups(
        self, request: Request, model: Any, run_query: Callable[[Select[Any]], Any]
    ) -> list[tuple[str, str]]:
        rows = await run_query(select(User.username).order_by(User.username))
        return [(ALL, "All"), (UNASSIGNED, "Nobody")] + [(row[0], row[0]) for row in rows]

    async def get_filtered_query(self, query: Select[Any], value: Any, model: Any) -> Select[Any]:
        if value in (None, "", ALL):
            return query
        if not isinstance(value, str) or not USERNAME_PATTERN.fullmatch(value):
            raise HTTPException(status_code=400, detail="invalid assignee")
        return apply_conversation_filters(query, ConversationFilters(assignee=value))
