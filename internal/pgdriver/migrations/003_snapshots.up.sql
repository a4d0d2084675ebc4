-- Aggregate snapshots: a stream's state at a version, in a schema version of
-- the application's; a snapshot of another schema version is ignored.
CREATE TABLE IF NOT EXISTS {{schema}}.snapshots (
    category       text        NOT NULL,
    stream_id      text        NOT NULL,
    version        bigint      NOT NULL,
    schema_version int         NOT NULL,
    state          jsonb       NOT NULL,
    created_at     timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT snapshots_pkey PRIMARY KEY (category, stream_id, schema_version, version)
);
