-- Version 6: stories. Copies of one report across outlets form one story; a watchlist alerts
-- once per story. story_ref identifies an article for stories (a 56-bit hash of its identity,
-- known before it is stored); story_id is the story_ref of the story's first article;
-- story_sig is its signature (monitor/stories). story_keys holds each article's LSH keys, so
-- the candidates of a new article are found by index. Existing articles keep NULLs: they belong
-- to no story (they were alerted per article).
ALTER TABLE articles ADD COLUMN story_ref INTEGER;
ALTER TABLE articles ADD COLUMN story_id INTEGER;
ALTER TABLE articles ADD COLUMN story_sig BLOB;
CREATE INDEX articles_story_id ON articles (story_id) WHERE story_id IS NOT NULL;
CREATE INDEX articles_story_ref ON articles (story_ref) WHERE story_ref IS NOT NULL;

CREATE TABLE story_keys (
    key       INTEGER NOT NULL,
    story_ref INTEGER NOT NULL,
    published TEXT    NOT NULL,
    PRIMARY KEY (key, story_ref)
) WITHOUT ROWID;
CREATE INDEX story_keys_published ON story_keys (published);

-- An alert is a story's first alert for a watchlist ('match'), or a later copy attached to it
-- ('also_reported', story_alert_id = the story's alert).
ALTER TABLE alerts ADD COLUMN kind TEXT NOT NULL DEFAULT 'match';
ALTER TABLE alerts ADD COLUMN story_alert_id TEXT;
CREATE INDEX alerts_story_alert_id ON alerts (story_alert_id) WHERE story_alert_id IS NOT NULL;
