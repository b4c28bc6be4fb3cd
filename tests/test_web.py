"""The dashboard over HTTP: `feedwatch web` on a database the real daemon filled, and the
daemon's own server. Hostile titles stay text, every POST needs its CSRF token, a token-guarded
server needs a login, secrets never reach a page, the try box keeps the SSRF guard."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from yarl import URL

from monitor.settings import Config, load_config
from monitor.web.serve import serve
from storage import open_storage
from tests.dashboard_site import HEADER_SECRET, KNOWN, SECRET, build_database
from tests.harness import feedwatch

TOKEN = "dashboard-token-0123456789abcdef"
PAGES = ["/", "/feeds", "/alerts", "/articles", "/articles?q=evacuation", "/watchlists",
         "/watchlists/evacuations", "/watchlists/ports", "/alerts?failed=1"]  # fmt: skip


@pytest.fixture(scope="module")
def site_config(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_database(tmp_path_factory.mktemp("site"))


def variant(config: Path, tmp_path: Path, old: str, new: str) -> Path:
    """The site's config with one thing changed (the same database)."""
    text = config.read_text()
    assert old in text
    path = tmp_path / "variant.yaml"
    path.write_text(text.replace(old, new))
    return path


class Web:
    def __init__(self, base: str, http: aiohttp.ClientSession, cfg: Config) -> None:
        self.base, self.http, self.cfg = base, http, cfg

    async def get(self, path: str, **kw: object) -> tuple[int, str, aiohttp.ClientResponse]:
        async with self.http.get(self.base + path, allow_redirects=False, **kw) as r:  # type: ignore[arg-type]
            return r.status, await r.text(), r

    async def post(
        self, path: str, data: dict[str, str], **kw: object
    ) -> tuple[int, str, aiohttp.ClientResponse]:
        async with self.http.post(self.base + path, data=data, allow_redirects=False, **kw) as r:  # type: ignore[arg-type]
            return r.status, await r.text(), r

    async def csrf(self, path: str = "/alerts") -> str:
        _, html, _ = await self.get(path)
        found = re.search(r'name="csrf" value="([0-9a-f]+)"', html)
        assert found, html[:500]
        return found.group(1)


async def _serve(cfg: Config) -> AsyncIterator[str]:
    stop = asyncio.Event()
    port: asyncio.Future[int] = asyncio.get_running_loop().create_future()
    task = asyncio.create_task(serve(cfg, stop, port.set_result))
    async with asyncio.timeout(30):
        done, _ = await asyncio.wait({task, port}, return_when=asyncio.FIRST_COMPLETED)
    if task in done:
        task.result()
    try:
        yield f"http://127.0.0.1:{port.result()}"
    finally:
        stop.set()
        assert await task == 0


@pytest.fixture
async def web_ui(site_config: Path) -> AsyncIterator[Web]:
    cfg = load_config(site_config, env={})
    async for base in _serve(cfg):
        async with aiohttp.ClientSession() as http:
            yield Web(base, http, cfg)


async def test_every_page_renders_and_hostile_text_stays_text(web_ui: Web) -> None:
    for path in PAGES:
        status, html, resp = await web_ui.get(path)
        assert status == 200, (path, html[:300])
        assert "<script>window.pwned" not in html and "onerror=alert" not in html.replace(
            "onerror=alert(1)&gt;", ""
        )
        assert resp.headers["X-Frame-Options"] == "DENY"
        assert "script-src 'self'" in resp.headers["Content-Security-Policy"]
        assert "unsafe-inline" not in resp.headers["Content-Security-Policy"]
        assert resp.headers["Referrer-Policy"] == "same-origin"
        assert SECRET not in html and HEADER_SECRET not in html
        assert len(re.findall(r"<script\b", html)) == 1  # only /static/app.js
    _, html, _ = await web_ui.get("/articles?q=pwned")
    assert "&lt;script&gt;window.<mark>pwned</mark>=1&lt;/script&gt;" in html
    hostile = re.search(r'href="/articles/(\d+)">&lt;script', html)
    assert hostile
    _, html, _ = await web_ui.get(f"/articles/{hostile.group(1)}")
    assert '<h1 class="article-title">&lt;script&gt;window.pwned=1&lt;/script&gt;' in html
    assert "&lt;img src=x onerror=alert(1)&gt;" in html
    _, feeds, _ = await web_ui.get("/feeds")
    assert "Hostile &lt;i&gt;Feed&lt;/i&gt;" in feeds and "<i>Feed</i>" not in feeds
    for name in ("Harbour Gazette", "Down Feed"):
        assert name in feeds


