"""The dashboard's charts as SVG drawn on the server: stacked bars or lines over a
window's buckets, a legend, and a ``<title>`` per bar for its numbers. No script, no
inline style: colours come from the classes ``s0``..``s9`` of ``console.css``."""

from __future__ import annotations

import math

from markupsafe import Markup, escape

from payerbridge.oversight.model import Chart, Series

__all__ = ["chart_svg", "legend_html", "nice_ceiling"]

_WIDTH, _HEIGHT = 640, 200
_LEFT, _RIGHT, _TOP, _BOTTOM = 40, 8, 8, 22
_COLOURS = 10


def nice_ceiling(value: int) -> int:
    """The axis' top: 1, 2 or 5 times a power of ten, at least ``value`` (and 1)."""
    if value <= 1:
        return 1
    power = int(10 ** math.floor(math.log10(value)))
    for step in (1, 2, 5, 10):
        if step * power >= value:
            return step * power
    return 10 * power


def _x(index: int, buckets: int) -> float:
    return _LEFT + (_WIDTH - _LEFT - _RIGHT) * index / buckets


def _y(value: float, top: int) -> float:
    plot = _HEIGHT - _TOP - _BOTTOM
    return _TOP + plot - plot * value / top


def _axes(chart: Chart, top: int) -> list[str]:
    buckets = len(chart.window.starts)
    parts = []
    for fraction in (0.0, 0.5, 1.0) if top >= 2 else (0.0, 1.0):
        y = _y(top * fraction, top)
        parts.append(
            f'<line class="grid" x1="{_LEFT}" x2="{_WIDTH - _RIGHT}" y1="{y:.1f}" y2="{y:.1f}"/>'
            f'<text x="{_LEFT - 4}" y="{y + 3:.1f}" text-anchor="end">'
            f"{round(top * fraction)}</text>"
        )
    every = max(1, buckets // 8)
    for i in range(0, buckets, every):
        x = _x(i, buckets) + (_WIDTH - _LEFT - _RIGHT) / buckets / 2
        parts.append(
            f'<text x="{x:.1f}" y="{_HEIGHT - 6}" text-anchor="middle">'
            f"{escape(chart.window.label(i))}</text>"
        )
    base = _y(0, top)
    parts.append(
        f'<line class="axis" x1="{_LEFT}" x2="{_WIDTH - _RIGHT}" y1="{base:.1f}" y2="{base:.1f}"/>'
    )
    return parts


def _bars(chart: Chart, top: int) -> list[str]:
    buckets = len(chart.window.starts)
    width = (_WIDTH - _LEFT - _RIGHT) / buckets
    parts = []
    for i in range(buckets):
        level = 0
        for number, series in enumerate(chart.series):
            value = series.points[i]
            if value == 0:
                continue
            y_top, y_bottom = _y(level + value, top), _y(level, top)
            label = escape(f"{chart.window.label(i)}: {series.name} {value}")
            parts.append(
                f'<rect class="s{number % _COLOURS}" x="{_x(i, buckets) + 1:.1f}" '
                f'y="{y_top:.1f}" width="{max(1.0, width - 2):.1f}" '
                f'height="{max(0.5, y_bottom - y_top):.1f}"><title>{label}</title></rect>'
            )
            level += value
    return parts


def _lines(chart: Chart, top: int) -> list[str]:
    buckets = len(chart.window.starts)
    half = (_WIDTH - _LEFT - _RIGHT) / buckets / 2
    parts = []
    for number, series in enumerate(chart.series):
        points = " ".join(
            f"{_x(i, buckets) + half:.1f},{_y(v, top):.1f}" for i, v in enumerate(series.points)
        )
        parts.append(
            f'<polyline class="line s{number % _COLOURS}" fill="none" points="{points}">'
            f"<title>{escape(series.name)}</title></polyline>"
        )
    return parts


def _highest(chart: Chart) -> int:
    if not chart.series:
        return 0
    buckets = range(len(chart.window.starts))
    if chart.stacked:
        return max(sum(s.points[i] for s in chart.series) for i in buckets)
    return max(max(s.points) for s in chart.series)


def chart_svg(chart: Chart) -> Markup:
    """The chart as an inline ``<svg>``, described for screen readers by its title."""
    top = nice_ceiling(_highest(chart))
    body = _axes(chart, top) + (_bars(chart, top) if chart.stacked else _lines(chart, top))
    return Markup(
        f'<svg class="chart" viewBox="0 0 {_WIDTH} {_HEIGHT}" role="img" '
        f'aria-label="{escape(chart.title)}" xmlns="http://www.w3.org/2000/svg">'
        f"<title>{escape(chart.title)}</title>{''.join(body)}</svg>"
    )


def legend_html(series: tuple[Series, ...]) -> Markup:
    items = "".join(
        f'<li><span class="swatch s{n % _COLOURS}"></span>{escape(s.name)} '
        f'<span class="muted">{s.total}</span></li>'
        for n, s in enumerate(series)
    )
    return Markup(f'<ul class="legend">{items}</ul>')
