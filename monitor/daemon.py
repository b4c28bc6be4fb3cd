"""Wiring and lifecycle: builds the pieces from a Config, runs them, shuts them down in time.

Scheduling state lives in storage (next poll, backoff, Retry-After), so a restart resumes the
schedule. One dispatcher asks storage for due feeds and hands them to bounded poll tasks; a
per-feed APScheduler job would keep a second copy of that state in memory, where one query for
due feeds scales to 10,000 feeds. APScheduler drives the periodic housekeeping (health line,
pruning old text). Every wait goes through the injected clock, so tests move time by hand.
"""

from __future__ import annotations

import asyncio
import gc
import hashlib
import signal
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
from apscheduler.schedulers.asyncio import AsyncIOScheduler

from monitor import __version__
from monitor.alert import iso_z
from monitor.clock import SYSTEM, Clock, wait_event
from monitor.deliver.base import delivery_session, make_sender
from monitor.deliver.outbox import ChannelWorker, Outbox
from monitor.deliver.retry import RetryPolicy
from monitor.feeds import feed_display_name, feed_health, is_due, poll_time
from monitor.fetch import Fetcher
from monitor.lag import LagProbe
from monitor.logs import get_logger, redact, register_secrets, set_context
from monitor.match import Matcher
from monitor.metrics import Metrics
from monitor.pipeline import Pipeline, PollResult
from monitor.settings import Config, FeedConfig, format_duration, iter_secrets
from monitor.storydesk import StoryDesk
from monitor.urls import feed_key
from monitor.workers import PRELOAD, PRELOAD_PARSE, PRELOAD_STORIES, CpuPool, PoolClosed
from storage import open_storage
from storage.base import FeedSpec, FeedState, Storage, StorageError

log = get_logger(__name__)

SHUTDOWN_GRACE = 6.0  # seconds in-flight polls get after SIGTERM; the contract allows 10 in all
DISPATCH_TICK = 1.0
STORAGE_RETRY_FIRST = 1.0  # seconds before the first trial poll after storage failed
STORAGE_RETRY_MAX = 60.0
ONCE_STORAGE_GIVE_UP = 120.0  # `run --once` ends (exit 1) when storage fails this long
PROGRESS_EVERY = 10.0  # seconds between progress lines of a long pass
POLL_LEASE = 600.0  # seconds a claimed feed is ours; its poll's outcome ends the lease sooner
HEARTBEAT_EVERY = 10.0  # seconds between a daemon's heartbeats
DAEMON_TTL = 60.0  # a daemon silent this long is dead: others take over its leases


@dataclass(slots=True)
class RunStats:
    polls: int = 0
    errors: int = 0
    new_articles: int = 0
    alerts: int = 0
    results: list[PollResult] = field(default_factory=list)  # kept by a one-pass run only

    def add(self, r: PollResult, keep: bool) -> None:
        self.polls += 1
        self.new_articles += r.new
        self.alerts += r.alerts
        self.errors += r.status == "error"
        if keep:
            self.results.append(r)

    @property
    def failed_feeds(self) -> list[str]:
        return [r.feed for r in self.results if r.status == "error"]


@dataclass(slots=True)
class PassReport:
    """What one `run --once` pass did, for its exit code and summary line."""

    feeds: int
    failed_feeds: list[str]
    new_articles: int
    alerts: int
    alerts_failed: int
    still_queued: int
    unrecorded: int = 0  # polls whose results storage could not take (polled again next run)

    @property
    def attention(self) -> bool:
        return bool(self.failed_feeds or self.alerts_failed or self.still_queued or self.unrecorded)

    def summary(self) -> str:
        parts = [f"{self.feeds} feeds polled", f"{self.new_articles} new articles"]
        parts.append(f"{self.alerts} alerts")
        if self.failed_feeds:
            names = ", ".join(self.failed_feeds[:3]) + ("..." if len(self.failed_feeds) > 3 else "")
            parts.append(f"{len(self.failed_feeds)} feeds failed ({names})")
        if self.alerts_failed:
            parts.append(f"{self.alerts_failed} deliveries failed")
        if self.still_queued:
            parts.append(f"{self.still_queued} deliveries still queued for the next run")
        if self.unrecorded:
            parts.append(
                f"{self.unrecorded} polls could not be stored (storage failing); "
                "they are polled again next run"
            )
        return "; ".join(parts)


