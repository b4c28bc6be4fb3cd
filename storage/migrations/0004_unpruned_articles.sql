-- Version 4: find articles whose text has not been pruned yet (storage.keep_text) without
-- walking every old, already-pruned row.
CREATE INDEX articles_unpruned ON articles (fetched_at) WHERE body != '' OR summary != '';
