-- A subscription may keep only the events that carry all of its tags (a
-- JSON array).
ALTER TABLE {{prefix}}subscriptions ADD COLUMN tags TEXT NOT NULL DEFAULT '[]';