class StorageGate:
    """Polling pauses while storage fails: that is the daemon's failure, not the feeds'.

    A poll whose results cannot be written is not the feed's fault, and polling on would only
    hammer its server (each attempt fetches again, since nothing was recorded). After a storage
    error the dispatcher starts no poll until a backoff has passed, then one trial poll; its
    success reopens the gate. One log line per change of state, not per poll.
    """

    def __init__(self, clock: Clock, metrics: Metrics | None = None) -> None:
        self.clock = clock
        self.metrics = metrics
        self.failing = False
        self.errors = 0
        self.since: datetime | None = None
        self.last_error: str | None = None
        self._next_try = 0.0
        self._trial = False

    def failed(self, exc: BaseException) -> None:
        self.errors += 1
        self._trial = False
        delay = min(STORAGE_RETRY_MAX, STORAGE_RETRY_FIRST * 2 ** (self.errors - 1))
        self._next_try = self.clock.monotonic() + delay
        self.last_error = str(exc)
        if not self.failing:
            self.failing = True
            self.since = self.clock.now()
            log.error("storage failing; polling paused", error=str(exc), retry_in=delay)
            if self.metrics is not None:
                self.metrics.storage_up.set(0)

    def ok(self) -> None:
        self._trial = False
        if self.failing:
            paused = (self.clock.now() - self.since).total_seconds() if self.since else 0.0
            log.info("storage answers again; polling resumed", paused_seconds=round(paused, 1))
            if self.metrics is not None:
                self.metrics.storage_up.set(1)
        self.failing = False
        self.errors = 0
        self.since = None

    def allowance(self) -> int | None:
        """Polls that may start now: None = no limit; 0 = paused; 1 = a trial poll."""
        if not self.failing:
            return None
        if self._trial or self.clock.monotonic() < self._next_try:
            return 0
        return 1

    def trial_started(self) -> None:
        if self.failing:
            self._trial = True

    def wait_hint(self) -> float:
        return max(0.0, self._next_try - self.clock.monotonic()) if self.failing else DISPATCH_TICK


class Progress:
    """Logs how far a long pass has come: every 10 % or every PROGRESS_EVERY seconds."""

    def __init__(self, total: int, clock: Clock, what: str = "pass progress") -> None:
        self.total = total
        self.clock = clock
        self.what = what
        self.done = 0
        self._last_logged = clock.monotonic()
        self._last_tenth = 0

    def step(self, stats: RunStats) -> None:
        self.done += 1
        if self.total < 20:
            return
        tenth = self.done * 10 // self.total
        now = self.clock.monotonic()
        if tenth > self._last_tenth or now - self._last_logged >= PROGRESS_EVERY:
            self._last_tenth, self._last_logged = tenth, now
            log.info(
                self.what,
                polled=self.done, of=self.total, errors=stats.errors, new=stats.new_articles,
                alerts=stats.alerts,
            )  # fmt: skip


def settle_heap() -> None:
    """Freeze what start-up (or a reload) built: config, feed list, matcher, imported modules.

    A full collection walks every tracked object. Without this the daemon's start-up heap
    (~130,000 objects at 10,000 feeds) made each one take ~100 ms, a stall of the event loop
    several times a pass; frozen, it walks only what the polls allocated since. A reload
    unfreezes first, so the matcher and feed list it replaces can still be collected.
    """
    gc.unfreeze()
    gc.collect()
    gc.freeze()


