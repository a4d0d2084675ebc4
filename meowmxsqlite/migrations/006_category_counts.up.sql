-- Each category's counts of events and streams up to a sequence number: a
-- listing of categories counts only the events after it, and moves it on
-- (see categoriesSQL in statements.go).
CREATE TABLE IF NOT EXISTS {{prefix}}category_counts (
    category TEXT    PRIMARY KEY,
    seq      INTEGER NOT NULL,
    events   INTEGER NOT NULL,
    streams  INTEGER NOT NULL
);
