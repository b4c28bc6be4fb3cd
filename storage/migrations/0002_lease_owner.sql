-- Version 2: who holds an in-flight lease ("host:pid:token"), so a restarted daemon can take back
-- the rows its dead predecessor was sending at once instead of waiting for the lease to expire.
ALTER TABLE deliveries ADD COLUMN lease_owner TEXT;
