-- Tags: an event's tags are stored with it as a JSON array (returned by
-- every read), and each tag once more in event_tags, keyed by (tag, seq), so
-- that the events of a tag are an index range in the global order. A
-- trigger fills event_tags from every insert of a tagged event.
ALTER TABLE {{prefix}}events ADD COLUMN tags TEXT;

CREATE TABLE IF NOT EXISTS {{prefix}}event_tags (
    tag TEXT    NOT NULL,
    seq INTEGER NOT NULL,
    PRIMARY KEY (tag, seq)
) WITHOUT ROWID;

CREATE TRIGGER IF NOT EXISTS {{prefix}}events_tags AFTER INSERT ON {{prefix}}events
    WHEN NEW.tags IS NOT NULL
BEGIN
    INSERT OR IGNORE INTO {{prefix}}event_tags (tag, seq) SELECT value, NEW.seq FROM json_each(NEW.tags);
END;
