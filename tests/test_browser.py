"""The dashboard in a real browser (headless Chromium) against a daemon on loopback, fed by
loopback feeds: every page loads without a console error, the feeds table shows every feed,
a search finds a known article, the retry button re-queues a failed alert, a title holding
``<script>`` is shown as text, and the pages fit a phone's width."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest

from tests.browser import close, console_errors, new_driver, require_browser
from tests.dashboard_site import KNOWN, XSS_TITLE, Site


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    require_browser()
    s = Site(tmp_path_factory.mktemp("browser")).start()
    try:
        yield s
    finally:
        s.stop()


@pytest.fixture(scope="module")
def browser(site: Site) -> Iterator[Any]:
    b = new_driver()
    try:
        yield b
    finally:
        close(b)


def visit(browser: Any, site: Site, path: str) -> None:
    browser.get(site.base + path)
    assert browser.find_element("css selector", "main"), path


def wait_for(browser: Any, css: str) -> Any:
    """The element once the page that has it has loaded (a bounded wait, not a sleep)."""
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(browser, 20).until(lambda b: b.find_element("css selector", css))


def links(browser: Any, pattern: str) -> list[str]:
    hrefs = [a.get_attribute("href") for a in browser.find_elements("css selector", "a[href]")]
    return sorted({h for h in hrefs if h and re.search(pattern, h)})


def test_every_page_loads_without_console_errors(browser: Any, site: Site) -> None:
    pages = ["/", "/feeds", "/alerts", "/alerts?failed=1", "/articles", "/articles?q=evacuation",
             "/watchlists", "/watchlists/evacuations"]  # fmt: skip
    visit(browser, site, "/feeds")
    pages += [h.removeprefix(site.base) for h in links(browser, r"/feeds/\d+$")]
    visit(browser, site, "/articles")
    pages += [h.removeprefix(site.base) for h in links(browser, r"/articles/\d+$")]
    console_errors(browser)
    seen = set()
    for path in pages:
        visit(browser, site, path)
        assert console_errors(browser) == [], path
        seen.add(path)
    assert len([p for p in seen if re.match(r"/articles/\d+$", p)]) == 4
    assert len([p for p in seen if re.match(r"/feeds/\d+$", p)]) == 3


def test_the_feeds_table_shows_every_feed_and_filters_as_you_type(browser: Any, site: Site) -> None:
    visit(browser, site, "/feeds")
    rows = browser.find_elements("css selector", "#feeds-table tbody tr")
    names = sorted(r.find_element("css selector", "td").text for r in rows)
    assert names == ["Down Feed", "Harbour Gazette", "Hostile <i>Feed</i>"]
    failing = browser.find_element("css selector", "#feeds-table tr.status-failing")
    assert "Down Feed" in failing.text
    box = browser.find_element("css selector", "input[data-filter]")
    box.send_keys("gazette")
    shown = [
        r
        for r in browser.find_elements("css selector", "#feeds-table tbody tr")
        if r.is_displayed()
    ]
    assert [r.find_element("css selector", "td").text for r in shown] == ["Harbour Gazette"]
    assert console_errors(browser) == []


def test_a_search_finds_the_known_article(browser: Any, site: Site) -> None:
    visit(browser, site, "/articles")
    box = browser.find_element("css selector", "input[name=q]")
    box.send_keys('"evacuation order" hill')
    box.submit()
    wait_for(browser, "#results .hit")
    titles = [e.text for e in browser.find_elements("css selector", "#results .hit .title")]
    assert titles == [KNOWN]
    marks = [m.text.lower() for m in browser.find_elements("css selector", "#results mark")]
    assert "evacuation order" in marks
    assert console_errors(browser) == []


def test_the_retry_button_requeues_a_failed_alert(browser: Any, site: Site) -> None:
    visit(browser, site, "/alerts?failed=1")
    cards = browser.find_elements("css selector", "article.alert")
    assert len(cards) == 1
    alert_id = cards[0].get_attribute("id").removeprefix("alert-")
    assert "failed" in cards[0].find_element("css selector", ".pill.failed").text
    cards[0].find_element("css selector", "button.retry").click()
    notice = wait_for(browser, ".notice, .error")
    assert "Re-queued 1 delivery" in notice.text
    assert site.daemon is not None
    alert = site.call(lambda: site.daemon.storage.get_alert(alert_id))  # type: ignore[union-attr]
    assert [d.state for d in alert.deliveries] != ["failed"]
    visit(browser, site, "/alerts?failed=1")
    assert browser.find_elements("css selector", "article.alert") == []


def test_a_title_holding_a_script_tag_is_shown_as_text(browser: Any, site: Site) -> None:
    visit(browser, site, "/articles?q=pwned")
    browser.find_element("css selector", "#results .hit .title").click()
    assert wait_for(browser, "h1.article-title").text == XSS_TITLE
    assert browser.execute_script("return typeof window.pwned") == "undefined"
    assert browser.find_elements("css selector", "main img") == []
    assert console_errors(browser) == []


def test_pages_fit_a_phone(site: Site) -> None:
    phone = new_driver(390, 844)
    try:
        for path in ["/", "/feeds", "/alerts", "/articles?q=evacuation", "/watchlists"]:
            visit(phone, site, path)
            overflow = phone.execute_script(
                "return document.documentElement.scrollWidth - window.innerWidth"
            )
            assert overflow <= 1, (path, overflow)
    finally:
        close(phone)
