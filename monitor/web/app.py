"""The dashboard's pages: overview, feeds, alerts, articles (search), watchlists, try box.

Server-rendered (Jinja2, autoescaped), paginated everywhere, readable on a phone. It reads
through the ``Storage`` interface only; the one state-changing action, re-queueing an alert,
goes through ``Backend.write``. The daemon mounts it on its own server (``Backend`` from the
running daemon); ``feedwatch web`` serves it over the database alone (``monitor/web/serve.py``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from importlib import resources
from typing import Any
from urllib.parse import urlsplit

from aiohttp import web
from yarl import URL

from monitor.feeds import UnknownFeed, feed_display_name, feed_health, poll_time, select_feeds
from monitor.logs import get_logger, redact
from monitor.match import Document, Explanation, Matcher
from monitor.match.snippet import marked_snippet
from monitor.settings import Config, FeedConfig, ServerSettings, Watchlist, split_listen
from monitor.urls import feed_key
from monitor.web.render import bars, environment
from monitor.web.security import SESSION_COOKIE, SESSION_SECONDS, Guard, is_loopback_host
from monitor.web.security import secure_headers as _secure
from storage.base import FeedState, Storage, StorageError
from storage.search import QueryError, hour_start, parse_query

log = get_logger(__name__)

FEEDS_PER_PAGE = 100
ALERTS_PER_PAGE = 30
ARTICLES_PER_PAGE = 20
MAX_PAGE = 10_000
MAX_TRY_TEXT = 200_000  # characters of pasted text the try box takes
SINCE_CHOICES = {"1d": 1, "7d": 7, "30d": 30}
STATIC = {
    "app.css": "text/css",
    "app.js": "text/javascript",
    "icon.svg": "image/svg+xml",
}
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
FORM: web.RequestKey[Any] = web.RequestKey("form", object)  # the checked POST form


@dataclass
class Backend:
    """What the dashboard reads and does; the daemon and `feedwatch web` each give theirs."""

    config: Callable[[], Config]  # the current config (the daemon reloads it on SIGHUP)
    storage: Storage  # for reading
    write: Callable[[], AbstractAsyncContextManager[Storage]]  # a storage that may write
    matcher: Callable[[], Awaitable[Matcher]]  # every configured watchlist, compiled
    extract: Callable[[str], Awaitable[tuple[str, str]]]  # URL -> (title, text), SSRF-guarded
    lag: Callable[[], float | None]  # event-loop lag p99, seconds
    lag_label: str = "daemon event loop"
    after_requeue: Callable[[], None] = lambda: None  # the daemon wakes its channel workers
    mode: str = "daemon"  # or "web": the database alone
    extra: dict[str, Any] = field(default_factory=dict)


class Page(Exception):
    """An error page: status and a message for people."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def _int(value: str | None, default: int, lo: int = 1, hi: int = MAX_PAGE) -> int:
    try:
        return max(lo, min(hi, int(value or default)))
    except ValueError:
        return default


def _local_path(value: str | None, default: str) -> str:
    """Where to go back to after a POST: a path on this server, never another site."""
    if not value or not value.startswith("/") or value.startswith("//") or "\\" in value:
        return default
    parts = urlsplit(value)
    return value if not parts.scheme and not parts.netloc else default


