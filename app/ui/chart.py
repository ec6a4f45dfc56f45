"""A bar chart as inline SVG: drawn on the server, no script, no outside asset. Colours come from
the stylesheet (classes `bar`, `slot`, `axis`), so the chart follows its theme."""
from __future__ import annotations

from collections.abc import Sequence

from markupsafe import Markup, escape

TOP = 14  # room for the peak's label
BOTTOM = 18  # room for the first and last labels
LEFT = 34  # room for the y axis labels
BAR_SHARE = 0.8  # of its slot a bar fills


def bar_chart(counts: Sequence[int], labels: Sequence[str] | None = None, *, title: str,
              width: int = 640, height: int = 150) -> Markup:
    """One bar per count, scaled to the largest; hovering a bar shows its label and count (an SVG
    <title>, no script). `labels` name each bar (the first and last are written under the axis)."""
    labels = list(labels) if labels is not None else [str(index) for index in range(len(counts))]
    if len(labels) != len(counts):
        raise ValueError("one label per count")
    peak = max(counts, default=0)
    plot_height = height - TOP - BOTTOM
    baseline = height - BOTTOM
    slot = (width - LEFT) / max(1, len(counts))
    bar_width = max(1.0, slot * BAR_SHARE)
    parts = [f'<svg class="chart" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" '
             f'width="{width}" height="{height}" role="img" aria-label="{escape(title)}">',
             f"<title>{escape(title)}</title>"]
    for index, (count, label) in enumerate(zip(counts, labels)):
        x = LEFT + index * slot
        bar_height = 0.0 if peak == 0 else count / peak * plot_height
        parts.append(
            f'<g><title>{escape(label)}: {count}</title>'
            f'<rect class="slot" x="{x:.1f}" y="{TOP}" width="{slot:.1f}" height="{plot_height}"/>'
            f'<rect class="bar" x="{x + (slot - bar_width) / 2:.1f}" y="{baseline - bar_height:.1f}" '
            f'width="{bar_width:.1f}" height="{bar_height:.1f}"/></g>')
    parts.append(f'<line class="axis" x1="{LEFT}" y1="{baseline}" x2="{width}" y2="{baseline}"/>')
    parts.append(f'<text class="label" x="{LEFT - 4}" y="{TOP + 4}" text-anchor="end">{peak}</text>')
    parts.append(f'<text class="label" x="{LEFT - 4}" y="{baseline}" text-anchor="end">0</text>')
    if labels:
        parts.append(f'<text class="label" x="{LEFT}" y="{height - 4}">{escape(labels[0])}</text>')
        parts.append(f'<text class="label" x="{width}" y="{height - 4}" text-anchor="end">{escape(labels[-1])}</text>')
    parts.append("</svg>")
    return Markup("".join(parts))
