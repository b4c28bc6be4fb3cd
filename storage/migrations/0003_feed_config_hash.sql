-- Version 3: a fingerprint of each feed's configuration, so editing a disabled feed's entry in the
-- config (after a 410 Gone, say) re-enables it: the user changed something, so try again.
ALTER TABLE feeds ADD COLUMN config_hash TEXT;
