"""The inline SVG bar chart, read back as XML."""
from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest

from app.ui.chart import BOTTOM, TOP, bar_chart

SVG = "{http://www.w3.org/2000/svg}"


def bars(svg: str) -> list[ET.Element]:
    return [rect for rect in ET.fromstring(svg).iter(f"{SVG}rect") if rect.get("class") == "bar"]


def test_one_bar_per_count_scaled_to_the_largest():
    svg = bar_chart([0, 5, 10, 2], ["a", "b", "c", "d"], title="t", height=150)
    heights = [float(rect.get("height")) for rect in bars(svg)]
    plot = 150 - TOP - BOTTOM
    assert heights == [0.0, plot / 2, plot, pytest.approx(plot / 5, abs=0.05)]
    for rect in bars(svg):  # every bar stands on the baseline
        assert float(rect.get("y")) + float(rect.get("height")) == pytest.approx(150 - BOTTOM, abs=0.1)
    xs = [float(rect.get("x")) for rect in bars(svg)]
    assert xs == sorted(xs) and len(set(xs)) == 4


def test_each_bar_says_its_label_and_count_and_the_axis_its_peak():
    root = ET.fromstring(bar_chart([3, 7], ["12:00 UTC", "12:01 UTC"], title="Finished"))
    assert root.get("role") == "img" and root.get("aria-label") == "Finished"
    assert [g.find(f"{SVG}title").text for g in root.iter(f"{SVG}g")] == ["12:00 UTC: 3", "12:01 UTC: 7"]
    assert [text.text for text in root.iter(f"{SVG}text")] == ["7", "0", "12:00 UTC", "12:01 UTC"]


def test_all_zero_and_empty_series_draw_without_dividing_by_zero():
    assert {rect.get("height") for rect in bars(bar_chart([0] * 60, title="t"))} == {"0.0"}
    root = ET.fromstring(bar_chart([], title="t"))
    assert bars(ET.tostring(root, encoding="unicode")) == []


def test_labels_and_title_are_escaped():
    svg = bar_chart([1], ["<b>&"], title='"><script>')
    assert "<script>" not in svg and "<b>" not in svg
    assert ET.fromstring(svg).find(f"{SVG}g/{SVG}title").text == "<b>&: 1"


def test_labels_must_match_the_counts():
    with pytest.raises(ValueError):
        bar_chart([1, 2], ["one"], title="t")
