"""Prometheus metrics of one daemon, with the official client library.

Counters and histograms are updated where things happen (a poll ends, a page is fetched, an
alert is stored, a delivery is recorded). Gauges that describe state in storage (feeds by state,
outbox depth and oldest age) are read from storage when ``/metrics`` is scraped, so they are
right even with several daemons on one database. Names follow Prometheus conventions: a
``feedwatch_`` prefix, base units (seconds, bytes), ``_total`` on counters.
"""

from __future__ import annotations

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    ProcessCollector,
    generate_latest,
)

POLL_OUTCOMES = ("ok", "not_modified", "unchanged", "error")
FEED_STATES = ("ok", "failing", "disabled")


class Metrics:
    """Every metric of one daemon, in its own registry (tests build several daemons)."""

    def __init__(self, daemon_id: str = "") -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        ProcessCollector(registry=r)  # process_resident_memory_bytes, cpu seconds, open fds
        self.polls = Counter("feedwatch_polls", "Feed polls by outcome.", ["outcome"], registry=r)
        for outcome in POLL_OUTCOMES:
            self.polls.labels(outcome)
        self.fetch_seconds = Histogram(
            "feedwatch_fetch_duration_seconds",
            "Time from connect to last byte of successful requests (feeds and pages).",
            ["kind"],
            buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
            registry=r,
        )
        self.fetch_bytes = Counter(
            "feedwatch_fetch_bytes", "Bytes received (decompressed).", ["kind"], registry=r
        )
        self.articles_new = Counter(
            "feedwatch_articles_new", "Articles stored for the first time.", registry=r
        )
        self.alerts = Counter(
            "feedwatch_alerts", "Alerts stored (one per story and watchlist).", ["watchlist"],
            registry=r,
        )  # fmt: skip
        self.deliveries = Counter(
            "feedwatch_deliveries",
            "Delivery attempts by channel and outcome (delivered, retry, failed).",
            ["channel", "outcome"],
            registry=r,
        )
        self.extract_failures = Counter(
            "feedwatch_extract_failures",
            "Article pages whose text could not be extracted (the feed summary is kept).",
            ["reason"],
            registry=r,
        )
        self.worker_kills = Counter(
            "feedwatch_worker_kills",
            "Worker processes killed for running past a task's deadline.",
            registry=r,
        )
        self.outbox_queued = Gauge(
            "feedwatch_outbox_queued", "Deliveries neither delivered nor failed.", registry=r
        )
        self.outbox_oldest = Gauge(
            "feedwatch_outbox_oldest_age_seconds",
            "Age of the oldest undelivered delivery (0 when none).",
            registry=r,
        )
        self.feeds = Gauge("feedwatch_feeds", "Configured feeds by state.", ["state"], registry=r)
        self.loop_lag = Gauge(
            "feedwatch_event_loop_lag_seconds",
            "Event-loop lag: p99 of recent probes (a 100 ms sleep waking late).",
            registry=r,
        )
        self.storage_up = Gauge(
            "feedwatch_storage_up", "1 while storage answers, 0 while it fails.", registry=r
        )
        self.info = Gauge(
            "feedwatch_daemon_info", "This daemon's identity.", ["daemon"], registry=r
        )
        self.info.labels(daemon_id).set(1)
        self.storage_up.set(1)

    def render(self) -> bytes:
        return generate_latest(self.registry)
