-- Events. Writers are serialized (BEGIN IMMEDIATE), so the AUTOINCREMENT seq,
-- which is never reused, is also commit order: the global position.
CREATE TABLE IF NOT EXISTS {{prefix}}events (
    seq         INTEGER PRIMARY KEY AUTOINCREMENT,
    category    TEXT    NOT NULL,
    stream_id   TEXT    NOT NULL,
    stream_hash INTEGER NOT NULL, -- meowmx.StreamHash, for partitioned subscriptions
    version     INTEGER NOT NULL,
    event_id    TEXT    NOT NULL,
    type        TEXT    NOT NULL,
    data        TEXT    NOT NULL,
    metadata    TEXT,
    recorded_at INTEGER NOT NULL, -- microseconds since the Unix epoch, UTC
    CONSTRAINT {{prefix}}events_stream_version_key UNIQUE (category, stream_id, version),
    CONSTRAINT {{prefix}}events_event_id_key UNIQUE (event_id)
);

CREATE INDEX IF NOT EXISTS {{prefix}}events_category_seq_idx ON {{prefix}}events (category, seq);
