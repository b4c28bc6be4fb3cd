-- feedwatch schema, version 1.
-- Times are UTC text in one fixed-width format (YYYY-MM-DDTHH:MM:SS.ffffffZ), so text order is
-- time order and MIN/ORDER BY/range comparisons work on the stored strings directly.

CREATE TABLE feeds (
    id            INTEGER PRIMARY KEY,
    key           TEXT    NOT NULL UNIQUE,          -- the URL as configured: identity
    url           TEXT    NOT NULL,                 -- the URL polled now (after 301/308)
    name          TEXT,                             -- configured name (NULL: use title)
    title         TEXT,                             -- the feed's own title
    etag          TEXT,
    last_modified TEXT,
    body_hash     TEXT,
    last_poll     TEXT,
    last_success  TEXT,
    next_poll     TEXT,                             -- NULL = due now
    http_status   INTEGER,
    error_count   INTEGER NOT NULL DEFAULT 0,
    last_error    TEXT,
    disabled      TEXT,                             -- reason; NULL = enabled
    retry_after   TEXT,
    interval      REAL,
    items_per_day REAL,
    ttl           REAL,
    total_items   INTEGER NOT NULL DEFAULT 0,
    extra         TEXT    NOT NULL DEFAULT '{}',    -- JSON object
    created_at    TEXT    NOT NULL
);
CREATE INDEX feeds_next_poll ON feeds (next_poll);

CREATE TABLE articles (
    id            INTEGER PRIMARY KEY,
    feed_id       INTEGER NOT NULL REFERENCES feeds (id),
    guid          TEXT,
    url           TEXT,
    canonical_url TEXT,
    title         TEXT    NOT NULL,
    summary       TEXT    NOT NULL DEFAULT '',
    body          TEXT    NOT NULL DEFAULT '',
    author        TEXT,
    published     TEXT,
    language      TEXT,
    extract_error TEXT,
    fetched_at    TEXT    NOT NULL
);
-- The same article: the same GUID within a feed, or the same canonical URL anywhere.
CREATE UNIQUE INDEX articles_feed_guid ON articles (feed_id, guid) WHERE guid IS NOT NULL;
CREATE UNIQUE INDEX articles_canonical_url ON articles (canonical_url)
    WHERE canonical_url IS NOT NULL;
CREATE INDEX articles_fetched_at ON articles (fetched_at);

CREATE TABLE alerts (
    id         TEXT    PRIMARY KEY,                 -- stable per (watchlist, article): webhook-id
    watchlist  TEXT    NOT NULL,
    article_id INTEGER NOT NULL REFERENCES articles (id),
    created_at TEXT    NOT NULL,
    payload    TEXT    NOT NULL,                    -- the webhook payload, JSON
    UNIQUE (watchlist, article_id)
);
CREATE INDEX alerts_created_at ON alerts (created_at);
CREATE INDEX alerts_article_id ON alerts (article_id);

-- The outbox: one row per (alert, channel).
CREATE TABLE deliveries (
    alert_id      TEXT    NOT NULL REFERENCES alerts (id),
    channel       TEXT    NOT NULL,
    state         TEXT    NOT NULL DEFAULT 'pending'
                  CHECK (state IN ('pending', 'in_flight', 'delivered', 'failed')),
    attempts      INTEGER NOT NULL DEFAULT 0,
    next_attempt  TEXT    NOT NULL,
    lease_until   TEXT,
    first_attempt TEXT,
    last_attempt  TEXT,
    last_status   INTEGER,
    last_error    TEXT,
    delivered_at  TEXT,
    created_at    TEXT    NOT NULL,
    PRIMARY KEY (alert_id, channel)
) WITHOUT ROWID;
CREATE INDEX deliveries_due ON deliveries (channel, state, next_attempt);
CREATE INDEX deliveries_lease ON deliveries (channel, state, lease_until);
CREATE INDEX deliveries_failed ON deliveries (alert_id) WHERE state = 'failed';
