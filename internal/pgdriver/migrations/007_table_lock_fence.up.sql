-- The position transaction id of the last conditional append that locked
-- the events table (a condition item without tags). An append in a caller's
-- transaction refuses to record events that would land before it (see
-- notTooOld in statements.go).
CREATE TABLE IF NOT EXISTS {{schema}}.table_lock_fence (
    id             int  PRIMARY KEY DEFAULT 1 CHECK (id = 1),
    transaction_id xid8 NOT NULL
);
INSERT INTO {{schema}}.table_lock_fence (transaction_id) VALUES ('0') ON CONFLICT DO NOTHING;
