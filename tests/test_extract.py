"""Extraction and the process pool: article text without page chrome; time limits; crashed workers."""

from __future__ import annotations

import asyncio
import os
import socket
import time
from pathlib import Path

import pytest

from monitor.extract import Extracted, ExtractError, extract_article
from monitor.workers import CpuPool, PoolClosed, TaskTimeout, WorkerCrashed
from tests.newsroom import page

PARAGRAPHS = [
    "Civil protection officials issued an evacuation order for three hill villages on Tuesday night "
    "as wildfires driven by dry winds moved down the valley.",
    "About 1,200 residents were taken by bus to a sports hall in the market town, where volunteers "
    "handed out blankets and water.",
]


def test_extracts_article_text_without_chrome() -> None:
    html = page("Villages evacuated as flames spread", PARAGRAPHS)
    ex = extract_article(html, "https://news.example.org/a", metadata=True)
    assert "evacuation order for three hill villages" in ex.text
    assert "1,200 residents" in ex.text
    for chrome in ("Most read", "FEMA", "Weekend in Lisbon", "Comments", "Test Gazette", "Sign up"):
        assert chrome not in ex.text, chrome
    assert ex.title == "Villages evacuated as flames spread"
    assert ex.text.startswith("Civil protection")  # the headline is not repeated as body text
    assert ex.published is not None and ex.published.tzinfo is not None
    assert ex.language == "en"


def test_without_metadata_the_feed_title_is_the_headline() -> None:
    html = page("Villages evacuated as flames spread", PARAGRAPHS)
    ex = extract_article(html, "https://news.example.org/a", "Villages evacuated as flames spread")
    assert ex.text.startswith("Civil protection")
    assert ex.published is None and ex.title is None  # not read: the feed has them
    assert ex.language == "en"  # from <html lang>, which costs nothing


def test_thin_fast_result_falls_back_to_full_extraction() -> None:
    """An unusual layout (text in bare divs) still yields its text."""
    body = "".join(f"<div>{p} {p}</div><br>" for p in PARAGRAPHS)
    html = f"<html><body><div><div>{body}</div></div></body></html>".encode()
    ex = extract_article(html, "https://news.example.org/odd")
    assert "1,200 residents" in ex.text


def test_non_utf8_page() -> None:
    html = (
        '<html><head><meta charset="windows-1251"><title>Т</title></head><body><article>'
        "<p>Пожарные эвакуировали жителей трёх деревень под Новосибирском во вторник вечером, "
        "сообщили в управлении по чрезвычайным ситуациям области.</p>"
        "<p>Огонь распространялся быстро из-за сильного ветра и сухой погоды последних недель.</p>"
        "</article></body></html>"
    ).encode("windows-1251")
    ex = extract_article(html, "https://news.example.org/ru")
    assert "Новосибирском" in ex.text


@pytest.mark.parametrize(
    "body", [b"", b"   ", b"<html><body><nav>Home</nav><aside>Most read</aside></body></html>"]
)
def test_no_text_is_a_clear_error(body: bytes) -> None:
    with pytest.raises(ExtractError):
        extract_article(body, "https://news.example.org/empty")


def _extract_after(gate: str, html: bytes, url: str) -> Extracted:
    """In a worker: wait (busy, bounded) until the parent's event loop creates ``gate``."""
    end = time.monotonic() + 60
    while not os.path.exists(gate) and time.monotonic() < end:
        os.sched_yield()
    return extract_article(html, url)


def _announce_then_spin(sock: str, seconds: float) -> str:
    """In a worker: tell the test (over its Unix socket) that the task runs, then stay busy."""
    with socket.socket(socket.AF_UNIX) as s:
        s.connect(sock)
        s.sendall(b"busy")
    return _spin(seconds)


def _spin(seconds: float) -> str:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        pass
    return "done"


def _die() -> None:
    os._exit(3)


def _pid() -> int:
    return os.getpid()


async def test_pool_time_limit_is_enforced_inside_the_worker() -> None:
    pool = CpuPool(1)
    try:
        t0 = time.monotonic()
        with pytest.raises(TaskTimeout):
            await pool.run(0.3, _spin, 30)
        assert time.monotonic() - t0 < 5
        # The same worker is still usable afterwards.
        assert await pool.run(5, _spin, 0.01) == "done"
    finally:
        pool.close()


async def test_pool_recovers_from_a_crashed_worker() -> None:
    pool = CpuPool(1)
    try:
        first = await pool.run(5, _pid)
        with pytest.raises(WorkerCrashed):  # that task fails; the worker is replaced
            await pool.run(5, _die)
        second = await pool.run(5, _pid)
        assert second != first  # a fresh worker serves the next task
    finally:
        pool.close()