class Daemon:
    def __init__(
        self,
        cfg: Config,
        storage: Storage | None = None,
        *,
        clock: Clock = SYSTEM,
        matcher: Matcher | None = None,
        freeze_heap: bool = False,
    ) -> None:
        self.cfg = cfg
        self.clock = clock
        # The process is this daemon's alone (`feedwatch run`): see settle_heap. Tests, which
        # open hundreds of daemons in one process, leave it off.
        self.freeze_heap = freeze_heap
        self.storage: Storage = storage or open_storage(cfg.storage.url)
        # host:pid:token: shown in logs, status and metrics; the owner of this daemon's leases.
        self.daemon_id = self.storage.identity
        self.feeds: dict[str, FeedConfig] = {feed_key(f.url): f for f in cfg.feeds if f.enabled}
        self.metrics = Metrics(self.daemon_id)
        extracts = any(cfg.feed_extract(f) for f in cfg.feeds if f.enabled)
        preload = PRELOAD if extracts else PRELOAD_PARSE
        self.stories: StoryDesk | None = None
        if cfg.stories.enabled and cfg.watchlists:
            self.stories = StoryDesk(cfg.stories.window)
            preload = [*preload, *PRELOAD_STORIES]
        self.pool = CpuPool(
            cfg.extraction.workers, on_kill=self.metrics.worker_kills.inc, preload=preload
        )
        self.fetcher = Fetcher(cfg.fetch)
        self.matcher = matcher if matcher is not None else Matcher.build(cfg.watchlists)
        self.stats = RunStats()
        self.lag = LagProbe()
        self.gate = StorageGate(clock, self.metrics)
        self.ready = False  # storage open and the first scheduling pass started (/readyz)
        self._http: aiohttp.ClientSession | None = None
        self.outbox: Outbox | None = None
        self.pipeline: Pipeline | None = None
        self.server: Any = None
        self._inflight: dict[int, asyncio.Task[None]] = {}
        self._max_polls = max(1, cfg.fetch.concurrency)  # feeds polled at once
        self._dispatch_wake = asyncio.Event()
        self._outbox_stop = asyncio.Event()
        self._running = False
        self._reload_lock = asyncio.Lock()
        self._stack = AsyncExitStack()
        self._progress: Progress | None = None
        self.rounds = 0  # dispatcher rounds done (a test on a fake clock waits for the next)
        self.waiting = False  # the dispatcher is waiting for a wake-up or its tick
        register_secrets(iter_secrets(cfg))
        set_context(daemon=self.daemon_id)

    # ------------------------------------------------------------------ lifecycle
    async def __aenter__(self) -> Daemon:
        """Open everything; if any step fails, close what was opened and raise (never hang)."""
        try:
            await self._open()
        except BaseException:
            await self._close()
            raise
        return self

    async def _open(self) -> None:
        stack = self._stack
        stack.callback(self.pool.close)
        self.pool.warm()  # the fork server imports its parsers meanwhile
        # As a daemon: SQLite refuses a second one, and takes back what a dead one left leased.
        await self.storage.open("daemon")
        stack.push_async_callback(self.storage.close)
        await self.storage.register_daemon(self.clock.now(), __version__, DAEMON_TTL)
        stack.push_async_callback(self._unregister)
        self._heartbeat = asyncio.create_task(self._beat(), name="heartbeat")
        stack.push_async_callback(_cancel, self._heartbeat)
        if self.stories is not None:
            stack.callback(self.stories.close)
            await self.stories.rebuild(self.storage, self.clock.now())
        await self.storage.sync_feeds([feed_spec(f) for f in self.feeds.values()])
        await self.fetcher.__aenter__()
        stack.push_async_callback(self.fetcher.close)
        self._http = delivery_session(self.cfg.fetch)
        stack.push_async_callback(self._http.close)
        self.outbox = self._build_outbox()
        self.pipeline = Pipeline(
            self.cfg,
            self.storage,
            self.fetcher,
            self.pool,
            self.matcher,
            clock=self.clock,
            metrics=self.metrics,
            stories=self.stories,
        )
        stack.push_async_callback(self.pipeline.flush)  # batched writes finish before close
        if self.freeze_heap:
            settle_heap()
        self.lag.start()
        stack.push_async_callback(self.lag.stop)
        if self.cfg.server is not None:
            from monitor.server import Server, build_app

            self.server = Server(self.cfg.server, build_app(self.cfg.server, self._probes()))
            await self.server.start()
            stack.push_async_callback(self.server.stop)

    async def _close(self) -> None:
        await self._stack.aclose()

    async def __aexit__(self, *exc: object) -> None:
        await self._close()

    async def _beat(self) -> None:
        """Stay registered: a daemon that stops beating is dead to the others (its leases are
        taken over). A failed beat is retried at the next one; storage failing is the gate's."""
        while True:
            await self.clock.sleep(HEARTBEAT_EVERY)
            try:
                await self.storage.heartbeat(self.clock.now(), DAEMON_TTL)
            except StorageError as exc:
                log.warning("heartbeat failed", error=str(exc))

    async def _unregister(self) -> None:
        """A clean stop: hand back our feed leases and unsent deliveries at once."""
        try:
            await self.storage.unregister_daemon(self.clock.now())
        except StorageError as exc:
            log.warning(
                "could not unregister; others take over once the lease lapses", error=str(exc)
            )

    def _build_outbox(self) -> Outbox:
        assert self._http is not None
        policy = RetryPolicy.from_settings(self.cfg.delivery)
        workers: dict[str, ChannelWorker] = {}
        for name, ch in self.cfg.channels.items():
            sender = make_sender(
                name, ch, self._http, allow_private_networks=self.cfg.fetch.allow_private_networks
            )
            workers[name] = ChannelWorker(
                name,
                sender,
                self.storage,
                policy,
                concurrency=ch.concurrency,
                rate=ch.rate,
                digest=ch.digest is not None,
                digest_watchlists=self._digest_watchlists(name),
                timeout=float(getattr(ch, "timeout", 30.0)),
                clock=self.clock,
                metrics=self.metrics,
            )
        return Outbox(workers, self.storage, clock=self.clock)

    def _digest_watchlists(self, channel: str) -> frozenset[str]:
        """Watchlists whose alerts this channel gathers into digests (``digest:`` on the watchlist)."""
        return frozenset(
            wl.name
            for wl in self.cfg.watchlists
            if wl.digest is not None and channel in wl.channels
        )

    # ------------------------------------------------------------------ HTTP probes
    def _probes(self) -> Any:
        from monitor.server import Probes
        from monitor.web import Dashboard, daemon_backend, mount

        assert self.cfg.server is not None
        probes = Probes(health=self.health, ready=self.readiness, metrics=self.render_metrics)
        return mount(probes, Dashboard(daemon_backend(self), self.cfg.server))

    async def health(self) -> tuple[bool, dict[str, Any]]:
        """Healthy while the loop runs (this answers) and storage answers and takes writes."""
        detail: dict[str, Any] = {"daemon": self.daemon_id}
        try:
            await self.storage.ping()
        except StorageError as exc:
            detail["storage"] = f"not answering: {exc}"
            return False, detail
        if self.gate.failing:
            detail["storage"] = (
                f"writes failing since {iso_z(self.gate.since)}: {self.gate.last_error}"
            )
            return False, detail
        detail["storage"] = "ok"
        return True, detail

    def readiness(self) -> tuple[bool, str]:
        if not self.ready:
            return False, "starting: storage opening or first scheduling pass not started"
        return True, "polling"

    async def render_metrics(self) -> bytes:
        m = self.metrics
        try:
            states = await self.storage.list_feeds(list(self.feeds))
            counts = dict.fromkeys(("ok", "failing", "disabled"), 0)
            for st in states:
                counts[feed_health(st)] += 1
            for state, n in counts.items():
                m.feeds.labels(state).set(n)
            queued, oldest = await self.storage.outbox_summary()
            m.outbox_queued.set(queued)
            m.outbox_oldest.set(
                max(0.0, (self.clock.now() - oldest).total_seconds()) if oldest else 0.0
            )
        except StorageError:
            m.storage_up.set(0)
        m.loop_lag.set(self.lag.percentile(99))
        return m.render()

    # ------------------------------------------------------------------ polling
    async def _poll(self, state: FeedState) -> PollResult | None:
        """One poll; None when it could not be recorded (shutdown, or storage failing)."""
        assert self.pipeline is not None
        feed = self.feeds.get(state.key)
        if feed is None:
            return None
        try:
            result = await self.pipeline.poll(feed, state)
        except asyncio.CancelledError:
            raise
        except PoolClosed:
            log.info("poll abandoned at shutdown", feed=state.key)
            return None
        except StorageError as exc:
            # Nothing of this poll was recorded: the feed stays due and is polled again once
            # storage answers. Not the feed's failure, so it is not counted against it.
            self.gate.failed(exc)
            return None
        except Exception as exc:
            log.exception("poll crashed", feed=state.key, error=repr(exc))
            result = PollResult(feed_display_name(feed, state), "error", error=repr(exc))
            try:
                await self.pipeline.record_crash(feed, state, exc)
            except StorageError as exc2:
                self.gate.failed(exc2)
                return None
        self.gate.ok()
        self._count(result)
        return result

    def _count(self, result: PollResult) -> None:
        self.stats.add(result, keep=not self._running)
        m = self.metrics
        m.polls.labels(
            result.status if result.status in ("ok", "not_modified", "unchanged") else "error"
        ).inc()
        if result.new:
            m.articles_new.inc(result.new)
        for watchlist, n in result.alerts_by_watchlist.items():
            m.alerts.labels(watchlist).inc(n)
        if result.alerts and self.outbox is not None:
            self.outbox.wake()
        if self._progress is not None:
            self._progress.step(self.stats)
            if self._progress.done >= self._progress.total:
                self._progress = None

    async def _run_poll(self, state: FeedState) -> None:
        try:
            await self._poll(state)
        finally:
            self._inflight.pop(state.id, None)
            self._dispatch_wake.set()

    async def dispatch(self, stop: asyncio.Event) -> None:
        """Hand due feeds to poll tasks as slots free up; sleep when nothing is due."""
        while not stop.is_set():
            # Cleared before the round, not after: a poll that ends while this round talks to
            # storage wakes the next round instead of being lost until the tick.
            self._dispatch_wake.clear()
            keys = list(self.feeds)  # re-read: a reload may have changed the feeds
            free = self._max_polls - len(self._inflight)
            allowed = self.gate.allowance()
            if allowed is not None:
                free = min(free, allowed)
            due: list[FeedState] = []
            if free > 0:
                try:
                    due = await self.storage.claim_feeds(
                        self.clock.now(), keys, free, POLL_LEASE, exclude=list(self._inflight)
                    )
                except StorageError as exc:  # a locked or full disk must not end the daemon
                    self.gate.failed(exc)
            if due:
                self.gate.trial_started()
            for state in due:
                self._inflight[state.id] = asyncio.create_task(
                    self._run_poll(state), name=f"poll:{state.key}"
                )
            self.ready = True
            wait = 0.05 if due else min(DISPATCH_TICK, self.gate.wait_hint() or DISPATCH_TICK)
            self.rounds += 1
            self.waiting = True
            await wait_event(self._dispatch_wake, wait, self.clock)
            self.waiting = False

    async def run(self, stop: asyncio.Event) -> int:
        """The daemon: poll on schedule and deliver until ``stop`` is set; 0 after a clean shutdown."""
        assert self.outbox is not None
        scheduler = AsyncIOScheduler(timezone="UTC")
        scheduler.add_job(
            self._log_health, "interval", minutes=5, id="health", coalesce=True, max_instances=1
        )
        if self.cfg.storage.keep_text > 0:
            scheduler.add_job(
                self.prune,
                "interval",
                hours=6,
                id="prune",
                coalesce=True,
                max_instances=1,
                # APScheduler keeps real time (housekeeping only), whatever clock polls use.
                next_run_time=datetime.now(UTC) + timedelta(minutes=1),
            )
        scheduler.start()
        self._running = True
        await self._log_start()
        self._outbox_stop = asyncio.Event()
        self.outbox.start(self._outbox_stop)
        dispatcher = asyncio.create_task(self.dispatch(stop), name="dispatcher")
        await stop.wait()
        t0 = self.clock.monotonic()
        log.info("shutting down", in_flight_polls=len(self._inflight))
        scheduler.shutdown(wait=False)
        self._running = False
        self._outbox_stop.set()
        dispatcher.cancel()
        await asyncio.gather(dispatcher, return_exceptions=True)
        if self._inflight:
            _, pending = await asyncio.wait(list(self._inflight.values()), timeout=SHUTDOWN_GRACE)
            for t in pending:
                t.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        await self.outbox.join(timeout=max(0.5, SHUTDOWN_GRACE + 1 - (self.clock.monotonic() - t0)))
        log.info("daemon stopped", seconds=round(self.clock.monotonic() - t0, 2))
        return 0

    async def _log_start(self) -> None:
        """What the daemon has to do: feeds, how many are due now, when the next poll is."""
        now = self.clock.now()
        states = await self.storage.list_feeds(list(self.feeds))
        due = [s for s in states if is_due(s, now)]
        later = [poll_time(s) for s in states if not is_due(s, now) and not s.disabled]
        nxt = min((t for t in later if t is not None), default=None)
        disabled = sum(1 for s in states if s.disabled)
        log.info(
            "daemon started",
            daemon=self.daemon_id, feeds=len(self.feeds), due_now=len(due), disabled=disabled,
            next_poll=iso_z(now if due else nxt), channels=len(self.cfg.channels),
            watchlists=len(self.cfg.watchlists),
        )  # fmt: skip
        if len(due) >= 20:
            self._progress = Progress(len(due), self.clock, "catching up")

    async def reload(self, new: Config) -> list[str]:
        """Apply an edited config to the running daemon (SIGHUP); return what changed.

        Feeds, watchlists and channels change live: the matcher is rebuilt only when the
        watchlists changed, and channel workers are restarted only when the channels did.
        Storage, fetch, extraction and server settings need a restart; a change there is
        logged and ignored. Polls and sends in flight finish with the config they started with.
        """
        async with self._reload_lock:
            changed: list[str] = []
            fixed = ("storage", "fetch", "extraction", "server")
            for key in fixed:
                if getattr(new, key) != getattr(self.cfg, key):
                    log.warning(
                        "reload: settings change only on restart; keeping the old ones", section=key
                    )
            new = new.model_copy(update={key: getattr(self.cfg, key) for key in fixed})
            register_secrets(iter_secrets(new))
            old = self.cfg
            if new.watchlists != old.watchlists:
                # Building the matcher (gazetteer lookups) is CPU work: keep it off the loop.
                self.matcher = await asyncio.to_thread(Matcher.build, new.watchlists)
                changed.append("watchlists")
            if new.feeds != old.feeds:
                self.feeds = {feed_key(f.url): f for f in new.feeds if f.enabled}
                await self.storage.sync_feeds([feed_spec(f) for f in self.feeds.values()])
                changed.append("feeds")
            if new.defaults != old.defaults or new.delivery != old.delivery:
                changed.append("defaults/delivery")
            self.cfg = new
            if self.pipeline is not None:
                self.pipeline.reconfigure(new, self.matcher)
            channels_changed = (
                new.channels != old.channels
                or (
                    [(w.name, w.digest, w.channels) for w in new.watchlists]
                    != [(w.name, w.digest, w.channels) for w in old.watchlists]
                )
                or new.delivery != old.delivery
            )
            if channels_changed and self.outbox is not None:
                changed.append("channels")
                if self._running:
                    self._outbox_stop.set()
                    await self.outbox.join(timeout=SHUTDOWN_GRACE)
                    self.outbox = self._build_outbox()
                    self._outbox_stop = asyncio.Event()
                    self.outbox.start(self._outbox_stop)
                else:
                    self.outbox = self._build_outbox()
            if self.freeze_heap and ("watchlists" in changed or "feeds" in changed):
                settle_heap()  # the old matcher and feed list are collectable again
            self._dispatch_wake.set()
            return changed

    async def prune(self) -> int:
        """Drop article text past `storage.keep_text` (identities stay: nothing re-alerts)."""
        keep = self.cfg.storage.keep_text
        try:
            if self.stories is not None:
                await self.stories.evict(self.storage, self.clock.now())
            if keep <= 0:
                return 0
            n = await self.storage.prune_text(self.clock.now() - timedelta(seconds=keep))
        except StorageError as exc:  # housekeeping never stops the daemon
            log.error("prune failed", error=str(exc))
            return 0
        if n:
            log.info("pruned article text", articles=n, older_than=format_duration(keep))
        return n

    async def _log_health(self) -> None:
        try:
            pending = await self.storage.pending_count()
        except StorageError:
            pending = -1
        log.info(
            "health",
            polls=self.stats.polls, errors=self.stats.errors, new=self.stats.new_articles,
            alerts=self.stats.alerts, queued=pending, storage="failing" if self.gate.failing else "ok",
            loop_lag_p99_ms=round(self.lag.percentile(99) * 1000, 1),
        )  # fmt: skip

    async def run_once(self) -> PassReport:
        """One pass: poll every enabled feed now (unless the server asked us to wait), then drain."""
        assert self.outbox is not None
        now = self.clock.now()
        states = await self.storage.list_feeds(list(self.feeds))
        runnable = [
            s for s in states if not s.disabled and not (s.retry_after and s.retry_after > now)
        ]
        for s in states:
            if s.disabled:
                log.info("feed skipped", feed=s.key, reason=s.disabled)
            elif s.retry_after and s.retry_after > now:
                log.info(
                    "feed skipped",
                    feed=s.key,
                    reason=f"the server asked us to wait until {iso_z(s.retry_after)}",
                )
        log.info("pass started", feeds=len(runnable), skipped=len(states) - len(runnable))
        progress = Progress(len(runnable), self.clock)
        self.ready = True
        # A fixed set of poll workers, not one task per feed: 10,000 tasks created at once stall
        # the event loop for a quarter of a second and hold 10,000 coroutine frames.
        queue = iter(runnable)
        gave_up = asyncio.Event()
        unrecorded = 0

        async def worker() -> None:
            nonlocal unrecorded
            for state in queue:
                while True:
                    allowed = self.gate.allowance()
                    if allowed is None or allowed > 0:
                        break
                    if (
                        self.gate.since
                        and (self.clock.now() - self.gate.since).total_seconds()
                        > ONCE_STORAGE_GIVE_UP
                    ):
                        gave_up.set()
                        return
                    await self.clock.sleep(
                        min(DISPATCH_TICK, self.gate.wait_hint() or DISPATCH_TICK)
                    )
                self.gate.trial_started()
                result = await self._poll(state)
                if result is not None:
                    progress.step(self.stats)
                elif self.gate.failing:
                    unrecorded += 1

        # Deliver while polling, so early alerts do not wait for the slowest feed; then the same
        # workers drain (no send is cut short between the two phases).
        self.outbox.start(asyncio.Event())
        failed_before = sum(w.failed for w in self.outbox.workers.values())
        await asyncio.gather(
            *(worker() for _ in range(min(len(runnable), max(1, self.cfg.fetch.concurrency))))
        )
        if gave_up.is_set():
            raise StorageError(
                f"storage kept failing for {ONCE_STORAGE_GIVE_UP:g}s: {self.gate.last_error}"
            )
        deadline = self.clock.monotonic() + self.cfg.delivery.drain_seconds
        remaining = await self.outbox.drain(deadline)
        await self.prune()  # cron users get housekeeping too
        report = PassReport(
            feeds=self.stats.polls,
            failed_feeds=list(self.stats.failed_feeds),
            new_articles=self.stats.new_articles,
            alerts=self.stats.alerts,
            alerts_failed=sum(w.failed for w in self.outbox.workers.values()) - failed_before,
            still_queued=remaining,
            unrecorded=unrecorded,
        )
        log.info(
            "pass complete",
            feeds=report.feeds, errors=len(report.failed_feeds), new=report.new_articles,
            alerts=report.alerts, deliveries_failed=report.alerts_failed, still_queued=remaining,
        )  # fmt: skip
        return report


