"""Extraction and the process pool: article text without page chrome; time limits; crashed workers."""

from __future__ import annotations

import asyncio
import os
import time

import pytest

from monitor.extract import ExtractError, extract_article
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


async def test_extraction_runs_off_the_event_loop() -> None:
    """Extraction happens in worker processes while the loop keeps serving other tasks.

    (How short the loop's stalls are is measured in bench/fetch.py, not asserted here.)
    """
    pool = CpuPool(2)
    html = page("Long story", PARAGRAPHS * 400)
    ticks = 0
    done = asyncio.Event()

    async def probe() -> None:
        nonlocal ticks
        while not done.is_set():
            await asyncio.sleep(0.005)
            ticks += 1

    try:
        pids = {await pool.run(30, _pid) for _ in range(4)}
        probe_task = asyncio.create_task(probe())
        results = await asyncio.gather(
            *(pool.run(30, extract_article, html, f"https://x.example/{i}") for i in range(4))
        )
        done.set()
        await probe_task
    finally:
        pool.close()
    assert os.getpid() not in pids
    assert all("1,200 residents" in r.text for r in results)
    assert ticks >= 3  # the loop ran other tasks while the pages were being extracted


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


async def test_pool_close_does_not_wait_for_a_long_task() -> None:
    """Shutdown must fit in 10 s even while a worker is deep in a slow page."""
    pool = CpuPool(1)
    task = asyncio.ensure_future(pool.run(60, _spin, 60))
    await asyncio.sleep(0.5)  # the worker is now busy
    t0 = time.monotonic()
    pool.close()
    assert time.monotonic() - t0 < 5
    with pytest.raises(PoolClosed):
        await asyncio.wait_for(task, 5)