async def test_extraction_runs_off_the_event_loop(tmp_path: Path) -> None:
    """Extraction happens in worker processes while the loop keeps serving other tasks.

    Each task waits, in its worker, for a file that only the event loop creates once every
    task is under way: if running them blocked the loop, they could never finish. (How short
    the loop's stalls are is measured in bench/fetch.py, not asserted here.)
    """
    pool = CpuPool(2)
    html = page("Long story", PARAGRAPHS * 400)
    gate = tmp_path / "gate"
    try:
        pids = {await pool.run(30, _pid) for _ in range(4)}
        tasks = [
            asyncio.ensure_future(
                pool.run(60, _extract_after, str(gate), html, f"https://x.example/{i}")
            )
            for i in range(2)
        ]
        await asyncio.sleep(0)  # both tasks start and hand their pages to the workers
        gate.write_text("go")  # the loop is free while the workers wait and then extract
        results = await asyncio.wait_for(asyncio.gather(*tasks), 120)
    finally:
        pool.close()
    assert os.getpid() not in pids
    assert all("1,200 residents" in r.text for r in results)


def test_page_with_only_chrome_never_yields_chrome_text() -> None:
    html = (
        b"<html><body><header><nav>Home wildfire News</nav></header>"
        b"<aside class='sidebar'>FEMA trending today: wildfire maps and more words here</aside>"
        b"<p>Short teaser.</p><footer>copyright wildfire</footer></body></html>"
    )
    try:
        text = extract_article(html, "https://news.example.org/teaser").text
    except ExtractError:
        return
    assert "wildfire" not in text and "FEMA" not in text


# --- pruning on broken or unusual markup: the article must survive -------------------------

STORY = [
    "The regional council approved the new flood barrier for the old harbour on Monday, after "
    "three years of studies and two public consultations in the lower town.",
    "Engineers expect the first section, a movable wall along the quay, to be finished before "
    "the autumn storms, while the pumping station follows next spring.",
    "Shop owners on the waterfront welcomed the decision but asked for compensation during the "
    "months of building work, when the quay will be closed to delivery vans.",
]
MENU = "".join(f'<li><a href="/s{i}">Menu entry {i}</a></li>' for i in range(8))
SIDEBAR_LINKS = (
    '<ul><li><a href="/x">Trending sidebar story about a football transfer</a></li>'
    '<li><a href="/y">Trending sidebar story about a celebrity wedding</a></li></ul>'
)


def _story_html() -> str:
    return "".join(f"<p>{p}</p>" for p in STORY)


def _assert_story(text: str) -> None:
    for para in STORY:
        assert para in text, para[:40]
    for chrome in ("Menu entry", "Trending sidebar", "football", "Copyright"):
        assert chrome not in text, chrome


def test_page_wrapped_in_one_form_keeps_its_article() -> None:
    """ASP.NET WebForms pages put the whole document in one <form>."""
    html = (
        '<html><body><form method="post" action="./story.aspx" id="aspnetForm">'
        '<input type="hidden" name="__VIEWSTATE" value="abc">'
        f'<div id="top"><nav><ul>{MENU}</ul></nav></div>'
        f'<div id="content"><h1>Harbour barrier approved</h1>{_story_html()}</div>'
        f'<div id="side"><aside>{SIDEBAR_LINKS}</aside></div>'
        '<div id="bottom"><footer>Copyright Harbour Times</footer></div>'
        "</form></body></html>"
    ).encode()
    _assert_story(extract_article(html, "https://news.example.org/story.aspx").text)


def test_article_inside_an_unclosed_header_is_kept() -> None:
    """A <header> never closed swallows the rest of the page, article included."""
    html = (
        '<html><body><header><div class="logo">Harbour Times</div>'
        f"<nav><ul>{MENU}</ul></nav>"
        f'<div class="story"><h1>Harbour barrier approved</h1>{_story_html()}</div>'
        f"<aside>{SIDEBAR_LINKS}</aside><footer>Copyright Harbour Times</footer>"
        "</body></html>"
    ).encode()
    _assert_story(extract_article(html, "https://news.example.org/unclosed").text)


def test_role_banner_wrapping_the_content_is_kept() -> None:
    html = (
        '<html><body><div role="banner"><div class="brand">Harbour Times</div>'
        f'<div role="navigation"><ul>{MENU}</ul></div>'
        f'<div class="story">{_story_html()}</div></div>'
        f'<div role="complementary">{SIDEBAR_LINKS}</div>'
        '<div role="contentinfo">Copyright Harbour Times</div></body></html>'
    ).encode()
    _assert_story(extract_article(html, "https://news.example.org/banner").text)


def test_article_inside_an_aside_is_not_dropped_by_trafilatura_either() -> None:
    """An <aside> (never closed, or a theme's odd markup) holding the article: kept as content,
    although trafilatura itself deletes every <aside>."""
    html = (
        f'<html><body><div class="top"><nav><ul>{MENU}</ul></nav></div>'
        f'<div class="wrap"><aside class="sidebar"><div class="post">{_story_html()}</div>'
        f'<nav class="sidebar-nav"><ul>{MENU}</ul></nav></aside></div>'
        "<footer>Copyright Harbour Times</footer></body></html>"
    ).encode()
    _assert_story(extract_article(html, "https://news.example.org/aside").text)


