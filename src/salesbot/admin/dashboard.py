"""The dashboard: the sales funnel, conversations, messages, reply latency, handoffs and LLM cost per day."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

from sqladmin import BaseView, expose
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from salesbot.admin import charts
from salesbot.admin.context import SiteView
from salesbot.reporting.stats import compute_stats

DASHBOARD_DAYS = (7, 14, 30, 90)


def _seconds(value_ms: int | float | Decimal | None) -> float | None:
    return None if value_ms is None else float(value_ms) / 1000


class DashboardView(SiteView, BaseView):
    name = "Dashboard"
    icon = "fa-solid fa-chart-line"

    @expose("/dashboard", methods=["GET"], identity="dashboard")
    async def dashboard(self, request: Request) -> Response:
        raw_days = request.query_params.get("days", "14")
        days = int(raw_days) if raw_days.isdigit() and int(raw_days) in DASHBOARD_DAYS else 14
        async with self.site.resources.sessionmaker() as session:
            stats = await compute_stats(session, days=days, now=datetime.now(UTC))
        labels = [f"{entry.day:%d %b}" for entry in stats.per_day]
        context = {
            "title": "Dashboard",
            "stats": stats,
            "days": days,
            "day_options": DASHBOARD_DAYS,
            "funnel_chart": charts.horizontal_bars(
                [(entry.stage.value.replace("_", " "), entry.conversations) for entry in stats.funnel]
            ),
            "conversations_chart": charts.columns(
                labels,
                [charts.Series("new conversations", [d.new_conversations for d in stats.per_day])],
                counts=True,
            ),
            "messages_chart": charts.columns(
                labels,
                [
                    charts.Series("inbound", [d.inbound_messages for d in stats.per_day], charts.PALETTE[0]),
                    charts.Series("outbound", [d.outbound_messages for d in stats.per_day], charts.PALETTE[1]),
                ],
                counts=True,
            ),
            "latency_chart": charts.columns(
                labels,
                [
                    charts.Series("p50", [_seconds(d.reply_latency_p50_ms) for d in stats.per_day], charts.PALETTE[0]),
                    charts.Series("p95", [_seconds(d.reply_latency_p95_ms) for d in stats.per_day], charts.PALETTE[2]),
                ],
                kind="line",
                fmt=lambda value: f"{value:.1f} s",
            ),
            "handoffs_chart": charts.columns(
                labels,
                [
                    charts.Series("handoffs", [d.handoffs for d in stats.per_day], charts.PALETTE[4]),
                    charts.Series("failed deliveries", [d.failed_deliveries for d in stats.per_day], charts.PALETTE[3]),
                ],
                counts=True,
            ),
            "cost_chart": charts.columns(
                labels,
                [charts.Series("LLM cost", [float(d.llm_cost) for d in stats.per_day], charts.PALETTE[5])],
                fmt=lambda value: f"${value:,.4f}" if value < 1 else f"${value:,.2f}",
            ),
            "seconds": _seconds,
        }
        return await self.site.templates.TemplateResponse(request, "salesbot/dashboard.html", context)


def index_redirect(request: Request) -> RedirectResponse:
    return RedirectResponse(request.url_for("admin:view-dashboard"), status_code=302)
