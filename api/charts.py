"""Server-side SVG charts for the dashboard: no script library, nothing fetched by the browser.

Every bar is a ``<rect class="bar">`` carrying ``data-label`` and ``data-value`` (and
``data-series`` in stacked charts), so a test can match what the browser drew to the API's numbers.
"""
from __future__ import annotations

from html import escape
from typing import Sequence

PALETTE = {"gong": "#7b61ff", "slack": "#2eb67d", "hubspot": "#ff7a59", "salesforce": "#00a1e0"}
_FALLBACK = ("#4c78a8", "#f58518", "#54a24b", "#e45756", "#72b7b2", "#b279a2")
WIDTH, HEIGHT, PAD = 720, 240, 36


def color(series: str, index: int = 0) -> str:
    return PALETTE.get(series, _FALLBACK[index % len(_FALLBACK)])


def _frame(metric: str, title: str, body: list[str], height: int = HEIGHT) -> str:
    return (f'<figure class="chart-box"><figcaption>{escape(title)}</figcaption>'
            f'<svg class="chart" data-metric="{escape(metric)}" viewBox="0 0 {WIDTH} {height}" '
            f'width="{WIDTH}" height="{height}" role="img" aria-label="{escape(title)}">'
            + "".join(body) + "</svg></figure>")


def _empty(metric: str, title: str) -> str:
    return _frame(metric, title, [f'<text x="{PAD}" y="{HEIGHT // 2}" class="empty">no data yet</text>'])


def bar_chart(metric: str, title: str, points: Sequence[tuple[str, float]], series: str = "") -> str:
    """Vertical bars, one per (label, value)."""
    points = [(str(label), float(value or 0)) for label, value in points]
    if not points:
        return _empty(metric, title)
    top = max(v for _, v in points) or 1.0
    step = (WIDTH - 2 * PAD) / len(points)
    body = [f'<line x1="{PAD}" y1="{HEIGHT - PAD}" x2="{WIDTH - PAD}" y2="{HEIGHT - PAD}" class="axis"/>',
            f'<text x="4" y="{PAD - 8}" class="tick">{_fmt(top)}</text>']
    for i, (label, value) in enumerate(points):
        h = (HEIGHT - 2 * PAD) * value / top
        x, y = PAD + i * step + step * 0.1, HEIGHT - PAD - h
        if value > 0:  # a zero is the gap, not an invisible bar
            body.append(f'<rect class="bar" x="{x:.1f}" y="{y:.1f}" width="{max(step * 0.8, 1):.1f}" height="{h:.1f}" '
                        f'fill="{color(series or label, i)}" data-label="{escape(label)}" data-value="{_fmt(value)}">'
                        f'<title>{escape(label)}: {_fmt(value)}</title></rect>')
        if len(points) <= 24:
            body.append(f'<text x="{x:.1f}" y="{HEIGHT - PAD + 14}" class="tick">{escape(label[:14])}</text>')
    return _frame(metric, title, body)


def stacked_bar_chart(metric: str, title: str, rows: Sequence[tuple[str, str, float]]) -> str:
    """Bars per label (e.g. day), stacked by series (e.g. source), from (label, series, value) rows."""
    labels = sorted({label for label, _, _ in rows})
    series = sorted({s for _, s, _ in rows})
    if not labels:
        return _empty(metric, title)
    value = {(label, s): float(v or 0) for label, s, v in rows}
    totals = {label: sum(value.get((label, s), 0) for s in series) for label in labels}
    top = max(totals.values()) or 1.0
    step = (WIDTH - 2 * PAD) / len(labels)
    body = [f'<line x1="{PAD}" y1="{HEIGHT - PAD}" x2="{WIDTH - PAD}" y2="{HEIGHT - PAD}" class="axis"/>',
            f'<text x="4" y="{PAD - 8}" class="tick">{_fmt(top)}</text>',
            f'<text x="{PAD}" y="{HEIGHT - 6}" class="tick">{escape(labels[0])}</text>',
            f'<text x="{WIDTH - PAD - 70}" y="{HEIGHT - 6}" class="tick">{escape(labels[-1])}</text>']
    for i, label in enumerate(labels):
        y = HEIGHT - PAD
        for j, s in enumerate(series):
            v = value.get((label, s), 0)
            if not v:
                continue
            h = (HEIGHT - 2 * PAD) * v / top
            y -= h
            body.append(f'<rect class="bar" x="{PAD + i * step:.2f}" y="{y:.2f}" width="{max(step * 0.9, 0.5):.2f}" '
                        f'height="{h:.2f}" fill="{color(s, j)}" data-label="{escape(label)}" data-series="{escape(s)}" '
                        f'data-value="{_fmt(v)}"><title>{escape(label)} {escape(s)}: {_fmt(v)}</title></rect>')
    for j, s in enumerate(series):
        body.append(f'<rect x="{WIDTH - PAD - 110}" y="{8 + j * 14}" width="10" height="10" fill="{color(s, j)}"/>'
                    f'<text x="{WIDTH - PAD - 96}" y="{17 + j * 14}" class="tick">{escape(s)}</text>')
    return _frame(metric, title, body)


def horizontal_bar_chart(metric: str, title: str, points: Sequence[tuple[str, float]]) -> str:
    """Horizontal bars with their labels, for ranked lists (most active accounts)."""
    points = [(str(label), float(value or 0)) for label, value in points]
    if not points:
        return _empty(metric, title)
    row, left = 18, 200
    height = PAD + row * len(points)
    top = max(v for _, v in points) or 1.0
    body = []
    for i, (label, value) in enumerate(points):
        w = (WIDTH - left - PAD - 40) * value / top
        y = 10 + i * row
        body.append(f'<text x="4" y="{y + 12}" class="tick">{escape(label[:30])}</text>'
                    f'<rect class="bar" x="{left}" y="{y}" width="{w:.1f}" height="{row - 4}" fill="{color("", 0)}" '
                    f'data-label="{escape(label)}" data-value="{_fmt(value)}"><title>{escape(label)}: {_fmt(value)}</title></rect>'
                    f'<text x="{left + w + 4:.1f}" y="{y + 12}" class="tick">{_fmt(value)}</text>')
    return _frame(metric, title, body, height)


def _fmt(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:.2f}"
