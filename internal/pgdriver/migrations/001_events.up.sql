-- Events, in one table per schema. The position in the global log is
-- (transaction_id, seq): readers take only rows whose transaction_id is below
-- the oldest running transaction (pg_snapshot_xmin), so a transaction that
-- commits late with a small seq is never skipped.
CREATE TABLE IF NOT EXISTS {{schema}}.events (
    seq            bigint GENERATED ALWAYS AS IDENTITY,
    transaction_id xid8        NOT NULL DEFAULT pg_current_xact_id(),
    category       text        NOT NULL,
    stream_id      text        NOT NULL,
    stream_hash    bigint      NOT NULL, -- meowmx.StreamHash, for partitioned subscriptions
    version        bigint      NOT NULL,
    event_id       uuid        NOT NULL,
    type           text        NOT NULL,
    data           jsonb       NOT NULL,
    metadata       jsonb,
    recorded_at    timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT events_pkey PRIMARY KEY (transaction_id, seq),
    CONSTRAINT events_stream_version_key UNIQUE (category, stream_id, version),
    CONSTRAINT events_event_id_key UNIQUE (event_id)
);

CREATE INDEX IF NOT EXISTS events_category_position_idx
    ON {{schema}}.events (category, transaction_id, seq);
