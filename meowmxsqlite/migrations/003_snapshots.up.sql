-- Aggregate snapshots: a stream's state at a version, in a schema version of
-- the application's; a snapshot of another schema version is ignored.
CREATE TABLE IF NOT EXISTS {{prefix}}snapshots (
    category       TEXT    NOT NULL,
    stream_id      TEXT    NOT NULL,
    version        INTEGER NOT NULL,
    schema_version INTEGER NOT NULL,
    state          TEXT    NOT NULL,
    created_at     INTEGER NOT NULL,
    PRIMARY KEY (category, stream_id, schema_version, version)
);