def test_a_menu_holding_most_of_the_text_stays_out() -> None:
    """A mega menu may hold most of a page's text: it is not pruned then, but it is no article
    either, and trafilatura still drops it."""
    mega = "".join(
        f'<li><a href="/t{i}">Topic {i}</a> <span>Everything about topic {i}: services, forms, '
        f"contacts and opening hours of the office in charge</span></li>"
        for i in range(30)
    )
    html = (
        f'<html><body><nav id="mainnavigation"><ul>{mega}</ul></nav>'
        f'<div class="story"><h1>Harbour barrier approved</h1>{_story_html()}</div>'
        "</body></html>"
    ).encode()
    text = extract_article(html, "https://news.example.org/mega").text
    _assert_story(text)
    assert "opening hours" not in text


def test_read_more_links_inside_the_article_are_dropped() -> None:
    """Short blocks that are mostly a link point elsewhere ("Read more: ..."), they are not the
    article; a paragraph with a link in it is."""
    html = page(
        "Harbour barrier approved",
        [*STORY[:2], "READMORE", STORY[2]],
    ).replace(
        b"<p>READMORE</p>",
        b'<p>Read more: <a href="/other">Storm damage in the lower town: the full list</a></p>'
        b'<p>The council <a href="/minutes">published the minutes</a> of the meeting, which '
        b"record a vote of 31 to 4 in favour of the barrier and its financing plan.</p>",
    )
    text = extract_article(html, "https://news.example.org/readmore").text
    assert "Storm damage in the lower town" not in text
    assert "published the minutes of the meeting" in text
    for para in STORY:
        assert para in text


def test_a_page_that_is_a_list_of_links_keeps_its_links() -> None:
    """When link blocks are most of the text, the links are the content (a link roundup)."""
    items = "".join(
        f'<li><a href="https://example.net/{i}">Roundup item {i}: a longer headline of a story '
        f"worth reading today</a> via Example Net</li>"
        for i in range(12)
    )
    html = f"<html><body><article><h1>Links of the day</h1><ul>{items}</ul></article></body></html>"
    text = extract_article(html.encode(), "https://blog.example.org/links").text
    assert "Roundup item 0" in text and "Roundup item 11" in text


def test_short_article_is_not_replaced_by_longer_other_text() -> None:
    """A short article (under THIN_TEXT) gets a second look from trafilatura's fallbacks; here
    they pick a block of other text, four times as long, that shares nothing with the article.
    Longer is not better: the article stays."""
    other = "".join(
        f"<p>Notice number {i}: this block, like the others here, is long, full of commas, "
        "clauses, and words, so that a generic extractor scoring text density will, quite "
        f"reasonably, prefer it to the short article above, which is what this test is about.</p>"
        for i in range(8)
    )
    html = (
        f"<html><body><div id='page'><article><h1>Quay closed</h1>{_story_html()}</article>"
        f"<div id='notices'>{other}</div></div></body></html>"
    ).encode()
    text = extract_article(html, "https://news.example.org/short").text
    _assert_story(text)
    assert "Notice number" not in text


def test_fallback_result_that_continues_the_fast_one_is_taken() -> None:
    """The other way round: the fast path finds one paragraph, the fallbacks that paragraph and
    the text after it (three times as long): more of the same text, so their result wins."""
    html = (
        f"<html><body><div><p>{STORY[0]}</p><div>{STORY[1]}<br>{STORY[2]}</div></div></body></html>"
    ).encode()
    text = extract_article(html, "https://news.example.org/odd2").text
    assert all(para in text for para in STORY)


def test_comments_are_pruned_but_a_forum_threads_posts_are_its_content() -> None:
    posts = "".join(
        f'<div class="comment"><div class="comment-author">user{i}</div>'
        f'<div class="comment-body"><p>{p}</p></div></div>'
        for i, p in enumerate(STORY)
    )
    ld = (
        '<script type="application/ld+json">{"@context": "https://schema.org", '
        '"@type": "DiscussionForumPosting", "headline": "Harbour barrier"}</script>'
    )
    for forum in (True, False):
        html = (
            f"<html><head>{ld if forum else ''}</head><body><h1>Harbour barrier thread</h1>"
            f"<div id='comments'>{posts}</div></body></html>"
        ).encode()
        try:
            text = extract_article(html, "https://forum.example.org/t/1").text
        except ExtractError:
            text = ""
        assert all((para in text) == forum for para in STORY), forum


async def test_pool_close_does_not_wait_for_a_long_task(tmp_path: Path) -> None:
    """Shutdown must fit in 10 s even while a worker is deep in a slow page: close() kills the
    busy worker (it does not wait for its task) and the caller gets PoolClosed."""
    busy = asyncio.Event()

    async def announced(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(4)
        busy.set()
        writer.close()

    sock = str(tmp_path / "busy.sock")
    server = await asyncio.start_unix_server(announced, sock)
    pool = CpuPool(1)
    try:
        task = asyncio.ensure_future(pool.run(120, _announce_then_spin, sock, 120))
        await asyncio.wait_for(busy.wait(), 60)  # the worker is inside the task
        (worker,) = pool._busy
        pool.close()
        assert worker.proc.exitcode is not None  # killed and reaped by close(), not waited for
        with pytest.raises(PoolClosed):
            await asyncio.wait_for(task, 30)
    finally:
        pool.close()
        server.close()
