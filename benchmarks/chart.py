"""The cold-start chart: process start to ready against D, one line per configuration.

Plain SVG written with the standard library (no plotting library to install in the
benchmark's environment): a log-scale time axis, since eager and fastapi-lazyrouter grow
20-40 times over the range while the floor and the lazy service stay flat.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from xml.sax.saxutils import escape

from .harness import EAGER, FLOOR, LAZY, LAZYROUTER, Results

SERIES = (
    (FLOOR, "empty FastAPI (floor)", "#6b7280", "6 4"),
    (LAZY, "service, lazy + build", "#2563eb", ""),
    (EAGER, "service, eager + build", "#dc2626", ""),
    (LAZYROUTER, "fastapi-lazyrouter", "#d97706", ""),
)
WIDTH, HEIGHT = 720, 420
LEFT, RIGHT, TOP, BOTTOM = 70, 200, 40, 50


def _points(results: Results, kind: str, counts: Sequence[int], metric: str) -> list[tuple[int, float]]:
    points = []
    for count in counts:
        # The floor has no domains: the same value is drawn at every D, as the reference line.
        value = results.median(FLOOR if kind == FLOOR else f"{kind}@{count}", metric)
        if value:
            points.append((count, value))
    return points


def cold_start_svg(results: Results, counts: Sequence[int], metric: str = "uvicorn_ready_ms") -> str:
    """The chart as an SVG document (medians of ``metric``, in ms, against D)."""
    series = [(label, colour, dash, _points(results, kind, counts, metric)) for kind, label, colour, dash in SERIES]
    series = [entry for entry in series if entry[3]]
    values = [value for *_, points in series for _, value in points]
    if not values or not counts:
        return ""
    low = 10 ** math.floor(math.log10(min(values)))
    high = 10 ** math.ceil(math.log10(max(values)))
    plot_width, plot_height = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM

    def x(index: int) -> float:
        return LEFT + (plot_width * index / (len(counts) - 1) if len(counts) > 1 else plot_width / 2)

    def y(value: float) -> float:
        return TOP + plot_height * (1 - (math.log10(value) - math.log10(low)) / (math.log10(high) - math.log10(low)))

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" '
        f'viewBox="0 0 {WIDTH} {HEIGHT}" font-family="sans-serif" font-size="12">',
        f'<rect width="{WIDTH}" height="{HEIGHT}" fill="white"/>',
        f'<text x="{LEFT}" y="22" font-size="14" font-weight="bold">Cold start: process start to first 200 '
        "from /health/ready (uvicorn), median</text>",
    ]
    decade = low
    while decade <= high:
        for step in (1, 2, 5):
            tick = decade * step
            if low <= tick <= high:
                parts.append(
                    f'<line x1="{LEFT}" x2="{LEFT + plot_width}" y1="{y(tick):.1f}" y2="{y(tick):.1f}" '
                    f'stroke="#e5e7eb"/><text x="{LEFT - 6}" y="{y(tick) + 4:.1f}" text-anchor="end">'
                    f"{_milliseconds(tick)}</text>"
                )
        decade *= 10
    for index, count in enumerate(counts):
        parts.append(
            f'<line x1="{x(index):.1f}" x2="{x(index):.1f}" y1="{TOP}" y2="{TOP + plot_height}" stroke="#f3f4f6"/>'
            f'<text x="{x(index):.1f}" y="{TOP + plot_height + 18}" text-anchor="middle">{count}</text>'
        )
    parts.append(
        f'<text x="{LEFT + plot_width / 2:.1f}" y="{HEIGHT - 10}" text-anchor="middle">D (domains, 5 endpoints '
        "and 11 models each)</text>"
    )
    for number, (label, colour, dash, points) in enumerate(series):
        path = " ".join(f"{x(list(counts).index(count)):.1f},{y(value):.1f}" for count, value in points)
        dashed = f' stroke-dasharray="{dash}"' if dash else ""
        parts.append(f'<polyline points="{path}" fill="none" stroke="{colour}" stroke-width="2.5"{dashed}/>')
        for count, value in points:
            parts.append(
                f'<circle cx="{x(list(counts).index(count)):.1f}" cy="{y(value):.1f}" r="3.5" fill="{colour}">'
                f"<title>{escape(label)}, D={count}: {_milliseconds(value)}</title></circle>"
            )
        legend_y = TOP + 10 + 22 * number
        parts.append(
            f'<line x1="{WIDTH - RIGHT + 16}" x2="{WIDTH - RIGHT + 40}" y1="{legend_y}" y2="{legend_y}" '
            f'stroke="{colour}" stroke-width="2.5"{dashed}/>'
            f'<text x="{WIDTH - RIGHT + 46}" y="{legend_y + 4}">{escape(label)}</text>'
        )
    parts.append("</svg>")
    return "\n".join(parts) + "\n"


def _milliseconds(value: float) -> str:
    return f"{value / 1000:g} s" if value >= 1000 else f"{value:g} ms"
