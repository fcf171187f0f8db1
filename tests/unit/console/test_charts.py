"""The dashboard's charts: SVG drawn on the server, styled by class only (the console's
policy refuses inline style), each bar titled with its numbers."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest

from payerbridge.console.charts import chart_svg, legend_html, nice_ceiling
from payerbridge.oversight.model import Chart, Period, Series, window_for

WINDOW = window_for(Period.WEEK, datetime(2026, 12, 1, tzinfo=UTC))


@pytest.mark.parametrize(
    ("value", "top"), [(0, 1), (1, 1), (3, 5), (10, 10), (11, 20), (230, 500), (999, 1000)]
)
def test_the_axis_tops_at_one_two_or_five_times_a_power_of_ten(value: int, top: int) -> None:
    assert nice_ceiling(value) == top


def test_stacked_bars_and_lines_carry_no_style_and_escape_the_names() -> None:
    series = (Series("<b>completed</b>", (1, 2, 0, 0, 0, 0, 3)), Series("failed", (0,) * 7))
    bars = str(chart_svg(Chart("Exchanges & more", WINDOW, series)))
    lines = str(chart_svg(Chart("Backlog", WINDOW, series, stacked=False)))
    for svg in (bars, lines):
        assert "style=" not in svg and "<script" not in svg and "<b>" not in svg
    assert bars.count("<rect") == 3  # the zero counts draw nothing
    assert "&lt;b&gt;completed&lt;/b&gt; 3" in bars and 'aria-label="Exchanges &amp; more"' in bars
    assert lines.count("<polyline") == 2
    tops = [float(y) for y in re.findall(r'<rect class="s0" x="[\d.]+" y="([\d.]+)"', bars)]
    assert min(tops) == 8 + 170 * (1 - 3 / 5)  # the highest bar, 3 on an axis of 5
    legend = str(legend_html(series))
    assert 'class="swatch s0"' in legend and "&lt;b&gt;" in legend
