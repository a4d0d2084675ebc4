-- Subscriptions: one row per (subscription, partition), holding the
-- checkpoint (the position of the last handled event), the filter, and the
-- lease of the worker that owns the partition. generation grows on every
-- reset, so that a worker holding an older one cannot commit past it.
CREATE TABLE IF NOT EXISTS {{schema}}.subscriptions (
    name           text        NOT NULL,
    partition      int         NOT NULL,
    partitions     int         NOT NULL,
    categories     text[]      NOT NULL,
    types          text[]      NOT NULL,
    transaction_id xid8        NOT NULL,
    seq            bigint      NOT NULL,
    generation     bigint      NOT NULL DEFAULT 0,
    owner          text,
    lease_until    timestamptz,
    updated_at     timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT subscriptions_pkey PRIMARY KEY (name, partition)
);

-- Workers of a subscription announce themselves here, so that partitions can
-- be shared out evenly among the live ones.
CREATE TABLE IF NOT EXISTS {{schema}}.subscription_workers (
    name        text        NOT NULL,
    worker      text        NOT NULL,
    alive_until timestamptz NOT NULL,
    CONSTRAINT subscription_workers_pkey PRIMARY KEY (name, worker)
);

-- Events a subscription's handler failed on, set aside so that the rest keep
-- flowing. replay asks the subscription's workers to handle them again.
CREATE TABLE IF NOT EXISTS {{schema}}.parked_events (
    subscription text        NOT NULL,
    partition    int         NOT NULL,
    event_id     uuid        NOT NULL,
    error        text        NOT NULL,
    attempts     int         NOT NULL,
    replay       boolean     NOT NULL DEFAULT false,
    parked_at    timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT parked_events_pkey PRIMARY KEY (subscription, event_id)
);
