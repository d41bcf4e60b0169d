"""Charts as SVG text rendered on the server: no script, no CDN, works offline.

Two charts: the snapshot timeline (the chain on a time axis with a bar of
bytes added under each snapshot) and a line chart (stored against original
bytes over time). Every label goes through :func:`html.escape`; coordinates
are computed here so the browser only draws.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

#: lane (y) of each snapshot type in the chain panel
_LANES = {"full": 0, "diff": 1, "incr": 2}
_TYPE_COLOURS = {"full": "#1f5fbf", "diff": "#c77d00", "incr": "#6b7a8f"}
_GOOD = "#1a8f3c"


@dataclass(frozen=True)
class TimelinePoint:
    """One snapshot on the timeline."""

    id: str
    time: datetime
    type: str
    anchor: str | None  # the snapshot it is a delta against (diff: base, incr: parent)
    tags: tuple[str, ...]
    bytes_added: int
    href: str


@dataclass(frozen=True)
class Series:
    """One line of a line chart: (time, value) points, oldest first."""

    label: str
    colour: str
    points: Sequence[tuple[datetime, float]] = field(default_factory=tuple)


def human_bytes(n: float) -> str:
    """1536 → '1.5 KiB' (axis labels and tables)."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"


def _e(text: str) -> str:
    return html.escape(text, quote=True)


def spread_positions(times: Sequence[datetime], left: float, right: float,
                     min_gap: float) -> list[float]:
    """x of each time on [left, right]: proportional to time, never closer than ``min_gap``.

    Snapshots taken seconds apart would otherwise sit on one pixel; pushing
    each one right of its predecessor keeps the order and the gaps readable,
    then everything is scaled back into the plot.
    """
    if not times:
        return []
    t0, t1 = times[0].timestamp(), times[-1].timestamp()
    span = max(t1 - t0, 1e-9)
    xs: list[float] = []
    for t in times:
        x = left + (t.timestamp() - t0) / span * (right - left)
        if xs and x < xs[-1] + min_gap:
            x = xs[-1] + min_gap
        xs.append(x)
    if len(xs) == 1:
        return [(left + right) / 2]
    if xs[-1] > right:
        scale = (right - left) / (xs[-1] - left)
        xs = [left + (x - left) * scale for x in xs]
    return xs


def _time_label(t: datetime) -> str:
    return t.strftime("%Y-%m-%d %H:%M")