async def test_feeds_table_sorts_filters_and_shows_each_feeds_history(web_ui: Web) -> None:
    _, html, _ = await web_ui.get("/feeds?sort=errors&dir=desc")
    rows = re.findall(r'<tr class="status-(\w+)">', html)
    assert rows[0] == "failing" and sorted(rows) == ["failing", "ok", "ok"]
    _, html, _ = await web_ui.get("/feeds?status=failing")
    assert "Down Feed" in html and "Harbour Gazette" not in html
    _, html, _ = await web_ui.get("/feeds?tag=local")
    assert "Harbour Gazette" in html and "Down Feed" not in html
    down = re.search(r'href="/feeds/(\d+)">Down Feed', (await web_ui.get("/feeds"))[1])
    assert down
    status, html, _ = await web_ui.get(f"/feeds/{down.group(1)}")
    assert status == 200 and "HTTP 500" in html
    assert "No failed polls recorded" not in html
    gazette = re.search(r'href="/feeds/(\d+)">Harbour Gazette', (await web_ui.get("/feeds"))[1])
    assert gazette
    _, html, _ = await web_ui.get(f"/feeds/{gazette.group(1)}")
    assert KNOWN in html and "No failed polls recorded" in html
    assert (await web_ui.get("/feeds/999999"))[0] == 404


async def test_search_finds_ranks_highlights_and_explains_errors(web_ui: Web) -> None:
    status, html, _ = await web_ui.get('/articles?q="evacuation+order"+NOT+drill')
    assert status == 200
    assert "hill villages" in html and "School runs a fire drill" not in html
    assert "<mark>evacuation order</mark>" in html
    _, html, _ = await web_ui.get("/articles?q=strike&feed=Harbour+Gazette&since=7d")
    assert "Dock workers <mark>strike</mark> in Lisbon" in html
    _, html, _ = await web_ui.get("/articles?q=strike&tag=odd")
    assert "Dock workers" not in html
    status, html, _ = await web_ui.get("/articles?q=%22unclosed")
    assert status == 400 and "closing quote" in html
    status, html, _ = await web_ui.get("/articles?q=x&feed=Nope")
    assert status == 400 and "no configured feed named" in html
    hit = re.search(r'href="/articles/(\d+)">', (await web_ui.get("/articles?q=firefighters"))[1])
    assert hit
    _, html, _ = await web_ui.get(f"/articles/{hit.group(1)}")
    assert "Firefighters fought the blaze" in html
    assert re.search(r"evacuations\s*<span class=\"pill matched\">matched", html)
    assert re.search(r"ports\s*<span class=\"pill no\">no match", html)
    drill = re.search(r'href="/articles/(\d+)">School runs', (await web_ui.get("/articles"))[1])
    assert drill
    _, html, _ = await web_ui.get(f"/articles/{drill.group(1)}")
    assert re.search(r"evacuations\s*<span class=\"pill nearly\">nearly matched", html)
    assert "exclude term" in html


async def test_every_post_needs_its_csrf_token_and_this_origin(web_ui: Web) -> None:
    _, html, _ = await web_ui.get("/alerts?failed=1")
    failed = re.search(r'name="alert" value="(msg_[0-9a-f]+)"', html)
    assert failed, "a failed alert with a retry button"
    alert_id = failed.group(1)
    status, html, _ = await web_ui.post("/alerts/retry", {"alert": alert_id})
    assert status == 403 and "expired" in html
    token = await web_ui.csrf()
    status, html, _ = await web_ui.post(
        "/alerts/retry", {"alert": alert_id, "csrf": token}, headers={"Origin": "http://evil.test"}
    )
    assert status == 403 and "another site" in html
    status, _, resp = await web_ui.post(
        "/alerts/retry", {"alert": alert_id, "csrf": token, "back": "https://evil.test/"}
    )
    assert status == 303 and resp.headers["Location"] == "/alerts?done=1"
    st = open_storage(web_ui.cfg.storage.url)
    await st.open("readonly")
    try:
        alert = await st.get_alert(alert_id)
    finally:
        await st.close()
    assert alert is not None and [d.state for d in alert.deliveries] == ["pending"]
    _, html, _ = await web_ui.get("/alerts?done=1")
    assert "Re-queued 1 delivery" in html
    assert (await web_ui.get("/alerts/retry"))[0] == 405  # state changes are POSTs only


