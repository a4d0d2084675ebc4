-- Each category's counts of events and streams up to a position below the
-- visibility horizon, where no later commit can land: a listing of
-- categories counts only the events after it, and moves it on (see
-- categoriesSQL in statements.go).
CREATE TABLE IF NOT EXISTS {{schema}}.category_counts (
    category       text   PRIMARY KEY,
    transaction_id xid8   NOT NULL,
    seq            bigint NOT NULL,
    events         bigint NOT NULL,
    streams        bigint NOT NULL
);
