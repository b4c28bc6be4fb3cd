-- Version 2: stories (the meaning of SQLite's version 6). story_ref identifies an article for
-- stories (a 56-bit hash of its identity); story_id is the story_ref of the story's first
-- article; story_sig its signature; story_keys its LSH keys, indexed for candidates.
ALTER TABLE articles ADD COLUMN story_ref bigint;
ALTER TABLE articles ADD COLUMN story_id bigint;
ALTER TABLE articles ADD COLUMN story_sig bytea;
CREATE INDEX articles_story_id ON articles (story_id) WHERE story_id IS NOT NULL;
CREATE INDEX articles_story_ref ON articles (story_ref) WHERE story_ref IS NOT NULL;

CREATE TABLE story_keys (
    key       bigint      NOT NULL,
    story_ref bigint      NOT NULL,
    published timestamptz NOT NULL,
    PRIMARY KEY (key, story_ref)
);
CREATE INDEX story_keys_published ON story_keys (published);

ALTER TABLE alerts ADD COLUMN kind text NOT NULL DEFAULT 'match';
ALTER TABLE alerts ADD COLUMN story_alert_id text;
CREATE INDEX alerts_story_alert_id ON alerts (story_alert_id) WHERE story_alert_id IS NOT NULL;