async def test_a_foreign_host_name_is_refused_without_a_token(web_ui: Web) -> None:
    status, _, _ = await web_ui.get("/", headers={"Host": "rebound.evil.test"})
    assert status == 421
    assert (await web_ui.get("/", headers={"Host": "localhost"}))[0] == 200


async def test_the_try_box_explains_text_and_keeps_the_ssrf_guard(
    site_config: Path, tmp_path: Path
) -> None:
    path = variant(
        site_config, tmp_path, "allow_private_networks: true", "allow_private_networks: false"
    )
    cfg = load_config(path, env={})
    async for base in _serve(cfg):
        async with aiohttp.ClientSession() as http:
            ui = Web(base, http, cfg)
            token = await ui.csrf("/watchlists/evacuations")
            status, html, _ = await ui.post(
                "/watchlists/evacuations/try",
                {"csrf": token, "text": "Flood update\nAn evacuation order was issued at noon."},
            )
            assert (
                status == 200 and "pill matched" in html and "<mark>evacuation order</mark>" in html
            )
            status, html, _ = await ui.post(
                "/watchlists/evacuations/try",
                {"csrf": token, "text": "Fire drill\nAn evacuation order drill was held."},
            )
            assert "nearly matched" in html and "exclude term" in html
            status, html, _ = await ui.post(
                "/watchlists/evacuations/try", {"csrf": token, "url": "http://127.0.0.1:9/x"}
            )
            assert status == 400 and "could not read the page" in html
            assert re.search(r"(private|loopback|not allowed|refus)", html), html[-800:]
            status, html, _ = await ui.post(
                "/watchlists/evacuations/try", {"csrf": token, "url": "file:///etc/passwd"}
            )
            assert status == 400 and "http:// or https://" in html and "root:" not in html


async def test_a_token_guarded_dashboard_needs_a_login(site_config: Path, tmp_path: Path) -> None:
    path = variant(
        site_config,
        tmp_path,
        'server: {listen: "127.0.0.1:0"}',
        'server: {listen: "127.0.0.1:0", token: "${FEEDWATCH_TOKEN}"}',
    )
    cfg = load_config(path, env={"FEEDWATCH_TOKEN": TOKEN})
    async for base in _serve(cfg):
        jar = aiohttp.CookieJar(unsafe=True)
        async with aiohttp.ClientSession(cookie_jar=jar) as http:
            ui = Web(base, http, cfg)
            status, _, resp = await ui.get("/feeds?status=ok")
            location = URL(resp.headers["Location"])
            assert status == 303 and location.path == "/login"
            assert location.query["next"] == "/feeds?status=ok"
            assert (await ui.get("/", headers={"Authorization": f"Bearer {TOKEN}"}))[0] == 200
            assert (await ui.get("/static/app.css"))[0] == 200
            status, html, _ = await ui.get("/login")
            assert status == 200 and TOKEN not in html
            token = await ui.csrf("/login")
            status, html, _ = await ui.post("/login", {"csrf": token, "token": "wrong"})
            assert status == 401 and "wrong token" in html
            status, _, resp = await ui.post(
                "/login", {"csrf": token, "token": TOKEN, "next": "/feeds"}
            )
            assert status == 303 and resp.headers["Location"] == "/feeds"
            cookie = resp.headers["Set-Cookie"]
            assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and TOKEN not in cookie
            status, html, _ = await ui.get("/feeds")
            assert status == 200 and "Log out" in html
            # The form token of a logged-in page is bound to its session.
            assert await ui.csrf() != token
            status, _, _ = await ui.post("/logout", {"csrf": await ui.csrf()})
            assert status == 303
            assert (await ui.get("/"))[0] == 303


