"""Wiring and lifecycle: builds the pieces from a Config, runs them, shuts them down in time.

Scheduling state lives in storage (next poll, backoff, Retry-After), so a restart resumes the
schedule. APScheduler's AsyncIOScheduler drives the periodic jobs: the dispatcher tick that hands
due feeds to bounded poll workers, and the health line. A per-feed APScheduler job would keep a
second copy of that state in memory; one query for due feeds scales to 10,000 feeds instead.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import signal
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import aiohttp
from apscheduler.schedulers.asyncio import AsyncIOScheduler

from monitor.deliver.base import delivery_session, make_sender
from monitor.deliver.outbox import ChannelWorker, Outbox
from monitor.deliver.retry import RetryPolicy
from monitor.fetch import Fetcher
from monitor.lag import LagProbe
from monitor.logs import register_secrets
from monitor.match import Matcher
from monitor.pipeline import Pipeline, PollResult
from monitor.settings import Config, FeedConfig, format_duration, iter_secrets
from monitor.workers import CpuPool, PoolClosed
from storage import open_storage
from storage.base import FeedSpec, FeedState, Storage

log = logging.getLogger(__name__)

SHUTDOWN_GRACE = 6.0  # seconds in-flight polls get after SIGTERM; the contract allows 10 in all
DISPATCH_TICK = 1.0
POLL_LEASE = 600.0  # seconds a claimed feed is ours; its poll's outcome ends the lease sooner


@dataclass(slots=True)
class RunStats:
    polls: int = 0
    errors: int = 0
    new_articles: int = 0
    alerts: int = 0
    results: list[PollResult] = field(default_factory=list)
    keep_results: bool = True  # a one-pass run reports every poll; the daemon only counts

    def add(self, r: PollResult) -> None:
        self.polls += 1
        self.errors += r.status == "error"
        self.new_articles += r.new
        self.alerts += r.alerts
        if self.keep_results:
            self.results.append(r)


class Daemon:
    def __init__(self, cfg: Config, storage: Storage | None = None) -> None:
        self.cfg = cfg
        self.storage: Storage = storage or open_storage(cfg.storage.url)
        self.feeds: dict[str, FeedConfig] = {f.url: f for f in cfg.feeds if f.enabled}
        self.pool = CpuPool(cfg.extraction.workers)
        self.fetcher = Fetcher(cfg.fetch)
        self.matcher = Matcher.build(cfg.watchlists)
        self.stats = RunStats()
        self.lag = LagProbe()
        self._http: aiohttp.ClientSession | None = None
        self.outbox: Outbox | None = None
        self.pipeline: Pipeline | None = None
        self._inflight: dict[int, asyncio.Task[None]] = {}
        self._max_polls = max(1, cfg.fetch.concurrency)  # feeds polled at once
        self._dispatch_wake = asyncio.Event()
        self._outbox_stop = asyncio.Event()
        self._running = False
        self._reload_lock = asyncio.Lock()
        register_secrets(iter_secrets(cfg))

    # ------------------------------------------------------------------ lifecycle
    async def __aenter__(self) -> Daemon:
        # As a daemon: SQLite refuses a second one, and takes back what a dead one left leased.
        await self.storage.open("daemon")
        await self.storage.sync_feeds([feed_spec(f) for f in self.feeds.values()])
        await self.fetcher.__aenter__()
        self._http = delivery_session(self.cfg.fetch)
        self.outbox = self._build_outbox()
        self.pipeline = Pipeline(
            self.cfg,
            self.storage,
            self.fetcher,
            self.pool,
            self.matcher,
        )
        self.lag.start()
        return self

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
            )
        return Outbox(workers, self.storage)

    def _digest_watchlists(self, channel: str) -> frozenset[str]:
        """Watchlists whose alerts this channel gathers into digests (``digest:`` on the watchlist)."""
        return frozenset(
            wl.name
            for wl in self.cfg.watchlists
            if wl.digest is not None and channel in wl.channels
        )

    async def __aexit__(self, *exc: object) -> None:
        await self.lag.stop()
        if self._http is not None:
            await self._http.close()
        await self.fetcher.close()
        self.pool.close()
        if self.pipeline is not None:
            await self.pipeline.flush()  # batched writes in progress finish before close
        await self.storage.close()

    # ------------------------------------------------------------------ polling
    async def _poll(self, state: FeedState) -> None:
        assert self.pipeline is not None
        feed = self.feeds.get(state.key)
        if feed is None:
            return
        try:
            result = await self.pipeline.poll(feed, state)
        except asyncio.CancelledError:
            raise
        except PoolClosed:
            log.info("poll abandoned at shutdown feed=%s", state.key)
            return
        except Exception as exc:
            log.exception("poll crashed feed=%s error=%r", state.key, exc)
            result = PollResult(state.key, "error", error=repr(exc))
            try:
                await self.pipeline.record_crash(feed, state, exc)
            except Exception as exc2:  # storage itself is failing: the dispatcher keeps trying
                log.error("cannot record poll failure feed=%s error=%r", state.key, exc2)
        self.stats.add(result)
        if result.alerts and self.outbox is not None:
            self.outbox.wake()

    async def _run_poll(self, state: FeedState) -> None:
        try:
            await self._poll(state)
        finally:
            self._inflight.pop(state.id, None)
            self._dispatch_wake.set()

    async def dispatch(self, stop: asyncio.Event) -> None:
        """Hand due feeds to poll tasks as slots free up; sleep when nothing is due."""
        while not stop.is_set():
            keys = list(self.feeds)  # re-read: a reload may have changed the feeds
            free = self._max_polls - len(self._inflight)
            due: list[FeedState] = []
            if free > 0:
                try:
                    due = await self.storage.claim_feeds(datetime.now(UTC), keys, free, POLL_LEASE)
                except Exception as exc:  # a locked or full disk must not end the daemon
                    log.error("dispatch failed error=%r; retrying in %gs", exc, DISPATCH_TICK)
                due = [s for s in due if s.id not in self._inflight][:free]
            for state in due:
                self._inflight[state.id] = asyncio.create_task(
                    self._run_poll(state), name=f"poll:{state.key}"
                )
            self._dispatch_wake.clear()
            try:
                await asyncio.wait_for(
                    self._dispatch_wake.wait(), DISPATCH_TICK if not due else 0.05
                )
            except TimeoutError:
                pass

    async def run(self, stop: asyncio.Event) -> int:
        """The daemon: poll on schedule and deliver until ``stop`` is set; 0 after a clean shutdown."""
        assert self.outbox is not None
        scheduler = AsyncIOScheduler(timezone="UTC")
        scheduler.add_job(
            self._dispatch_wake.set,
            "interval",
            seconds=DISPATCH_TICK,
            id="dispatch-tick",
            coalesce=True,
            max_instances=1,
        )
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
                next_run_time=datetime.now(UTC) + timedelta(minutes=1),
            )
        scheduler.start()
        self.stats.keep_results = False  # runs for months: count polls, do not keep them
        self._outbox_stop = asyncio.Event()
        self.outbox.start(self._outbox_stop)
        self._running = True
        log.info(
            "daemon started feeds=%d channels=%d watchlists=%d",
            len(self.feeds),
            len(self.cfg.channels),
            len(self.cfg.watchlists),
        )
        dispatcher = asyncio.create_task(self.dispatch(stop), name="dispatcher")
        await stop.wait()
        t0 = time.monotonic()
        log.info("shutting down in_flight_polls=%d", len(self._inflight))
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
        await self.outbox.join(timeout=max(0.5, SHUTDOWN_GRACE + 1 - (time.monotonic() - t0)))
        log.info("daemon stopped seconds=%.2f", time.monotonic() - t0)
        return 0

    async def reload(self, new: Config) -> list[str]:
        """Apply an edited config to the running daemon (SIGHUP); return what changed.

        Feeds, watchlists and channels change live: the matcher is rebuilt only when the
        watchlists changed, and channel workers are restarted only when the channels did.
        Storage, fetch and extraction settings need a restart; a change there is logged and
        ignored. Polls and sends in flight finish with the config they started with.
        """
        async with self._reload_lock:
            changed: list[str] = []
            for key in ("storage", "fetch", "extraction"):
                if getattr(new, key) != getattr(self.cfg, key):
                    log.warning(
                        "reload: %s settings change only on restart; keeping the old ones", key
                    )
            new = new.model_copy(
                update={
                    "storage": self.cfg.storage,
                    "fetch": self.cfg.fetch,
                    "extraction": self.cfg.extraction,
                }
            )
            register_secrets(iter_secrets(new))
            old = self.cfg
            if new.watchlists != old.watchlists:
                # Building the matcher (gazetteer lookups) is CPU work: keep it off the loop.
                self.matcher = await asyncio.to_thread(Matcher.build, new.watchlists)
                changed.append("watchlists")
            if new.feeds != old.feeds:
                self.feeds = {f.url: f for f in new.feeds if f.enabled}
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
            self._dispatch_wake.set()
            return changed

    async def prune(self) -> int:
        """Drop article text past `storage.keep_text` (identities stay: nothing re-alerts)."""
        keep = self.cfg.storage.keep_text
        if keep <= 0:
            return 0
        try:
            n = await self.storage.prune_text(datetime.now(UTC) - timedelta(seconds=keep))
        except Exception as exc:  # housekeeping never stops the daemon
            log.error("prune failed error=%r", exc)
            return 0
        if n:
            log.info("pruned article text articles=%d older_than=%s", n, format_duration(keep))
        return n

    async def _log_health(self) -> None:
        assert self.outbox is not None
        pending = await self.storage.pending_count()
        log.info(
            "health polls=%d errors=%d new=%d alerts=%d queued=%d loop_lag_p99_ms=%.1f",
            self.stats.polls, self.stats.errors, self.stats.new_articles, self.stats.alerts, pending,
            self.lag.percentile(99) * 1000,
        )  # fmt: skip

    async def run_once(self) -> int:
        """One pass: poll every enabled feed now (unless the server asked us to wait), then drain."""
        assert self.outbox is not None
        now = datetime.now(UTC)
        states = await self.storage.list_feeds(list(self.feeds))
        runnable = [
            s for s in states if not s.disabled and not (s.retry_after and s.retry_after > now)
        ]
        for s in states:
            if s.disabled:
                log.info("feed skipped feed=%s reason=%r", s.key, s.disabled)
            elif s.retry_after and s.retry_after > now:
                log.info(
                    "feed skipped feed=%s reason=server asked to wait until %s",
                    s.key,
                    s.retry_after.isoformat(),
                )
        # A fixed set of poll workers, not one task per feed: 10,000 tasks created at once stall
        # the event loop for a quarter of a second and hold 10,000 coroutine frames.
        queue = iter(runnable)

        async def worker() -> None:
            for state in queue:
                await self._poll(state)

        # Deliver while polling, so early alerts do not wait for the slowest feed; then the same
        # workers drain (no send is cut short between the two phases).
        self.outbox.start(asyncio.Event())
        await asyncio.gather(
            *(worker() for _ in range(min(len(runnable), max(1, self.cfg.fetch.concurrency))))
        )
        deadline = time.monotonic() + self.cfg.delivery.drain_seconds
        remaining = await self.outbox.drain(deadline)
        await self.prune()  # cron users get housekeeping too
        log.info(
            "pass complete feeds=%d errors=%d new=%d alerts=%d still_queued=%d",
            self.stats.polls, self.stats.errors, self.stats.new_articles, self.stats.alerts, remaining,
        )  # fmt: skip
        return 0


def feed_spec(feed: FeedConfig) -> FeedSpec:
    """A feed as storage knows it; the fingerprint changes when the user edits its config entry."""
    digest = hashlib.sha256(feed.model_dump_json().encode()).hexdigest()[:16]
    return FeedSpec(key=feed.url, name=feed.name, fingerprint=digest)


def install_signal_handlers(stop: asyncio.Event, reload: asyncio.Event | None = None) -> None:
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    if reload is not None:
        loop.add_signal_handler(signal.SIGHUP, reload.set)


async def reload_on_signal(daemon: Daemon, path: str | None, signal_event: asyncio.Event) -> None:
    """Re-read the config whenever SIGHUP arrives; a broken edit keeps the running config."""
    from monitor.settings import ConfigError, load_config

    while True:
        await signal_event.wait()
        signal_event.clear()
        try:
            new = await asyncio.to_thread(load_config, path)
        except ConfigError as exc:
            for line in exc.errors:
                log.error("reload failed; keeping the running config error=%r", line)
            continue
        try:
            changed = await daemon.reload(new)
        except ValueError as exc:  # e.g. a place the gazetteer does not know
            log.error("reload failed; keeping the running config error=%r", str(exc))
            continue
        log.info("config reloaded changed=%s", ",".join(changed) or "nothing")
