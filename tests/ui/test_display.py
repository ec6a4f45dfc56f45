"""How the dashboard writes durations, times and bodies."""
from __future__ import annotations

from app.core import clock
from app.ui import display

NOW_MS = clock.from_rfc3339("2026-11-23T08:21:59.123+00:00")


def test_durations_read_in_the_largest_units_that_fit():
    cases = {None: "–", -5: "0 ms", 0: "0 ms", 850: "850 ms", 1000: "1 s", 4250: "4.2 s", 30_000: "30 s",
             60_000: "1 min", 184_000: "3 min 4 s", 3_600_000: "1 h", 7_500_000: "2 h 5 min",
             273_600_000: "3 d 4 h", 86_400_000: "1 d"}
    assert {value: display.duration(value) for value in cases} == cases
    assert display.seconds(0.5) == "500 ms" and display.seconds(3600) == "1 h" and display.seconds(None) == "–"


def test_times_say_when_and_how_long_ago_or_ahead():
    assert display.when("2026-11-23T08:21:54.123Z", NOW_MS) == (
        '<time datetime="2026-11-23T08:21:54.123Z" title="2026-11-23T08:21:54.123Z">2026-11-23 08:21:54</time> '
        '<span class="muted">5 s ago</span>')
    assert display.when("2026-11-23T09:21:59.123Z", NOW_MS, short=True) == (
        '<time datetime="2026-11-23T09:21:59.123Z" title="2026-11-23T09:21:59.123Z">in 1 h</time>')
    assert display.when(None, NOW_MS) == '<span class="muted">–</span>'


def test_previews_cut_long_text_and_indent_json():
    cut = display.preview("x" * 20, limit=8)
    assert (cut.text, cut.total, cut.truncated) == ("x" * 8, 20, True)
    assert display.preview('{"a":[1]}', pretty_json=True).text == '{\n  "a": [\n    1\n  ]\n}'
    assert display.preview("not json {", pretty_json=True).text == "not json {"
    assert display.preview('{"a":1}').text == '{"a":1}'  # text stays as sent unless said to be JSON
    assert display.preview("[" * 5000 + "]" * 5000, pretty_json=True).total == 10_000  # too deep: left as text
    assert display.preview_value({"k": "é"}).text == '{\n  "k": "é"\n}'
    assert display.preview_value("plain").text == "plain"
    assert display.json_content({"content-type": "application/problem+json"}) and not display.json_content({})


def test_status_badges_escape_what_they_show():
    assert display.status_badge("failed") == '<span class="badge badge-failed">failed</span>'
    assert "<b>" not in display.status_badge("<b>")
