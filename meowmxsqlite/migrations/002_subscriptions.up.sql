-- Subscriptions: one row per (subscription, partition), holding the
-- checkpoint (seq of the last handled event), the filter (JSON arrays), and
-- the lease of the worker that owns the partition. generation grows on every
-- reset. Times are microseconds since the Unix epoch.
CREATE TABLE IF NOT EXISTS {{prefix}}subscriptions (
    name        TEXT    NOT NULL,
    partition   INTEGER NOT NULL,
    partitions  INTEGER NOT NULL,
    categories  TEXT    NOT NULL,
    types       TEXT    NOT NULL,
    seq         INTEGER NOT NULL,
    generation  INTEGER NOT NULL DEFAULT 0,
    owner       TEXT,
    lease_until INTEGER,
    updated_at  INTEGER NOT NULL,
    PRIMARY KEY (name, partition)
);

CREATE TABLE IF NOT EXISTS {{prefix}}subscription_workers (
    name        TEXT    NOT NULL,
    worker      TEXT    NOT NULL,
    alive_until INTEGER NOT NULL,
    PRIMARY KEY (name, worker)
);

CREATE TABLE IF NOT EXISTS {{prefix}}parked_events (
    subscription TEXT    NOT NULL,
    partition    INTEGER NOT NULL,
    event_id     TEXT    NOT NULL,
    error        TEXT    NOT NULL,
    attempts     INTEGER NOT NULL,
    replay       INTEGER NOT NULL DEFAULT 0,
    parked_at    INTEGER NOT NULL,
    PRIMARY KEY (subscription, event_id)
);
