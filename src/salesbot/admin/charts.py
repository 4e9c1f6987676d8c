"""Charts as inline SVG built on the server: the dashboard works offline, with no script or CDN.

Every bar and point carries a `<title>`, so hovering shows the exact value; the numbers are also in tables.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from markupsafe import Markup, escape

PALETTE = ("#206bc4", "#2fb344", "#f76707", "#d63939", "#ae3ec9", "#0ca678")
_FONT = 'font-family="system-ui, sans-serif" font-size="11"'


@dataclass(frozen=True)
class Series:
    name: str
    values: Sequence[float | None]
    color: str = PALETTE[0]


def _nice_max(value: float) -> float:
    """A round upper bound for the axis (1, 2, 2.5, 5 x 10^n)."""
    if value <= 0:
        return 1.0
    magnitude = 10.0 ** math.floor(math.log10(value))
    return next(step * magnitude for step in (1, 2, 2.5, 5, 10) if value <= step * magnitude * (1 + 1e-9))


def _plain(value: float) -> str:
    return f"{value:,.0f}" if value >= 10 or value == int(value) else f"{value:,.2f}"


def horizontal_bars(
    items: Sequence[tuple[str, float]], *, color: str = PALETTE[0], fmt: Callable[[float], str] = _plain
) -> Markup:
    """One bar per label (the sales funnel)."""
    label_width, bar_area, row = 130, 330, 24
    width, height = label_width + bar_area + 60, row * len(items) + 8
    top = max((value for _, value in items), default=0) or 1
    parts = [
        f'<svg class="sb-chart" role="img" viewBox="0 0 {width} {height}" width="100%" '
        f'xmlns="http://www.w3.org/2000/svg" {_FONT}>'
    ]
    for index, (label, value) in enumerate(items):
        y = 4 + index * row
        length = bar_area * value / top
        parts.append(
            f'<text x="{label_width - 8}" y="{y + 15}" text-anchor="end" fill="#495057">{escape(label)}</text>'
            f'<rect x="{label_width}" y="{y + 3}" width="{max(length, 1):.1f}" height="{row - 8}" rx="2" '
            f'fill="{color}"><title>{escape(label)}: {escape(fmt(value))}</title></rect>'
            f'<text x="{label_width + length + 6:.1f}" y="{y + 15}" fill="#212529">{escape(fmt(value))}</text>'
        )
    parts.append("</svg>")
    return Markup("".join(parts))  # noqa: S704  (every interpolated text is escaped above)


def columns(
    labels: Sequence[str],
    series: Sequence[Series],
    *,
    kind: str = "bar",
    counts: bool = False,
    fmt: Callable[[float], str] = _plain,
) -> Markup:
    """Per-day values: grouped columns (`kind="bar"`) or lines with points (`kind="line"`)."""
    # A fixed drawing size: 7 or 90 days scale to the same card, text stays the same size.
    left, right, top_pad, bottom = 52, 12, 24, 34
    plot_w, plot_h = 480, 170
    width, height = left + plot_w + right, top_pad + plot_h + bottom
    values = [v for s in series for v in s.values if v is not None]
    ymax = _nice_max(max(values, default=0))
    if counts:
        ymax = max(ymax, 4.0)  # whole-number ticks (0, 1, 2, 3, 4) rather than 0.25 steps
    slot = plot_w / max(len(labels), 1)

    def y_of(value: float) -> float:
        return top_pad + plot_h - plot_h * value / ymax

    parts = [
        f'<svg class="sb-chart" role="img" viewBox="0 0 {width} {height}" width="100%" '
        f'xmlns="http://www.w3.org/2000/svg" {_FONT}>'
    ]
    for tick in range(5):
        level = ymax * tick / 4
        y = y_of(level)
        parts.append(
            f'<line x1="{left}" x2="{left + plot_w}" y1="{y:.1f}" y2="{y:.1f}" stroke="#e9ecef"/>'
            f'<text x="{left - 6}" y="{y + 4:.1f}" text-anchor="end" fill="#868e96">{escape(fmt(level))}</text>'
        )
    every = max(1, -(-len(labels) // 8))  # at most 8 date labels
    for index, label in enumerate(labels):
        if index % every == 0:
            x = left + slot * index + slot / 2
            parts.append(
                f'<text x="{x:.1f}" y="{top_pad + plot_h + 16}" text-anchor="middle" fill="#868e96">'
                f"{escape(label)}</text>"
            )
    if kind == "bar":
        gap = min(6.0, slot * 0.2)
        width_each = min((slot - gap) / max(len(series), 1), 28.0)
        group = width_each * len(series)
        for s_index, item in enumerate(series):
            for index, value in enumerate(item.values):
                if value is None:
                    continue
                x = left + slot * index + (slot - group) / 2 + width_each * s_index
                y = y_of(value)
                parts.append(
                    f'<rect x="{x:.1f}" y="{y:.1f}" width="{max(width_each - 1, 1):.1f}" '
                    f'height="{max(top_pad + plot_h - y, 0):.1f}" fill="{item.color}">'
                    f"<title>{escape(labels[index])} {escape(item.name)}: {escape(fmt(value))}</title></rect>"
                )
    else:
        for item in series:
            points = [
                (left + slot * index + slot / 2, y_of(value), labels[index], value)
                for index, value in enumerate(item.values)
                if value is not None
            ]
            if len(points) > 1:
                path = " ".join(f"{x:.1f},{y:.1f}" for x, y, _, _ in points)
                parts.append(f'<polyline points="{path}" fill="none" stroke="{item.color}" stroke-width="2"/>')
            for x, y, label, value in points:
                parts.append(
                    f'<circle cx="{x:.1f}" cy="{y:.1f}" r="3" fill="{item.color}">'
                    f"<title>{escape(label)} {escape(item.name)}: {escape(fmt(value))}</title></circle>"
                )
    legend_x = left
    for item in series:
        parts.append(
            f'<rect x="{legend_x}" y="6" width="10" height="10" fill="{item.color}"/>'
            f'<text x="{legend_x + 14}" y="15" fill="#495057">{escape(item.name)}</text>'
        )
        legend_x += 24 + 7 * len(item.name)
    parts.append("</svg>")
    return Markup("".join(parts))  # noqa: S704  (every interpolated text is escaped above)
