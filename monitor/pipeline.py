"""One feed poll, end to end: fetch -> parse -> extract -> match -> store (with its alerts).

The pipeline decides nothing about *when* (that is the scheduler) and sends nothing (that is the
outbox). It leaves every outcome in storage, so a restart resumes where it stopped.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections import Counter, OrderedDict
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from monitor import decide
from monitor.alert import AlertPayload, AlsoReported, ArticleInfo, MatchInfo, alert_id, iso_z
from monitor.clock import SYSTEM, Clock
from monitor.extract import ExtractError, extract_article
from monitor.feeds import feed_display_name
from monitor.fetch import PAGE_ACCEPT, Fetcher
from monitor.groupcommit import GroupCommit
from monitor.logs import get_logger
from monitor.match import Document, Match, Matcher
from monitor.models import Entry, Extracted, FetchError, FetchResponse, NotAFeed, NotASitemap
from monitor.schedule import IntervalPolicy, period_end
from monitor.settings import Config, DigestSpec, FeedConfig, Watchlist
from monitor.sources import PARSE_TIME_LIMIT, READERS, ReadContext
from monitor.storydesk import NewMember, Placement, StoryDesk, signatures, story_ref
from monitor.urls import canonical_url, strip_userinfo, with_credentials
from monitor.workers import CpuPool, PoolClosed, TaskTimeout, WorkerCrashed
from storage.base import FeedState, FeedUpdate, NewAlert, NewArticle, Storage

if TYPE_CHECKING:
    from monitor.metrics import Metrics

log = get_logger(__name__)

# What one item may weigh, stored and sent: a hostile feed's 1 MB title must not reach a
# receiver, nor a 50 MB summary the database.
TITLE_MAX = 500
SUMMARY_MAX = 10_000
BODY_MAX = 500_000
SLOW_PAGE_STRIKES = 2  # a page whose extraction timed out this often is not extracted again
STORY_TIME_LIMIT = 60.0  # signatures of one poll's matching articles
HOURLY = DigestSpec(every=3600.0)  # copies for `also_reported: digest` without a digest period


@dataclass(slots=True)
class PollResult:
    feed: str
    status: str  # "ok", "not_modified", "unchanged", "error", "skipped"
    entries: int = 0
    new: int = 0
    alerts: int = 0
    error: str | None = None
    seconds: float = 0.0
    extract_failures: int = 0
    pages_capped: int = 0  # new items past max_pages_per_poll: they keep the feed's summary
    copies: int = 0  # later copies of stories already alerted (also_reported)
    alerts_by_watchlist: Counter[str] = field(default_factory=Counter)


@dataclass(slots=True)
class _Candidate:
    entry: Entry
    guid: str | None
    canonical: str | None
    body: str = ""
    extract_error: str | None = None
    page_published: datetime | None = None
    language: str | None = None
    author: str | None = None
    page_title: str | None = None  # the page's own title (sitemap items may have none)
    page_key: str | None = None  # set when this candidate started the shared page fetch
    stored_elsewhere: bool = False  # another feed stored this story meanwhile


class RecentSet:
    """A set that remembers only its newest ``size`` members.

    An OrderedDict, not a dict: ``del d[next(iter(d))]`` on a plain dict walks over every
    slot deleted before it, so a full set paid O(size) per add (6 % of a first pass)."""

    def __init__(self, size: int) -> None:
        self._items: OrderedDict[str, None] = OrderedDict()
        self.size = size

    def add(self, item: str) -> None:
        self._items[item] = None
        if len(self._items) > self.size:
            self._items.popitem(last=False)

    def __contains__(self, item: object) -> bool:
        return item in self._items


def article_document(
    title: str, summary: str, body: str, feed_name: str | None, feed_tags: tuple[str, ...]
) -> Document:
    """What a watchlist is matched against. A body that is only the summary again (extraction
    fell back to it) is not counted twice. `feedwatch try --stored` builds the same document."""
    return Document(
        title=title,
        summary=summary,
        body=body if body != summary else "",
        feed_name=feed_name,
        feed_tags=feed_tags,
    )


class Pipeline:
    """Polls one feed at a time; many polls run concurrently under the fetcher's limits."""

    def __init__(
        self,
        cfg: Config,
        storage: Storage,
        fetcher: Fetcher,
        pool: CpuPool,
        matcher: Matcher,
        *,
        clock: Clock = SYSTEM,
        metrics: Metrics | None = None,
        stories: StoryDesk | None = None,
    ) -> None:
        self.cfg = cfg
        self.clock = clock
        self.metrics = metrics
        self.storage = storage
        self.fetcher = fetcher
        self.pool = pool
        self.matcher = matcher
        self.watchlists = {wl.name: wl for wl in cfg.watchlists}
        self._pages: dict[str, asyncio.Future[tuple[Extracted | None, str | None]]] = {}
        # Canonical URLs this process stored lately: a concurrent poll that checked storage
        # just before they were committed skips their page instead of fetching it again.
        self._recent = RecentSet(20_000)
        # Story alerts this process stored lately: a copy polled by a concurrent poll attaches to
        # them even before storage is asked again.
        self._story_alerts = RecentSet(20_000)
        self.stories = stories
        # Pages whose extraction ran past its deadline, and how often (SLOW_PAGE_STRIKES).
        self._slow_pages: dict[str, int] = {}
        # Pages held between fetch and extraction are ~100 KB each: bound them, or 500 new items
        # at once hold 500 pages in memory while the pool works through them.
        self._page_slots = asyncio.Semaphore(4 * pool.workers)
        # Concurrent polls share transactions (group commit): one per batch, not one per feed.
        self._updates: GroupCommit[tuple[int, FeedUpdate], None] = GroupCommit(
            "feed-updates", self._write_updates, max_batch=500
        )
        self._articles: GroupCommit[list[NewArticle], list[int | None]] = GroupCommit(
            "articles", self._write_articles, max_batch=64
        )

    async def _write_updates(self, items: list[tuple[int, FeedUpdate]]) -> list[None]:
        if len(items) == 1:
            await self.storage.update_feed(*items[0])
        else:
            await self.storage.update_feeds(items)
        return [None] * len(items)

    async def _write_articles(self, items: list[list[NewArticle]]) -> list[list[int | None]]:
        ids = await self.storage.add_articles([a for batch in items for a in batch])
        out: list[list[int | None]] = []
        start = 0
        for batch in items:
            out.append(ids[start : start + len(batch)])
            start += len(batch)
        return out

    async def flush(self) -> None:
        """Wait for batched writes in progress (before storage closes)."""
        await self._updates.flush()
        await self._articles.flush()

    def reconfigure(self, cfg: Config, matcher: Matcher) -> None:
        """Use a reloaded config from the next poll on (polls in flight keep the old one)."""
        self.cfg = cfg
        self.matcher = matcher
        self.watchlists = {wl.name: wl for wl in cfg.watchlists}

    # ------------------------------------------------------------------ scheduling policy
    def _policy(self, feed: FeedConfig) -> IntervalPolicy:
        d = self.cfg.defaults
        start = (
            d.interval if d.interval != "auto" else min(max(900.0, d.min_interval), d.max_interval)
        )
        return IntervalPolicy(
            self.cfg.feed_interval(feed), d.min_interval, d.max_interval, float(start)
        )

    # ------------------------------------------------------------------ one poll
    async def poll(self, feed: FeedConfig, state: FeedState) -> PollResult:
        """Fetch the source, read its items, store the new ones with their alerts, and record
        what `decide` makes of the outcome. Storage errors propagate (the daemon pauses)."""
        started = self.clock.monotonic()
        now = self.clock.now()
        name = feed_display_name(feed, state)
        policy = self._policy(feed)
        reader = READERS[feed.type]
        try:
            # The stored URL never holds credentials; the config's are added back for this
            # feed's own host only (a feed moved to another host gets none).
            resp = await self.fetcher.get(
                with_credentials(state.url, feed.url),
                etag=state.etag,
                last_modified=state.last_modified,
                accept=reader.accept,
                truncate=reader.truncate,
            )
        except FetchError as exc:
            return await self._record_failure(feed, state, name, exc, now, started)
        self._observe("feed", resp)
        resp.url = strip_userinfo(resp.url)
        moved = strip_userinfo(resp.permanent_url) if resp.permanent_url else None
        if moved and moved != state.url:
            log.info("feed moved permanently", feed=name, old_url=state.url, url=moved)
        else:
            moved = None

        async def unchanged(
            status: int, outcome: str, update: FeedUpdate | None = None
        ) -> PollResult:
            update = update or decide.after_success(
                state, policy, now, decide.Success(status, unchanged=True)
            )
            if moved:
                update.url = moved
            await self._updates.submit((state.id, update))
            log.info("feed polled", feed=name, status=status, unchanged=True, new=0)
            return PollResult(name, outcome, seconds=self.clock.monotonic() - started)

        if resp.not_modified:
            return await unchanged(304, "not_modified")
        quick = reader.quick_digest(resp)
        if quick is not None and quick == state.body_hash:
            return await unchanged(resp.status, "unchanged", self._validators(
                decide.after_success(state, policy, now, decide.Success(resp.status, unchanged=True)),
                resp, quick,
            ))  # fmt: skip
        ctx = ReadContext(feed, self.pool, self.fetcher, now, state.last_success)
        try:
            read = await reader.read(resp, ctx)
        except PoolClosed:
            raise  # shutting down: this poll is not recorded and the next process redoes it
        except Exception as exc:
            err = _parse_error_text(exc, feed.type)
            fail = FetchError("parse", err, url=resp.url, status=resp.status)
            return await self._record_failure(feed, state, name, fail, now, started)
        for extra in ctx.extra_fetches:
            self._observe("feed", extra)
        if read.warning:
            log.warning("feed parsed with problems", feed=name, warning=read.warning)
        if quick is None and read.digest is not None and read.digest == state.body_hash:
            # A page whose article links did not change (only its chrome did): nothing to do.
            return await unchanged(resp.status, "unchanged", self._validators(
                decide.after_success(state, policy, now, decide.Success(resp.status, unchanged=True)),
                resp, read.digest,
            ))  # fmt: skip
        if not feed.name and read.title:
            name = read.title  # the source's own title, known from its first successful poll
        result = await self._ingest(feed, state, name, read.entries, now)
        dates = [e.published for e in read.entries if e.published]
        update = decide.after_success(
            state, policy, now, decide.Success(resp.status, result.new, dates, read.ttl)
        )
        self._validators(update, resp, read.digest)
        if moved:
            update.url = moved
        if read.title and read.title != state.title:
            update.title = read.title
        update.ttl = read.ttl
        await self._updates.submit((state.id, update))
        result.seconds = self.clock.monotonic() - started
        log.info(
            "feed polled",
            feed=name, status=resp.status, entries=result.entries, new=result.new,
            alerts=result.alerts, extract_failed=result.extract_failures,
            pages_capped=result.pages_capped, seconds=round(result.seconds, 2),
        )  # fmt: skip
        return result

    @staticmethod
    def _validators(update: FeedUpdate, resp: FetchResponse, digest: str | None) -> FeedUpdate:
        """What lets the next poll be cheap: the server's validators and our own digest."""
        update.etag = resp.headers.get("etag")
        update.last_modified = resp.headers.get("last-modified")
        update.body_hash = digest
        return update

    def _observe(self, kind: str, resp: FetchResponse) -> None:
        if self.metrics is not None and not resp.not_modified:
            self.metrics.fetch_seconds.labels(kind).observe(resp.elapsed)
            self.metrics.fetch_bytes.labels(kind).inc(len(resp.body))

    async def record_crash(
        self, feed: FeedConfig, state: FeedState, exc: BaseException
    ) -> PollResult:
        """A bug during a poll still backs the feed off, so it is not retried in a tight loop;
        the error is visible in `status`."""
        err = FetchError("internal", f"internal error: {type(exc).__name__}: {exc}", url=state.url)
        return await self._record_failure(
            feed,
            state,
            feed_display_name(feed, state),
            err,
            self.clock.now(),
            self.clock.monotonic(),
        )

    async def _record_failure(
        self,
        feed: FeedConfig,
        state: FeedState,
        name: str,
        exc: FetchError,
        now: datetime,
        started: float,
    ) -> PollResult:
        update = decide.after_failure(state, self._policy(feed), now, exc)
        if update.disabled is not ...:
            log.error("feed disabled", feed=name, url=state.url, reason=update.disabled)
        log.warning(
            "feed failed",
            feed=name, url=state.url, kind=exc.kind, errors=state.error_count + 1,
            next_poll=iso_z(update.next_poll), error=str(exc),
        )  # fmt: skip
        await self._updates.submit((state.id, update))
        return PollResult(name, "error", error=str(exc), seconds=self.clock.monotonic() - started)

    # ------------------------------------------------------------------ items -> articles
    async def _ingest(
        self, feed: FeedConfig, state: FeedState, name: str, entries: list[Entry], now: datetime
    ) -> PollResult:
        result = PollResult(name, "ok", entries=len(entries))
        candidates: list[_Candidate] = []
        seen_guid: set[str] = set()
        seen_url: set[str] = set()
        for entry in entries:
            _bound(entry)
            canon = canonical_url(entry.url) if entry.url else None
            guid = entry.guid or None
            if guid is None and canon is None:
                # No link, no GUID: identify the item by its content.
                basis = f"{entry.title}\x00{entry.summary}".encode()
                guid = "sha256:" + hashlib.sha256(basis).hexdigest()
            if (guid and guid in seen_guid) or (canon and canon in seen_url):
                continue
            if guid:
                seen_guid.add(guid)
            if canon:
                seen_url.add(canon)
            candidates.append(_Candidate(entry, guid, canon))
        if not candidates:
            return result
        known_guids, known_urls = await self.storage.known_items(
            state.id,
            [c.guid for c in candidates if c.guid],
            [c.canonical for c in candidates if c.canonical],
        )
        items = [decide.Item(c.guid, c.canonical, c.entry.published) for c in candidates]
        fresh = [candidates[i] for i in decide.fresh(items, known_guids, known_urls)]
        if not fresh:
            return result
        max_age = self.cfg.feed_max_age(feed)
        try:
            if self.cfg.feed_extract(feed):
                cap = self.cfg.feed_max_pages(feed)
                plan = decide.plan_pages(
                    [decide.Item(c.guid, c.canonical, c.entry.published) for c in fresh],
                    now,
                    max_age,
                    cap,
                )
                for i in plan.too_old:
                    fresh[i].body = fresh[i].entry.summary
                    fresh[i].extract_error = "not extracted: older than max_age"
                for i in plan.capped:
                    fresh[i].body = fresh[i].entry.summary
                    fresh[i].extract_error = f"not extracted: over max_pages_per_poll ({cap})"
                result.pages_capped = len(plan.capped)
                await asyncio.gather(*(self._extract(fresh[i], state.key) for i in plan.extract))
            fresh = [c for c in fresh if not c.stored_elsewhere]
            articles: list[NewArticle] = []
            matched: list[tuple[int, dict[str, list[Match]]]] = []
            for c in fresh:
                art, found = self._article(feed, state, name, c, now, max_age)
                if found:
                    matched.append((len(articles), found))
                articles.append(art)
            if matched:
                await self._alerts(name, articles, matched, now)
            ids = await self._articles.submit(articles)
        finally:
            # Pages this poll fetched stay shared until its articles are committed: a concurrent
            # poll of another feed with the same story then finds the page or the stored article.
            for c in fresh:
                if c.page_key is not None:
                    self._pages.pop(c.page_key, None)
        for art, new_id in zip(articles, ids, strict=True):
            if new_id is not None:
                if art.canonical_url:
                    self._recent.add(art.canonical_url)
                result.new += 1
                for a in art.alerts:
                    if a.kind == "match":  # later copies in this process attach to it at once
                        self._story_alerts.add(a.id)
                    written = a.if_exists if a.taken else a  # what storage wrote, if anything
                    if written is None or written.taken:
                        continue
                    if written.kind == "match":
                        result.alerts += 1
                        result.alerts_by_watchlist[written.watchlist] += 1
                    else:
                        result.copies += 1
        result.extract_failures = sum(
            1 for c in fresh if c.extract_error and not c.extract_error.startswith("not extracted")
        )
        return result

    async def _extract(self, cand: _Candidate, feed: str) -> None:
        url = cand.entry.url
        if not url:
            cand.extract_error = "the item has no link"
            cand.body = cand.entry.summary
            return
        # The same story in two feeds polled at once: fetch and extract its page once.
        key = cand.canonical or url
        shared = self._pages.get(key)
        if shared is None:
            if cand.canonical and cand.canonical in self._recent:  # stored since known_items
                cand.stored_elsewhere = True
                return
            shared = self._pages.get(key)  # may have appeared while we asked storage
        if shared is None:
            shared = asyncio.ensure_future(
                self._fetch_extract(url, cand.entry.title, cand.entry.published is None, feed)
            )
            self._pages[key] = shared
            cand.page_key = key
        ex, error = await asyncio.shield(shared)
        if ex is not None:
            cand.body = ex.text
            cand.page_published = ex.published
            cand.language = ex.language
            cand.author = ex.author
            cand.page_title = ex.title
            return
        cand.extract_error = error
        log.info("extract fallback", url=url, reason=error)
        cand.body = cand.entry.summary

    async def _fetch_extract(
        self, url: str, title: str, metadata: bool, feed: str
    ) -> tuple[Extracted | None, str | None]:
        """The page's article text, or why there is none (never raises for a bad page).

        The extraction counts against two shares of the worker pool, its page's host and the
        feed that asked for it: neither a slow site nor a feed linking to slow pages on many
        hosts can take every worker from the other feeds.

        Page metadata (its date) is read only when the feed gives no date: it costs more CPU
        than the article text itself.
        """
        strikes = self._slow_pages.get(url, 0)
        if strikes >= SLOW_PAGE_STRIKES:
            return None, f"not extracted: extraction timed out {strikes} times on this page"
        try:
            async with self._page_slots:
                page = await self.fetcher.get(url, accept=PAGE_ACCEPT)
                self._observe("page", page)
                if not _is_page(page.content_type, page.body):
                    kind = page.content_type.split(";")[0].strip() or "unknown type"
                    return None, f"the link is not a web page ({kind})"
                ex = await self.pool.run(
                    self.cfg.extraction.timeout,
                    extract_article,
                    page.body,
                    strip_userinfo(page.url),
                    title,
                    metadata,
                    key=(f"host:{urlsplit(page.url).hostname}", f"feed:{feed}"),
                )
        except FetchError as exc:
            return None, f"page fetch failed: {exc}"
        except PoolClosed:
            raise  # shutting down: not an extraction failure; the poll is redone later
        except TaskTimeout:
            if len(self._slow_pages) > 10_000:
                self._slow_pages.clear()
            self._slow_pages[url] = strikes + 1
            self._count_failure("timeout")
            return None, f"extraction took longer than {self.cfg.extraction.timeout:g}s"
        except WorkerCrashed:
            self._slow_pages[url] = strikes + 1
            self._count_failure("crash")
            return None, "the extraction worker crashed on this page"
        except ExtractError as exc:
            self._count_failure("no_text")
            return None, str(exc)
        except Exception as exc:
            self._count_failure("error")
            return None, f"extraction failed: {type(exc).__name__}: {exc}"
        if len(ex.text) > BODY_MAX:
            ex.text = ex.text[:BODY_MAX]
        return ex, None

    def _count_failure(self, reason: str) -> None:
        if self.metrics is not None:
            self.metrics.extract_failures.labels(reason).inc()

    def _article(
        self,
        feed: FeedConfig,
        state: FeedState,
        name: str,
        c: _Candidate,
        now: datetime,
        max_age: float,
    ) -> tuple[NewArticle, dict[str, list[Match]]]:
        """The article to store and what it matched (nothing when too old to alert)."""
        e = c.entry
        title = e.title or (c.page_title or "")[:TITLE_MAX] or (e.url or "")
        published = e.published or c.page_published
        article = NewArticle(
            feed_id=state.id,
            guid=c.guid,
            url=e.url,
            canonical_url=c.canonical,
            title=title,
            summary=e.summary,
            body=c.body,
            author=e.author or c.author,
            published=published,
            language=c.language,
            extract_error=c.extract_error,
            fetched_at=now,
        )
        identity = c.canonical or f"{state.key}#{c.guid}"
        article.story_ref = article.story_id = story_ref(identity)
        if decide.too_old(published, now, max_age):
            return article, {}
        doc = article_document(title, e.summary, c.body, name, tuple(feed.tags))
        return article, self.matcher.match(doc)

    async def _alerts(
        self,
        name: str,
        articles: list[NewArticle],
        matched: list[tuple[int, dict[str, list[Match]]]],
        now: datetime,
    ) -> None:
        """One alert per story and watchlist; a later copy of a story is attached to its alert
        (`also_reported`), or alerts again when it changed materially (`realert_on: update`)."""
        placements = await self._place_stories(articles, matched, now)
        story_alerts = {
            alert_id(w, f"story:{placements[i].story_id}")
            for i, found in matched
            if placements[i].joined
            for w in found
        }
        existing = (
            await self.storage.existing_alerts(sorted(story_alerts)) if story_alerts else set()
        )
        existing |= {a for a in story_alerts if a in self._story_alerts}
        last: dict[tuple[str, int], tuple[str, bytes | None, dict[str, Any]] | None] = {}
        for i, found in matched:
            p = placements[i]
            for w in found:
                wl = self.watchlists[w]
                if p.joined and wl.realert_on == "update":
                    if (
                        alert_id(w, f"story:{p.story_id}") in existing
                        and (w, p.story_id) not in last
                    ):
                        last[(w, p.story_id)] = await self.storage.last_story_alert(w, p.story_id)
        decided: set[str] = set()  # story alerts created earlier in this batch
        for i, found in matched:
            art, p = articles[i], placements[i]
            info = ArticleInfo(art.url, art.title, art.published, name, art.summary)
            for w, matches in found.items():
                wl = self.watchlists[w]
                story_alert = alert_id(w, f"story:{p.story_id}")
                if not (p.joined and (story_alert in existing or story_alert in decided)):
                    decided.add(story_alert)  # the story's first alert for this watchlist
                    payload: AlertPayload | AlsoReported = AlertPayload(
                        story_alert, w, info, tuple(MatchInfo(**m.to_payload()) for m in matches)
                    )
                    first = self._new_alert(payload, wl, now)
                    # Another copy of the story, in a poll or daemon running at the same time,
                    # may store the story's alert first: this one is then its copy.
                    copy = AlsoReported(alert_id(w, f"copy:{p.ref}"), story_alert, w, info)
                    first.if_exists = self._new_alert(copy, wl, now)
                    art.alerts.append(first)
                    continue
                change = self._change(last.get((w, p.story_id)), art, matches)
                if change is not None:
                    payload = AlertPayload(
                        alert_id(w, f"update:{p.ref}"),
                        w,
                        info,
                        tuple(MatchInfo(**m.to_payload()) for m in matches),
                        update_of=story_alert,
                        change=change,
                    )
                    art.alerts.append(self._new_alert(payload, wl, now))
                    continue
                copy = AlsoReported(alert_id(w, f"copy:{p.ref}"), story_alert, w, info)
                art.alerts.append(self._new_alert(copy, wl, now))

    def _new_alert(
        self, payload: AlertPayload | AlsoReported, wl: Watchlist, now: datetime
    ) -> NewAlert:
        if isinstance(payload, AlertPayload):
            return NewAlert(
                id=payload.id,
                watchlist=wl.name,
                payload=payload.to_json(),
                channels=list(wl.channels),
                not_before=self.not_before(wl.channels, wl.digest, now),
            )
        # A copy goes to the channels that want copies: at once, or in their next digest.
        channels = [c for c in wl.channels if self.cfg.channels[c].also_reported != "ignore"]
        not_before = {}
        for c in channels:
            ch = self.cfg.channels[c]
            if ch.also_reported == "digest" or ch.digest is not None or wl.digest is not None:
                spec = wl.digest or ch.digest or HOURLY
                not_before[c] = period_end(spec, now)
        return NewAlert(
            id=payload.id,
            watchlist=wl.name,
            payload=payload.to_json(),
            channels=channels,
            not_before=not_before,
            kind="also_reported",
            story_alert_id=payload.alert_id,
        )

    def _change(
        self,
        last: tuple[str, bytes | None, dict[str, Any]] | None,
        art: NewArticle,
        matches: list[Match],
    ) -> str | None:
        """What changed since the story last alerted this watchlist (`realert_on: update`)."""
        if last is None or last[1] is None or art.story_sig is None:
            return None
        from monitor.stories import Signature, material_change

        before = [m.get("term", "") for m in last[2].get("matches", []) if m.get("kind") == "place"]
        now_places = [m.term for m in matches if m.kind == "place"]
        change = material_change(
            Signature.from_bytes(last[1]),
            Signature.from_bytes(art.story_sig),
            alerted_places=before,
            new_places=now_places,
        )
        return change.describe() if change else None

    async def _place_stories(
        self,
        articles: list[NewArticle],
        matched: list[tuple[int, dict[str, list[Match]]]],
        now: datetime,
    ) -> dict[int, Placement]:
        """The story of every article that matched a watchlist (signatures in the pool)."""
        if self.stories is None:
            return {
                i: Placement(articles[i].story_ref or 0, articles[i].story_ref or 0, False)
                for i, _ in matched
            }
        items = [(articles[i].title, articles[i].body or articles[i].summary) for i, _ in matched]
        sigs = await self.pool.run(STORY_TIME_LIMIT, signatures, items)
        members = []
        for (i, _), (sig, keys) in zip(matched, sigs, strict=True):
            art = articles[i]
            art.story_sig, art.story_keys = sig, keys
            members.append(NewMember(art.story_ref or 0, sig, keys, art.published or now))
        placed = await self.stories.place(self.storage, members)
        out = {}
        for (i, _), p in zip(matched, placed, strict=True):
            articles[i].story_id = p.story_id
            out[i] = p
        return out

    def not_before(
        self, channels: list[str], wl_digest: DigestSpec | None, now: datetime
    ) -> dict[str, datetime]:
        """Digest channels (or a digest watchlist) hold an alert until their period ends."""
        out: dict[str, datetime] = {}
        for ch in channels:
            spec = wl_digest or getattr(self.cfg.channels[ch], "digest", None)
            if spec is not None:
                out[ch] = period_end(spec, now)
        return out


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def _bound(entry: Entry) -> None:
    """Cap what a feed item may weigh, and keep credentials out of its link for good."""
    if entry.url:
        entry.url = strip_userinfo(entry.url)
    entry.title = _clip(entry.title, TITLE_MAX)
    entry.summary = _clip(entry.summary, SUMMARY_MAX)
    if entry.author:
        entry.author = _clip(entry.author, TITLE_MAX)


_PAGE_TYPES = ("text/html", "application/xhtml", "text/plain", "application/xml", "text/xml")


def _is_page(content_type: str, body: bytes) -> bool:
    """HTML (or a type-less body that looks like markup): not a PDF, image, audio or video."""
    ctype = content_type.split(";")[0].strip().lower()
    if ctype:
        return ctype.startswith(_PAGE_TYPES)
    return body.lstrip()[:1] == b"<"


def _parse_error_text(exc: BaseException, kind: str = "feed") -> str:
    if isinstance(exc, NotAFeed):
        if exc.feed_links and exc.feed_links[0] not in str(exc):
            return f"{exc} (the page links to feeds: {', '.join(exc.feed_links[:5])})"
        return str(exc)
    if isinstance(exc, NotASitemap):
        return f"{exc} (configured as type: sitemap)"
    if isinstance(exc, TaskTimeout | WorkerCrashed):
        return f"parsing took longer than {PARSE_TIME_LIMIT:g}s"
    return f"cannot parse {kind}: {type(exc).__name__}: {exc}"
