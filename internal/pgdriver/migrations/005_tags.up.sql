-- Tags: an event's tags are stored with it (returned by every read), and
-- each tag once more in event_tags, keyed by (tag, position), so that the
-- events of a tag are an index range in the global order. The statements
-- that append tagged events fill event_tags in the same statement (those of
-- untagged events are unchanged: a trigger would cost every append).
ALTER TABLE {{schema}}.events ADD COLUMN IF NOT EXISTS tags text[];

CREATE TABLE IF NOT EXISTS {{schema}}.event_tags (
    tag            text   NOT NULL,
    transaction_id xid8   NOT NULL,
    seq            bigint NOT NULL,
    CONSTRAINT event_tags_pkey PRIMARY KEY (tag, transaction_id, seq)
);
