"""The URL rule the API document states (model.URL_PATTERN) promises no more than the server
takes: every URL it matches passes url_problem."""
from __future__ import annotations

import re

from hypothesis import given, settings
from hypothesis import strategies as st

from app.core.model import MAX_URL_CHARS, URL_PATTERN, url_problem


@settings(max_examples=500, deadline=None)
@given(st.from_regex(URL_PATTERN, fullmatch=True).filter(lambda url: len(url) <= MAX_URL_CHARS))
def test_every_url_the_document_allows_is_taken(url):
    assert url_problem(url) is None


def test_what_the_pattern_refuses_the_server_refuses_too():
    for url in ("ftp://a/", "http://", "http://u:p@a/", "http://a:65536/", "http://a/ b", "http://a/\x7f",
                "http://a\t/", "\x01http://a/"):
        assert not re.fullmatch(URL_PATTERN, url) and url_problem(url), url
