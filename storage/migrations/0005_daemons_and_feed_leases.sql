-- Version 5: several daemons. A feed is polled by the daemon holding its lease (claim_feeds);
-- last_polled_by names the daemon that recorded the last poll. Daemons register themselves and
-- renew alive_until; the leases of one that stops renewing are taken over by the others.
ALTER TABLE feeds ADD COLUMN lease_owner TEXT;
ALTER TABLE feeds ADD COLUMN lease_until TEXT;
ALTER TABLE feeds ADD COLUMN last_polled_by TEXT;

CREATE TABLE daemons (
    id           TEXT PRIMARY KEY,                  -- host:pid:token, the owner on its leases
    host         TEXT    NOT NULL,
    pid          INTEGER NOT NULL,
    version      TEXT,
    started_at   TEXT    NOT NULL,
    heartbeat_at TEXT    NOT NULL,
    alive_until  TEXT    NOT NULL,                  -- taken for dead after this
    stopped_at   TEXT                               -- a clean stop
) WITHOUT ROWID;
CREATE INDEX daemons_alive_until ON daemons (alive_until);
