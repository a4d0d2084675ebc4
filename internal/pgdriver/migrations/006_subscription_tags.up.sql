-- A subscription may keep only the events that carry all of its tags.
ALTER TABLE {{schema}}.subscriptions ADD COLUMN IF NOT EXISTS tags text[] NOT NULL DEFAULT '{}';
