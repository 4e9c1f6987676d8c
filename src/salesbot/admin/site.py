"""The admin site: SQLAdmin mounted at /admin, bound to the app's engine when the lifespan opens resources.

The site only registers the views; the views call the domains' services (manager actions, accounts, catalog)
and reach the site's resources through `salesbot.admin.context.AdminSite`, never by importing this module.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import FastAPI
from sqladmin import Admin, BaseView, ModelView
from sqladmin.authentication import login_required
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from starlette.requests import Request
from starlette.responses import Response

from salesbot.admin.alerts_views import ALERT_VIEWS
from salesbot.admin.auth import CSRF_FIELD, AdminAuth
from salesbot.admin.commerce_views import COMMERCE_VIEWS
from salesbot.admin.dashboard import DashboardView, index_redirect
from salesbot.admin.views import MODEL_VIEWS
from salesbot.resources import Resources
from salesbot.settings import Settings

TEMPLATES_DIR = Path(__file__).parent / "templates"
BASE_URL = "/admin"


class SalesbotAdmin(Admin):
    """SQLAdmin with salesbot's login, views and dashboard."""

    def __init__(self, app: FastAPI, settings: Settings) -> None:
        self.salesbot_settings = settings
        self._resources: Resources | None = None
        auth = AdminAuth(settings, lambda: self.resources, base_path=BASE_URL)
        # Unbound until the lifespan opens the engine (`bind`); SQLAdmin's own queries use this factory.
        super().__init__(
            app,
            session_maker=async_sessionmaker(class_=AsyncSession, expire_on_commit=False),
            base_url=BASE_URL,
            title="salesbot",
            authentication_backend=auth,
            templates_dir=str(TEMPLATES_DIR),
        )
        auth.templates = self.templates
        self.templates.env.globals["csrf_field"] = CSRF_FIELD
        self.add_view(_bound(DashboardView))
        for view in (*MODEL_VIEWS, *ALERT_VIEWS):
            self.add_view(_bound(view))
        for view in COMMERCE_VIEWS:
            self.add_view(_bound(view))

    def bind(self, resources: Resources) -> None:
        self.session_maker.configure(bind=resources.engine)
        self._resources = resources

    @property
    def resources(self) -> Resources:
        if self._resources is None:
            raise RuntimeError("the admin is used before the application started")
        return self._resources

    @login_required
    async def index(self, request: Request) -> Response:
        return index_redirect(request)


def _bound(view: type[ModelView] | type[BaseView]) -> Any:
    """A subclass per admin site: SQLAdmin stores the site and session factory on the view class itself."""
    return type(view.__name__, (view,), {"__module__": view.__module__})


def mount_admin(app: FastAPI, settings: Settings) -> SalesbotAdmin:
    return SalesbotAdmin(app, settings)
