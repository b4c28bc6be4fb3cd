-- Version 6: full-text search and the dashboard's history.
-- articles_fts: an FTS5 index over each article's title, summary and extracted body (the text
-- stays in articles: "external content"); case and Latin accents are ignored. A body that is
-- only the summary again (no extraction) is indexed once, as the matcher reads it. New articles
-- are indexed by the storage layer with one INSERT ... SELECT per batch (add_articles,
-- import_rows): a per-row insert trigger costs four times the CPU (bench/search.py). Updates
-- (prune_text blanks summary and body) and deletes keep it current through the triggers.
CREATE VIRTUAL TABLE articles_fts USING fts5 (
    title, summary, body,
    content = 'articles', content_rowid = 'id',
    tokenize = 'unicode61 remove_diacritics 2'
);
-- Merge index segments in bigger steps (the defaults are 4 and 16): a third less CPU per
-- stored article, searches as fast (bench/search.py).
INSERT INTO articles_fts (articles_fts, rank) VALUES ('automerge', 16);
INSERT INTO articles_fts (articles_fts, rank) VALUES ('crisismerge', 64);
INSERT INTO articles_fts (rowid, title, summary, body)
    SELECT id, title, summary, CASE WHEN body = summary THEN '' ELSE body END FROM articles;
CREATE TRIGGER articles_fts_delete AFTER DELETE ON articles BEGIN
    INSERT INTO articles_fts (articles_fts, rowid, title, summary, body)
    VALUES ('delete', old.id, old.title, old.summary,
            CASE WHEN old.body = old.summary THEN '' ELSE old.body END);
END;
CREATE TRIGGER articles_fts_update AFTER UPDATE OF title, summary, body ON articles BEGIN
    INSERT INTO articles_fts (articles_fts, rowid, title, summary, body)
    VALUES ('delete', old.id, old.title, old.summary,
            CASE WHEN old.body = old.summary THEN '' ELSE old.body END);
    INSERT INTO articles_fts (rowid, title, summary, body)
    VALUES (new.id, new.title, new.summary,
            CASE WHEN new.body = new.summary THEN '' ELSE new.body END);
END;
-- A feed's recent articles, newest first, without walking every article.
CREATE INDEX articles_feed_fetched ON articles (feed_id, fetched_at);

-- Failed polls, the newest 50 per feed (older ones are dropped as new ones come).
CREATE TABLE feed_events (
    id          INTEGER PRIMARY KEY,
    feed_id     INTEGER NOT NULL REFERENCES feeds (id),
    at          TEXT    NOT NULL,
    http_status INTEGER,
    error       TEXT
);
CREATE INDEX feed_events_feed ON feed_events (feed_id, id);
CREATE TRIGGER feed_events_bound AFTER INSERT ON feed_events BEGIN
    DELETE FROM feed_events WHERE feed_id = new.feed_id AND id <= (
        SELECT id FROM feed_events WHERE feed_id = new.feed_id ORDER BY id DESC LIMIT 1 OFFSET 50);
END;

-- Polls and failed polls per hour (the hour's start), for the dashboard's 24-hour chart.
CREATE TABLE poll_hours (
    hour   TEXT    PRIMARY KEY,
    polls  INTEGER NOT NULL DEFAULT 0,
    errors INTEGER NOT NULL DEFAULT 0
) WITHOUT ROWID;