async def test_web_never_creates_a_database(tmp_path: Path) -> None:
    path = tmp_path / "feedwatch.yaml"
    path.write_text(f"storage: {{url: {tmp_path / 'data' / 'fw.db'}}}\n")
    code, _out, err = await feedwatch("web", "--config", str(path))
    assert code == 1 and "no database yet" in err
    assert not (tmp_path / "data").exists()


async def test_a_story_shows_its_copies_from_other_outlets(tmp_path: Path) -> None:
    """One alert per story: the alerts page lists the copies under it, each with its outlet,
    its article and its own deliveries; a copy's article page names the story's alert."""
    from datetime import UTC, datetime, timedelta

    from storage.base import FeedSpec, NewAlert, NewArticle

    feeds = {f"https://{n}.example.org/feed.xml": name
             for n, name in (("a", "Gazette"), ("b", "Valley Times"), ("c", "Coast News"))}  # fmt: skip
    cfg_path = tmp_path / "feedwatch.yaml"
    cfg_path.write_text(
        f"storage: {{url: {tmp_path / 'fw.db'}}}\n"
        "feeds:\n" + "".join(f'  - {{url: "{u}", name: "{n}"}}\n' for u, n in feeds.items())
        + "channels: {hook: {type: webhook, url: 'https://hooks.example.org/x'}}\n"
        "watchlists: [{name: fires, keywords: [fire], channels: [hook]}]\n"
    )  # fmt: skip
    t0 = datetime.now(UTC) - timedelta(hours=2)
    store = open_storage(str(tmp_path / "fw.db"))
    await store.open()
    try:
        states = await store.sync_feeds([FeedSpec(u, n) for u, n in feeds.items()])
        ids = [states[u].id for u in feeds]

        def copy(n: int, feed: str) -> NewArticle:
            aid = f"msg_copy{n}"
            payload = {"type": "also_reported", "id": aid, "alert_id": "msg_story",
                       "watchlist": "fires",
                       "article": {"url": f"https://x.example.org/{n}", "title": f"Copy {n}",
                                   "feed": feed}}  # fmt: skip
            alert = NewAlert(aid, "fires", payload, ["hook"], kind="also_reported",
                             story_alert_id="msg_story")  # fmt: skip
            return NewArticle(feed_id=ids[n], guid=f"g{n}", url=f"https://x.example.org/{n}",
                              canonical_url=f"https://x.example.org/{n}", title=f"Copy {n}",
                              fetched_at=t0 + timedelta(minutes=n), alerts=[alert])  # fmt: skip

        story = {"type": "match", "id": "msg_story", "watchlist": "fires",
                 "article": {"url": "https://x.example.org/0", "title": "Warehouse fire",
                             "feed": "Gazette"},
                 "matches": [{"kind": "keyword", "term": "fire", "text": "fire",
                              "snippet": "Warehouse fire"}]}  # fmt: skip
        first = NewArticle(feed_id=ids[0], guid="g0", url="https://x.example.org/0",
                           canonical_url="https://x.example.org/0", title="Warehouse fire",
                           fetched_at=t0, alerts=[NewAlert("msg_story", "fires", story, ["hook"])])  # fmt: skip
        stored = await store.add_articles([first, copy(1, "Valley Times"), copy(2, "Coast News")])
    finally:
        await store.close()
    cfg = load_config(cfg_path, env={})
    async for base in _serve(cfg):
        async with aiohttp.ClientSession() as http:
            ui = Web(base, http, cfg)
            status, html, _ = await ui.get("/alerts")
            assert status == 200
            assert html.count('class="card alert"') == 1  # the copies are not alerts of their own
            assert "Also reported by 2 other outlets (2 copies)" in html
            for title, outlet in (("Copy 1", "Valley Times"), ("Copy 2", "Coast News")):
                assert title in html and outlet in html
            assert f'href="/articles/{stored[2]}"' in html
            status, html, _ = await ui.get(f"/articles/{stored[1]}")
            assert status == 200
            assert "also reported" in html and "msg_story" in html
