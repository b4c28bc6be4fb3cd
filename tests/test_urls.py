"""Canonical URLs: the same article spelled differently must come out identical."""

from __future__ import annotations

import pytest

from monitor.urls import TRACKING_PARAMS, canonical_url, is_tracking_param


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("HTTP://Example.COM/a/B", "http://example.com/a/B"),  # path case kept
        ("https://example.com:443/x", "https://example.com/x"),
        ("http://example.com:80/x", "http://example.com/x"),
        ("http://example.com:8080/x", "http://example.com:8080/x"),
        ("https://example.com", "https://example.com/"),
        ("https://example.com/a#section-2", "https://example.com/a"),
        ("https://example.com/a?utm_source=rss&utm_medium=feed", "https://example.com/a"),
        ("https://example.com/a?id=7&utm_campaign=x&page=2", "https://example.com/a?id=7&page=2"),
        ("https://example.com/a?b=2&a=1", "https://example.com/a?b=2&a=1"),  # order kept
        (
            "https://example.com/a?fbclid=1&gclid=2&dclid=3&msclkid=4&mc_cid=5&mc_eid=6&yclid=7"
            "&igshid=8&_hsenc=9&_hsmi=10&ref_src=11&q=keep",
            "https://example.com/a?q=keep",
        ),
        ("https://example.com/a?UTM_Source=x&Q=1", "https://example.com/a?Q=1"),
        ("https://example.com/a?", "https://example.com/a"),
        ("https://example.com/a?flag&x=", "https://example.com/a?flag&x="),
        ("https://example.com/caf%C3%A9", "https://example.com/caf%C3%A9"),
        ("https://example.com/café", "https://example.com/caf%C3%A9"),  # same as above
        ("https://Bücher.example/", "https://xn--bcher-kva.example/"),
        ("http://[2001:DB8::1]:80/x", "http://[2001:db8::1]/x"),
        ("  https://example.com/a  ", "https://example.com/a"),
        ("https://example.com./a", "https://example.com/a"),
    ],
)
def test_canonical_forms(url: str, expected: str) -> None:
    assert canonical_url(url) == expected


def test_relative_urls_resolve_against_base() -> None:
    base = "https://news.example.org/world/index.html?utm_source=x"
    assert canonical_url("story.html", base) == "https://news.example.org/world/story.html"
    assert canonical_url("/a?x=1#top", base) == "https://news.example.org/a?x=1"
    assert canonical_url("//cdn.example.org/p", base) == "https://cdn.example.org/p"
    assert canonical_url("story.html") is None  # relative without a base is unusable


@pytest.mark.parametrize(
    "url",
    [
        "",
        "   ",
        "mailto:desk@example.org",
        "javascript:alert(1)",
        "ftp://example.org/file",
        "data:text/html,hi",
        "https://",
        "https://example.com:99999/",
        "https://exa mple.com/",
        "tag:example.org,2024:1",
    ],
)
def test_unusable_input_gives_none(url: str) -> None:
    assert canonical_url(url) is None


def test_non_string_gives_none() -> None:
    assert canonical_url(None) is None  # type: ignore[arg-type]


def test_equivalent_spellings_collapse() -> None:
    spellings = [
        "https://Example.org/news/1?utm_source=twitter#comments",
        "HTTPS://example.org:443/news/1?fbclid=abc",
        "https://example.org/news/1",
    ]
    assert len({canonical_url(u) for u in spellings}) == 1


def test_tracking_list_is_documented_and_used() -> None:
    assert {"fbclid", "gclid", "mc_cid", "mc_eid", "igshid", "_hsenc"} <= TRACKING_PARAMS
    assert is_tracking_param("utm_content") and is_tracking_param("pk_campaign")
    assert not is_tracking_param("id") and not is_tracking_param("ref")


def test_idempotent() -> None:
    for url in ["https://example.com/a b?q=ä&utm_x=1", "http://EXAMPLE.com:80/%7Euser/"]:
        once = canonical_url(url)
        assert once is not None and canonical_url(once) == once