def timeline_svg(points: Sequence[TimelinePoint], *, width: int = 960,
                 highlight_tag: str = "known-good") -> str:
    """The chain panel (full → diff/incr, tagged ones ringed) above a bytes-added bar chart."""
    height, left, right = 300, 70, width - 20
    lane_top, lane_gap, bar_top, bar_bottom = 30, 34, 150, 260
    if not points:
        return (f'<svg class="chart" viewBox="0 0 {width} 60" role="img" '
                f'aria-label="no snapshots"><text x="20" y="35">no snapshots</text></svg>')
    xs = spread_positions([p.time for p in points], left + 8, right - 8, 6.0)
    pos = {p.id: (x, lane_top + _LANES.get(p.type, 2) * lane_gap) for p, x in zip(
        points, xs, strict=True)}
    top = max(max(p.bytes_added for p in points), 1)
    bar_w = max(2.0, min(18.0, (right - left) / max(len(points), 1) * 0.7))
    out = [f'<svg class="chart timeline" viewBox="0 0 {width} {height}" role="img" '
           f'aria-label="snapshot timeline" xmlns="http://www.w3.org/2000/svg">']
    for name, lane in _LANES.items():
        y = lane_top + lane * lane_gap
        out.append(f'<text class="lane" x="{left - 10}" y="{y + 4}" text-anchor="end">'
                   f'{name}</text><line class="grid" x1="{left}" y1="{y}" x2="{right}" '
                   f'y2="{y}"/>')
    for p in points:  # edges first, so the dots sit on top
        if p.anchor and p.anchor in pos:
            (x1, y1), (x2, y2) = pos[p.anchor], pos[p.id]
            out.append(f'<line class="edge edge-{_e(p.type)}" x1="{x1:.1f}" y1="{y1}" '
                       f'x2="{x2:.1f}" y2="{y2}"/>')
    out.append(f'<line class="axis" x1="{left}" y1="{bar_bottom}" x2="{right}" '
               f'y2="{bar_bottom}"/><text class="tick" x="{left - 6}" y="{bar_top + 4}" '
               f'text-anchor="end">{_e(human_bytes(top))}</text><text class="tick" '
               f'x="{left - 6}" y="{bar_bottom}" text-anchor="end">0</text>'
               f'<text class="lane" x="{left - 10}" y="{(bar_top + bar_bottom) / 2:.0f}" '
               f'text-anchor="end">added</text>')
    for p, x in zip(points, xs, strict=True):
        h = (bar_bottom - bar_top) * p.bytes_added / top
        good = highlight_tag in p.tags
        colour = _GOOD if good else _TYPE_COLOURS.get(p.type, "#888")
        title = (f"{p.id[:12]} {p.type} {_time_label(p.time)} +{human_bytes(p.bytes_added)}"
                 + (f" [{', '.join(p.tags)}]" if p.tags else ""))
        x0, y0 = pos[p.id]
        ring = (f'<circle class="tag-ring" cx="{x0:.1f}" cy="{y0}" r="10" stroke="{_GOOD}"/>'
                if good else "")
        label = (f'<text class="tag" x="{x0:.1f}" y="{y0 - 13}" text-anchor="middle">'
                 f'{_e(",".join(p.tags))}</text>' if p.tags else "")
        out.append(
            f'<a href="{_e(p.href)}" class="snap" data-id="{_e(p.id)}"><title>{_e(title)}</title>'
            f'{ring}<circle cx="{x0:.1f}" cy="{y0}" r="6" fill="{colour}"/>{label}'
            f'<rect class="bar" x="{x - bar_w / 2:.1f}" y="{bar_bottom - h:.1f}" '
            f'width="{bar_w:.1f}" height="{max(h, 0.5):.1f}" fill="{colour}"/></a>')
    for i in sorted({0, len(points) // 2, len(points) - 1}):
        anchor = "start" if i == 0 else ("end" if i == len(points) - 1 else "middle")
        out.append(f'<text class="tick" x="{xs[i]:.1f}" y="{bar_bottom + 18}" '
                   f'text-anchor="{anchor}">{_e(_time_label(points[i].time))}</text>')
    out.append("</svg>")
    return "".join(out)


def line_chart_svg(title: str, series: Sequence[Series], *, width: int = 460,
                   height: int = 200) -> str:
    """Lines of byte counts over time, with a legend; empty series draw nothing."""
    left, right, top, bottom = 70, width - 10, 28, height - 30
    pts = [p for s in series for p in s.points]
    out = [f'<svg class="chart line" viewBox="0 0 {width} {height}" role="img" '
           f'aria-label="{_e(title)}" xmlns="http://www.w3.org/2000/svg">'
           f'<text class="title" x="{left}" y="16">{_e(title)}</text>']
    if not pts:
        out.append(f'<text x="{left}" y="{height / 2:.0f}">no data</text></svg>')
        return "".join(out)
    t0 = min(t for t, _ in pts).timestamp()
    t1 = max(t for t, _ in pts).timestamp()
    span = max(t1 - t0, 1e-9)
    vmax = max(max(v for _, v in pts), 1.0)

    def xy(t: datetime, v: float) -> str:
        x = left + (t.timestamp() - t0) / span * (right - left) if t1 > t0 else (left + right) / 2
        return f"{x:.1f},{bottom - (bottom - top) * v / vmax:.1f}"

    out.append(f'<line class="axis" x1="{left}" y1="{bottom}" x2="{right}" y2="{bottom}"/>'
               f'<line class="axis" x1="{left}" y1="{top}" x2="{left}" y2="{bottom}"/>'
               f'<text class="tick" x="{left - 6}" y="{top + 4}" text-anchor="end">'
               f'{_e(human_bytes(vmax))}</text><text class="tick" x="{left - 6}" '
               f'y="{bottom}" text-anchor="end">0</text>')
    for i, s in enumerate(series):
        if s.points:
            path = " ".join(xy(t, v) for t, v in s.points)
            out.append(f'<polyline fill="none" stroke="{_e(s.colour)}" stroke-width="2" '
                       f'points="{path}"><title>{_e(s.label)}</title></polyline>')
        lx = right - 80 * (len(series) - i)  # one row, right-aligned, short labels
        out.append(f'<rect x="{lx}" y="7" width="10" height="10" fill="{_e(s.colour)}"/>'
                   f'<text class="legend" x="{lx + 14}" y="16">{_e(s.label)}</text>')
    first, last = min(t for t, _ in pts), max(t for t, _ in pts)
    out.append(f'<text class="tick" x="{left}" y="{bottom + 16}">{_e(_time_label(first))}</text>'
               f'<text class="tick" x="{right}" y="{bottom + 16}" text-anchor="end">'
               f'{_e(_time_label(last))}</text></svg>')
    return "".join(out)