async def _cancel(task: asyncio.Task[None]) -> None:
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


def feed_spec(feed: FeedConfig) -> FeedSpec:
    """A feed as storage knows it (never with credentials); the fingerprint changes when the
    user edits its config entry."""
    digest = hashlib.sha256(feed.model_dump_json().encode()).hexdigest()[:16]
    name = redact(feed.name) if feed.name else None  # a name from ${VAR} is not stored
    return FeedSpec(key=feed_key(feed.url), name=name, fingerprint=digest)


def install_signal_handlers(stop: asyncio.Event, reload: asyncio.Event | None = None) -> None:
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    if reload is not None:
        loop.add_signal_handler(signal.SIGHUP, reload.set)


async def reload_on_signal(daemon: Daemon, path: str | None, signal_event: asyncio.Event) -> None:
    """Re-read the config whenever SIGHUP arrives; a broken edit keeps the running config."""
    from monitor.settings import ConfigError, load_config
    from monitor.validate import check_watchlists

    while True:
        await signal_event.wait()
        signal_event.clear()
        try:
            new = await asyncio.to_thread(load_config, path)
            await asyncio.to_thread(check_watchlists, new)
        except ConfigError as exc:
            for line in exc.errors:
                log.error("reload refused; keeping the running config", error=line)
            continue
        try:
            changed = await daemon.reload(new)
        except ValueError as exc:
            log.error("reload refused; keeping the running config", error=str(exc))
            continue
        log.info("config reloaded", changed=",".join(changed) or "nothing")