class Dashboard:
    def __init__(self, backend: Backend, settings: ServerSettings) -> None:
        self.backend = backend
        host, _ = split_listen(settings.listen)
        token = settings.token.get_secret_value() if settings.token else None
        self.guard = Guard(token, loopback_only=token is None and _loopback_listen(host))
        self.env = environment()
        self._keys_by_id: dict[int, str] = {}
        self._by_key: tuple[Config | None, dict[str, FeedConfig]] = (None, {})
        self._static = {
            name: (resources.files("monitor.web").joinpath("static", name).read_bytes(), ctype)
            for name, ctype in STATIC.items()
        }

    # ------------------------------------------------------------------ wiring
    def routes(self) -> list[web.RouteDef]:
        p = self._page
        return [
            web.get("/", p(self.overview)),
            web.get("/feeds", p(self.feeds)),
            web.get("/feeds/{id:\\d+}", p(self.feed)),
            web.get("/alerts", p(self.alerts)),
            web.post("/alerts/retry", p(self.retry)),
            web.get("/articles", p(self.articles)),
            web.get("/articles/{id:\\d+}", p(self.article)),
            web.get("/watchlists", p(self.watchlists)),
            web.get("/watchlists/{name}", p(self.watchlist)),
            web.post("/watchlists/{name}/try", p(self.watchlist)),
            web.get("/login", p(self.login)),
            web.post("/login", p(self.login)),
            web.post("/logout", p(self.logout)),
            web.get("/static/{name}", p(self.static)),
        ]

    @property
    def open_paths(self) -> frozenset[str]:
        return frozenset({"/login", *(f"/static/{name}" for name in STATIC)})

    def _page(self, handler: Handler) -> Handler:
        async def wrapped(request: web.Request) -> web.StreamResponse:
            if not self.guard.check_host(request):
                return _secure(
                    web.Response(
                        status=421,
                        text="this dashboard answers to loopback addresses only (no server.token)\n",
                    )
                )
            try:
                if request.method == "POST":
                    form = await request.post()
                    why = self.guard.check_post(request, str(form.get("csrf", "")))
                    if why is not None:
                        raise Page(403, why)
                    request[FORM] = form
                response = await handler(request)
            except Page as exc:
                response = self._render(
                    request, "error.html", {"message": str(exc)}, status=exc.status
                )
            except StorageError as exc:
                log.warning("dashboard: storage failed", error=str(exc))
                response = self._render(
                    request,
                    "error.html",
                    {"message": f"storage is not answering: {redact(str(exc))}"},
                    status=503,
                )
            return _secure(response)

        return wrapped

    def _render(
        self, request: web.Request, template: str, ctx: dict[str, Any], status: int = 200
    ) -> web.Response:
        base = {
            "csrf": self.guard.csrf_token(request),
            "login": self.guard.needs_login and self.guard.authorized(request),
            "mode": self.backend.mode,
            "path": request.path_qs,
            "now": datetime.now(UTC),
            "section": template.split(".")[0].split("_")[0],
        }
        html = self.env.get_template(template).render(**base, **ctx)
        return web.Response(text=html, content_type="text/html", charset="utf-8", status=status)

    # ------------------------------------------------------------------ helpers
    def _cfg(self) -> Config:
        return self.backend.config()

    async def _states(self) -> dict[str, FeedState]:
        cfg = self._cfg()
        states = await self.backend.storage.list_feeds([feed_key(f.url) for f in cfg.feeds])
        return {s.key: s for s in states}

    async def _feed_key(self, feed_id: int) -> str | None:
        """A stored feed's key by its id (ids never change: remembered, refreshed on a miss)."""
        if feed_id not in self._keys_by_id:
            self._keys_by_id = {s.id: s.key for s in await self.backend.storage.list_feeds()}
        return self._keys_by_id.get(feed_id)

    async def _configured(self, feed_id: int) -> tuple[FeedConfig, FeedState] | None:
        """The configured feed with this id and its state, without loading every feed."""
        key = await self._feed_key(feed_id)
        cfg = self._cfg()
        if self._by_key[0] is not cfg:  # the daemon swaps in a new Config on reload
            self._by_key = (cfg, {feed_key(f.url): f for f in cfg.feeds})
        feed = self._by_key[1].get(key) if key else None
        state = await self.backend.storage.get_feed(key) if key and feed else None
        return (feed, state) if feed is not None and state is not None else None

    def _feed_rows(
        self, states: dict[str, FeedState], feeds: list[FeedConfig] | None = None
    ) -> list[dict[str, Any]]:
        rows = []
        for feed in self._cfg().feeds if feeds is None else feeds:
            st = states.get(feed_key(feed.url))
            disabled = (not feed.enabled) or bool(st and st.disabled)
            if disabled:
                status = "disabled"
            elif st is None or st.last_poll is None:
                status = "new"
            else:
                status = feed_health(st)
            rows.append(
                {
                    "id": st.id if st else None,
                    "name": redact(feed_display_name(feed, st)),
                    "url": redact(st.url if st else feed_key(feed.url)),
                    "tags": feed.tags,
                    "status": status,
                    "last_poll": st.last_poll if st else None,
                    "http_status": st.http_status if st else None,
                    "next_poll": None if disabled or st is None else poll_time(st),
                    "rate": st.items_per_day if st else None,
                    "errors": st.error_count if st else 0,
                    "last_error": redact(st.last_error) if st and st.last_error else None,
                    "disabled": (st.disabled if st and st.disabled else None)
                    or (None if feed.enabled else "disabled in config"),
                }
            )
        return rows

    # ------------------------------------------------------------------ overview
    async def overview(self, request: web.Request) -> web.Response:
        st = self.backend.storage
        now = datetime.now(UTC)
        rows = self._feed_rows(await self._states())
        counts = {
            k: sum(1 for r in rows if r["status"] == k)
            for k in ("ok", "failing", "disabled", "new")
        }
        until = hour_start(now) + timedelta(hours=1)
        hours = await st.activity(until - timedelta(hours=24), until)
        labels = [h.hour.strftime("%H:00") for h in hours]
        queued, oldest = await st.outbox_summary()
        deliveries = await st.delivery_counts()
        lag = self.backend.lag()
        daemons = [d for d in await st.list_daemons() if d.alive(now)]
        recent = await st.list_alerts(limit=5)
        return self._render(
            request,
            "overview.html",
            {
                "counts": counts,
                "feeds_total": len(rows),
                "failing": [r for r in rows if r["status"] == "failing"][:10],
                "polls": bars([h.polls for h in hours], labels),
                "poll_errors": bars([h.poll_errors for h in hours], labels),
                "alerts_chart": bars([h.alerts for h in hours], labels),
                "polls_total": sum(h.polls for h in hours),
                "errors_total": sum(h.poll_errors for h in hours),
                "alerts_total": sum(h.alerts for h in hours),
                "articles_total": sum(h.new_articles for h in hours),
                "first_hour": labels[0],
                "queued": queued,
                "oldest": oldest,
                "deliveries": deliveries,
                "lag_ms": None if lag is None else round(lag * 1000, 1),
                "lag_label": self.backend.lag_label,
                "daemons": daemons,
                "recent": recent,
            },
        )

    # ------------------------------------------------------------------ feeds
    async def feeds(self, request: web.Request) -> web.Response:
        q = request.query
        rows = self._feed_rows(await self._states())
        text = q.get("q", "").strip()
        status = q.get("status", "")
        tag = q.get("tag", "")
        if text:
            needle = text.casefold()
            rows = [
                r for r in rows if needle in r["name"].casefold() or needle in r["url"].casefold()
            ]
        if status:
            rows = [r for r in rows if r["status"] == status]
        if tag:
            rows = [r for r in rows if tag in r["tags"]]
        sort = q.get("sort", "name")
        desc = q.get("dir") == "desc"
        keys: dict[str, Callable[[dict[str, Any]], Any]] = {
            "name": lambda r: r["name"].casefold(),
            "url": lambda r: r["url"],
            "last_poll": lambda r: r["last_poll"] or datetime.min.replace(tzinfo=UTC),
            "status": lambda r: ["failing", "disabled", "new", "ok"].index(r["status"]),
            "rate": lambda r: r["rate"] if r["rate"] is not None else -1.0,
            "errors": lambda r: r["errors"],
            "next_poll": lambda r: r["next_poll"] or datetime.min.replace(tzinfo=UTC),
        }
        if sort not in keys:
            sort = "name"
        rows.sort(key=keys[sort], reverse=desc)
        page = _int(q.get("page"), 1)
        shown = rows[(page - 1) * FEEDS_PER_PAGE : page * FEEDS_PER_PAGE]
        params = {
            "q": text,
            "status": status,
            "tag": tag,
            "sort": sort,
            "dir": "desc" if desc else "",
        }
        tags = sorted({t for f in self._cfg().feeds for t in f.tags})
        return self._render(
            request,
            "feeds.html",
            {
                "rows": shown,
                "total": len(rows),
                "page": page,
                "pages": max(1, -(-len(rows) // FEEDS_PER_PAGE)),
                "params": params,
                "sort": sort,
                "desc": desc,
                "tags": tags,
            },
        )

    async def feed(self, request: web.Request) -> web.Response:
        feed_id = int(request.match_info["id"])
        found = await self._configured(feed_id)
        if found is None:
            raise Page(404, "no configured feed with this id")
        feed, state = found
        key = state.key
        [row] = self._feed_rows({key: state}, [feed])
        page = _int(request.query.get("page"), 1)
        st = self.backend.storage
        articles = await st.search_articles(
            None,
            feed_keys=[key],
            limit=ARTICLES_PER_PAGE + 1,
            offset=(page - 1) * ARTICLES_PER_PAGE,
        )
        return self._render(
            request,
            "feed.html",
            {
                "row": row,
                "state": state,
                "events": await st.feed_events(feed_id, limit=50),
                "articles": articles[:ARTICLES_PER_PAGE],
                "has_next": len(articles) > ARTICLES_PER_PAGE,
                "page": page,
            },
        )

    # ------------------------------------------------------------------ alerts
    async def alerts(self, request: web.Request) -> web.Response:
        q = request.query
        watchlist = q.get("watchlist") or None
        failed = q.get("failed") == "1"
        page = _int(q.get("page"), 1)
        found = await self.backend.storage.list_alerts(
            failed_only=failed,
            limit=ALERTS_PER_PAGE + 1,
            watchlist=watchlist,
            offset=(page - 1) * ALERTS_PER_PAGE,
        )
        counts = await self.backend.storage.delivery_counts()
        return self._render(
            request,
            "alerts.html",
            {
                "alerts": found[:ALERTS_PER_PAGE],
                "has_next": len(found) > ALERTS_PER_PAGE,
                "page": page,
                "params": {"watchlist": watchlist, "failed": "1" if failed else None},
                "watchlists": [w.name for w in self._cfg().watchlists],
                "watchlist": watchlist,
                "failed": failed,
                "failed_count": counts["failed"],
                "done": q.get("done"),
            },
        )

    async def retry(self, request: web.Request) -> web.StreamResponse:
        form = request[FORM]
        alert_id = str(form.get("alert", "")) or None
        every_failed = form.get("all_failed") == "1"
        if alert_id is None and not every_failed:
            raise Page(400, "nothing to retry: no alert given")
        async with self.backend.write() as st:
            if alert_id is not None and await st.get_alert(alert_id) is None:
                raise Page(404, "no such alert")
            n = await st.requeue(alert_id=alert_id, failed=every_failed, now=datetime.now(UTC))
        self.backend.after_requeue()
        log.info("dashboard: alert re-queued", alert=alert_id or "all failed", deliveries=n)
        back = URL(_local_path(str(form.get("back", "")), "/alerts"))
        raise web.HTTPSeeOther(str(back.update_query(done=n)))

    # ------------------------------------------------------------------ articles
    async def articles(self, request: web.Request) -> web.Response:
        q = request.query
        cfg = self._cfg()
        text = q.get("q", "").strip()
        feed = q.get("feed", "")
        tag = q.get("tag", "")
        watchlist = q.get("watchlist", "") or None
        since_key = q.get("since", "")
        page = _int(q.get("page"), 1)
        error = None
        hits: list[Any] = []
        status = 200
        try:
            if text:
                parse_query(text)
            keys = select_feeds(cfg.feeds, [feed] if feed else [], [tag] if tag else [])
            since = (
                datetime.now(UTC) - timedelta(days=SINCE_CHOICES[since_key])
                if since_key in SINCE_CHOICES
                else None
            )
            hits = await self.backend.storage.search_articles(
                text or None,
                feed_keys=keys,
                watchlist=watchlist,
                since=since,
                limit=ARTICLES_PER_PAGE + 1,
                offset=(page - 1) * ARTICLES_PER_PAGE,
            )
        except (QueryError, UnknownFeed) as exc:
            error, status = str(exc), 400
        return self._render(
            request,
            "articles.html",
            {
                "hits": hits[:ARTICLES_PER_PAGE],
                "has_next": len(hits) > ARTICLES_PER_PAGE,
                "page": page,
                "error": error,
                "params": {
                    "q": text,
                    "feed": feed,
                    "tag": tag,
                    "watchlist": watchlist or "",
                    "since": since_key,
                },
                "feed_names": sorted({redact(f.name) for f in cfg.feeds if f.name}),
                "tags": sorted({t for f in cfg.feeds for t in f.tags}),
                "watchlists": [w.name for w in cfg.watchlists],
                "since_choices": list(SINCE_CHOICES),
            },
            status=status,
        )

    async def article(self, request: web.Request) -> web.Response:
        article_id = int(request.match_info["id"])
        st = self.backend.storage
        art = await st.get_article(article_id)
        if art is None:
            raise Page(404, "no stored article with this id")
        found = await self._configured(art.feed_id)
        feed = found[0] if found else None
        from monitor.pipeline import article_document

        doc = article_document(
            art.title, art.summary, art.body, art.feed_name, tuple(feed.tags) if feed else ()
        )
        cfg = self._cfg()
        matcher = await self.backend.matcher()
        names = [w.name for w in cfg.watchlists]
        explained = await asyncio.to_thread(lambda: [matcher.explain(doc, n) for n in names])
        return self._render(
            request,
            "article.html",
            {
                "art": art,
                "alerts": await st.list_alerts(article_id=article_id, limit=100),
                "results": [_explained(doc, ex) for ex in explained],
                "body": doc.body,
            },
        )

    # ------------------------------------------------------------------ watchlists
    async def watchlists(self, request: web.Request) -> web.Response:
        st = self.backend.storage
        now = datetime.now(UTC)
        total = await st.alert_counts()
        day = await st.alert_counts(now - timedelta(days=1))
        week = await st.alert_counts(now - timedelta(days=7))
        return self._render(
            request,
            "watchlists.html",
            {
                "watchlists": self._cfg().watchlists,
                "total": total,
                "day": day,
                "week": week,
            },
        )

    async def watchlist(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        wl = next((w for w in self._cfg().watchlists if w.name == name), None)
        if wl is None:
            raise Page(404, "no watchlist with this name in the config")
        tried: dict[str, Any] | None = None
        form: dict[str, str] = {"url": "", "text": ""}
        if request.method == "POST":
            post = request[FORM]
            form = {"url": str(post.get("url", "")).strip(), "text": str(post.get("text", ""))}
            tried = await self._try(wl, form["url"], form["text"])
        recent = await self.backend.storage.list_alerts(watchlist=name, limit=20)
        return self._render(
            request,
            "watchlist.html",
            {"wl": wl, "recent": recent, "tried": tried, "form": form},
            status=400 if tried and tried.get("error") and not tried.get("result") else 200,
        )

    async def _try(self, wl: Watchlist, url: str, text: str) -> dict[str, Any]:
        """The try box: a URL (fetched with the SSRF guard) or pasted text, explained."""
        out = await self._try_one(wl, url, text)
        return {"error": None, "source": None, "title": None, "result": None, **out}

    async def _try_one(self, wl: Watchlist, url: str, text: str) -> dict[str, Any]:
        if url and text.strip():
            return {"error": "give a URL or paste text, not both"}
        if url:
            if urlsplit(url).scheme.lower() not in ("http", "https"):
                return {"error": "give an http:// or https:// URL"}
            try:
                title, body = await self.backend.extract(url)
            except Exception as exc:  # a hostile page is a message, never a crash
                return {
                    "error": f"could not read the page: {redact(str(exc)) or type(exc).__name__}"
                }
            source = url
        elif text.strip():
            if len(text) > MAX_TRY_TEXT:
                return {"error": f"the text is too long (at most {MAX_TRY_TEXT:,} characters)"}
            first, _, rest = text.strip().partition("\n")
            title, body, source = first.strip(), rest.strip(), "pasted text"
        else:
            return {"error": "give a URL or paste some text"}
        only = wl.model_copy(update={"feeds": []})  # a page by hand comes from no feed
        doc = Document(title=title, summary="", body=body)

        def explain() -> Explanation:
            return Matcher.build([only]).explain(doc, wl.name)

        try:
            ex = await asyncio.to_thread(explain)
        except ValueError as exc:
            return {"error": str(exc)}
        return {"source": source, "title": title, "result": _explained(doc, ex)}

    # ------------------------------------------------------------------ login, static
    async def login(self, request: web.Request) -> web.StreamResponse:
        nxt = _local_path(request.query.get("next"), "/")
        if not self.guard.needs_login:
            raise web.HTTPSeeOther(nxt)
        error = None
        if request.method == "POST":
            client = request.remote or "?"
            form = request[FORM]
            nxt = _local_path(str(form.get("next", "")), "/")
            if not self.guard.login_allowed(client):
                raise Page(429, "too many failed logins: wait a minute")
            if self.guard.check_token(str(form.get("token", ""))):
                response = web.HTTPSeeOther(nxt)
                response.set_cookie(
                    SESSION_COOKIE,
                    self.guard.new_session(),
                    max_age=SESSION_SECONDS,
                    httponly=True,
                    samesite="Strict",
                    secure=request.secure,
                    path="/",
                )
                raise response
            self.guard.login_failed(client)
            error = "wrong token"
            log.warning("dashboard: failed login", client=client)
        return self._render(
            request, "login.html", {"error": error, "next": nxt}, status=401 if error else 200
        )

    async def logout(self, request: web.Request) -> web.StreamResponse:
        response = web.HTTPSeeOther("/login")
        response.del_cookie(SESSION_COOKIE, path="/")
        raise response

    async def static(self, request: web.Request) -> web.Response:
        found = self._static.get(request.match_info["name"])
        if found is None:
            raise Page(404, "not found")
        body, ctype = found
        response = web.Response(body=body, content_type=ctype)
        return response


def _loopback_listen(host: str) -> bool:
    return is_loopback_host(host)


def _explained(doc: Document, ex: Explanation) -> dict[str, Any]:
    """A watchlist's verdict on a document, with each snippet and where its match sits."""

    def snip(field_name: str, start: int, text: str) -> tuple[str, int, int]:
        whole = {"title": doc.title, "summary": doc.summary, "body": doc.body}[field_name]
        return marked_snippet(whole, start, start + len(text))

    if ex.matched:
        verdict = "matched"
    elif ex.partial or ex.set_aside:
        verdict = "nearly"
    else:
        verdict = "no"
    return {
        "name": ex.watchlist,
        "verdict": verdict,
        "matches": [(m, snip(m.field, m.start, m.text)) for m in ex.matches],
        "partial": [(m, snip(m.field, m.start, m.text)) for m in ex.partial],
        "reasons": list(ex.reasons),
        "set_aside": [
            (f, snip(f.field, f.start, f.text))
            for f in ex.set_aside
            if not (f.kind == "exclude" and ex.matched)
        ],
    }
