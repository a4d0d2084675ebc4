-- Appends of one process recorded together (see appendGroupSQL in
-- statements.go) skip a row that a unique index refuses; an append of
-- several events could then keep only some of them. This function aborts
-- the whole statement instead, with its own SQLSTATE, and the appends are
-- made one by one.
CREATE OR REPLACE FUNCTION {{schema}}.refuse_partial_append() RETURNS int
    LANGUAGE plpgsql VOLATILE
    AS $$ BEGIN RAISE EXCEPTION 'an append of a group would record only part of its events' USING ERRCODE = 'MXP01'; END $$;
