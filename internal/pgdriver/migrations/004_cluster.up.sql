-- A position is (transaction id, seq), the transaction id coming from the
-- cluster that wrote the event. Transaction ids belong to one cluster: a
-- schema restored from a dump into another cluster, or moved to it by
-- logical replication, finds a transaction counter that may be behind the
-- positions it holds. The cluster table records the cluster the positions
-- follow (its pg_control_system() identifier) and the offset added to its
-- transaction ids: zero until the schema lands on a cluster whose counter is
-- behind, where meowmx raises it, under a lock on the events table, so that
-- new positions follow the stored ones. The two functions below are the only
-- places the offset appears: meowmx replaces them when it changes. Both are
-- simple SQL functions, inlined into the statements that call them.
CREATE OR REPLACE FUNCTION {{schema}}.current_position_txid() RETURNS xid8
    LANGUAGE sql STABLE PARALLEL UNSAFE
    AS 'SELECT pg_current_xact_id()';

CREATE OR REPLACE FUNCTION {{schema}}.visible_horizon() RETURNS xid8
    LANGUAGE sql STABLE PARALLEL SAFE
    AS 'SELECT pg_snapshot_xmin(pg_current_snapshot())';

ALTER TABLE {{schema}}.events ALTER COLUMN transaction_id SET DEFAULT {{schema}}.current_position_txid();

CREATE TABLE IF NOT EXISTS {{schema}}.cluster (
    id                int         PRIMARY KEY DEFAULT 1 CHECK (id = 1),
    system_identifier bigint      NOT NULL,
    position_offset   bigint      NOT NULL DEFAULT 0,
    updated_at        timestamptz NOT NULL DEFAULT now()
);

-- The cluster this migration runs on. If the schema was moved here before
-- this migration existed, the check that follows every migration finds the
-- counter behind the stored positions and re-bases them.
INSERT INTO {{schema}}.cluster (system_identifier)
SELECT system_identifier FROM pg_control_system()
ON CONFLICT (id) DO NOTHING;
