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

-- append_events records a batch in one call. It returns one row per event,
-- with o_status:
--   0 recorded (the rows carry version, position and time);
--   1 version conflict (one row, o_current is the stream's version);
--   2 the first event ID is already recorded (the stored events of its stream
--     from that one on, for the caller to recognise an idempotent retry);
--   3 this transaction's id is below the one that wrote the stream's last
--     event (recording would invert the stream's order in the global log).
-- Writers to one stream are serialized by a transaction-scoped advisory lock
-- taken before the transaction needs an id, so an append in a transaction of
-- its own always gets an id above that of the stream's previous writer.
CREATE OR REPLACE FUNCTION {{schema}}.append_events(
    p_category  text,
    p_stream_id text,
    p_stream_hash bigint,
    p_expected  bigint,
    p_ids       uuid[],
    p_types     text[],
    p_data      jsonb[],
    p_metadata  jsonb[]
) RETURNS TABLE (
    o_status         int,
    o_current        bigint,
    o_transaction_id xid8,
    o_seq            bigint,
    o_category       text,
    o_stream_id      text,
    o_version        bigint,
    o_id             uuid,
    o_type           text,
    o_data           jsonb,
    o_metadata       jsonb,
    o_recorded_at    timestamptz
) LANGUAGE plpgsql AS $fn$
DECLARE
    v_n       int := cardinality(p_ids);
    v_current bigint;
    v_last_tx xid8;
    v_found   record;
BEGIN
    PERFORM pg_advisory_xact_lock(hashtextextended({{schema_literal}} || '.' || p_category || '-' || p_stream_id, 0));

    SELECT e.category, e.stream_id, e.version INTO v_found
      FROM {{schema}}.events e
     WHERE e.event_id = p_ids[1];
    IF FOUND THEN
        RETURN QUERY
            SELECT 2, NULL::bigint, e.transaction_id, e.seq, e.category, e.stream_id, e.version,
                   e.event_id, e.type, e.data, e.metadata, e.recorded_at
              FROM {{schema}}.events e
             WHERE e.category = v_found.category
               AND e.stream_id = v_found.stream_id
               AND e.version >= v_found.version
             ORDER BY e.version
             LIMIT v_n;
        RETURN;
    END IF;

    SELECT e.version, e.transaction_id INTO v_current, v_last_tx
      FROM {{schema}}.events e
     WHERE e.category = p_category AND e.stream_id = p_stream_id
     ORDER BY e.version DESC
     LIMIT 1;
    IF NOT FOUND THEN
        v_current := -1;
    END IF;

    IF NOT (CASE p_expected
                WHEN -2 THEN true
                WHEN -1 THEN v_current = -1
                WHEN -3 THEN v_current >= 0
                ELSE v_current = p_expected
            END) THEN
        RETURN QUERY SELECT 1, v_current, NULL::xid8, NULL::bigint, NULL::text, NULL::text, NULL::bigint,
                            NULL::uuid, NULL::text, NULL::jsonb, NULL::jsonb, NULL::timestamptz;
        RETURN;
    END IF;

    IF v_last_tx IS NOT NULL AND pg_current_xact_id() < v_last_tx THEN
        RETURN QUERY SELECT 3, v_current, NULL::xid8, NULL::bigint, NULL::text, NULL::text, NULL::bigint,
                            NULL::uuid, NULL::text, NULL::jsonb, NULL::jsonb, NULL::timestamptz;
        RETURN;
    END IF;

    RETURN QUERY
        INSERT INTO {{schema}}.events AS e (category, stream_id, stream_hash, version, event_id, type, data, metadata)
        SELECT p_category, p_stream_id, p_stream_hash, v_current + i.ord, i.id, i.typ, i.dat, i.meta
          FROM unnest(p_ids, p_types, p_data, p_metadata) WITH ORDINALITY AS i(id, typ, dat, meta, ord)
         ORDER BY i.ord
        RETURNING 0, v_current, e.transaction_id, e.seq, NULL::text, NULL::text, e.version,
                  e.event_id, NULL::text, NULL::jsonb, NULL::jsonb, e.recorded_at;

    -- Wake listening subscriptions after commit. PostgreSQL folds identical
    -- notifications of one transaction into one.
    PERFORM pg_notify({{channel_literal}}, p_category);
END
$fn$;
