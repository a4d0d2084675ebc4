package pgdriver

import (
	"regexp"
	"strings"
	"sync"

	"github.com/jackc/pgx/v5"

	"github.com/meowmx/meowmx/meowmxdriver"
)

// statements holds every SQL statement the driver runs, for one schema.
type statements struct {
	schema string
	ident  string // quoted identifier

	// conditional holds the statements of conditional appends by shape
	// (see conditionalAppendSQL).
	conditional sync.Map

	createMigrations  string
	appliedMigrations string
	recordMigration   string

	append      string
	appendTx    string
	appendGroup string
	// appendGroupCond is appendGroupSQL for groups with conditional appends.
	appendGroupCond string

	// The same statements for appends with tagged events: they store the
	// tags and fill event_tags too.
	appendTagged, appendTxTagged, appendGroupTagged, appendAtTagged, appendAt1Tagged string
	copiedTags                                                                       string
	// lockTags takes the advisory locks of a conditional append or of a
	// tagged append in the caller's transaction (lockSQL);
	// lockEventsShared locks the events table against every writer, for a
	// condition with an item without tags.
	lockTags, lockEventsShared string
	// raiseFence records, after lockEventsShared, the transaction's
	// position id in table_lock_fence (see notTooOld).
	raiseFence      string
	copiedFrom      string
	appendVerdict   string
	appendAt        string
	appendAt1       string
	existingFrom    string
	readStreamFwd   string
	readStreamBack  string
	readAll         string
	readCategory    string
	streamVersion   string
	streams         string
	categoryStreams string
	categories      string
	// saveCategoryCounts stores what a listing of categories counted.
	saveCategoryCounts string

	clusterState  string
	lockEvents    string
	recordCluster string

	sub subscriptionStatements

	saveSnapshot, loadSnapshot, deleteSnapshots string
}

const eventColumns = `transaction_id, seq, category, stream_id, version, event_id, type, data, metadata, recorded_at, tags`

// visible limits a global read to transactions that have all finished: every
// transaction id below the snapshot's xmin has committed or aborted, so no
// event can still appear before the returned ones. visible_horizon() is
// that xmin, plus the schema's position offset (see cluster.go).
const visible = `transaction_id < {{schema}}.visible_horizon()`

// streamsSQL lists a page of streams after ($1, $2), at most $3, with
// their last events: a loose index scan, one descent of the (category,
// stream_id, version) index to find each next stream ({{next}} says which)
// and one for its last event, so that a page costs the same on a log of
// any size.
const streamsSQL = `WITH RECURSIVE s(category, stream_id, n) AS (
    SELECT $1::text, $2::text, 0
    UNION ALL
    SELECT n.category, n.stream_id, s.n + 1 FROM s CROSS JOIN LATERAL (
        SELECT e.category, e.stream_id FROM {{schema}}.events e
         WHERE {{next}}
         ORDER BY e.category, e.stream_id LIMIT 1) n
)
SELECT s.category, s.stream_id, l.version, l.transaction_id, l.seq, l.recorded_at
  FROM (SELECT category, stream_id, n FROM s OFFSET 1 LIMIT $3) s
 CROSS JOIN LATERAL (
    SELECT e.version, e.transaction_id, e.seq, e.recorded_at FROM {{schema}}.events e
     WHERE e.category = s.category AND e.stream_id = s.stream_id
     ORDER BY e.version DESC LIMIT 1) l
 ORDER BY s.n`

// categoriesSQL lists a page of categories after $1, at most $2: a loose
// index scan finds them. Their counts are those stored in category_counts
// up to a position, plus those of the events after it, read from the
// (category, transaction_id, seq) index: a listing costs what was appended
// since the counts were last stored, not the category's size. It also
// returns what to store (see saveCategoryCountsSQL): the category's last
// event below the visibility horizon, where no later commit can land, and
// the counts up to it, with how many events that moves on by.
// The last events are the first entries of the (category, transaction_id,
// seq) index below a bound in the category, a bound no other index can
// serve: with category = c, the planner may walk the primary key
// backwards instead, across every later event of other categories.
const categoriesSQL = `WITH RECURSIVE c(category) AS (
    SELECT $1::text
    UNION ALL
    SELECT n.category FROM c CROSS JOIN LATERAL (
        SELECT e.category FROM {{schema}}.events e WHERE e.category > c.category
         ORDER BY e.category LIMIT 1) n
), hz AS (SELECT {{schema}}.visible_horizon() AS horizon)
SELECT c.category, k.events + n.events, k.streams + n.streams, l.transaction_id, l.seq, l.recorded_at,
       s.transaction_id, s.seq, k.events + n.settled_events, k.streams + n.settled_streams, n.settled_events
  FROM (SELECT category FROM c OFFSET 1 LIMIT $2) c
 CROSS JOIN hz
 CROSS JOIN LATERAL (
    SELECT coalesce(k.transaction_id, '0'::xid8) AS transaction_id, coalesce(k.seq, 0) AS seq,
           coalesce(k.events, 0) AS events, coalesce(k.streams, 0) AS streams
      FROM (SELECT) one LEFT JOIN {{schema}}.category_counts k ON k.category = c.category) k
 CROSS JOIN LATERAL (
    SELECT count(*) AS events, count(*) FILTER (WHERE e.version = 0) AS streams,
           count(*) FILTER (WHERE e.transaction_id < hz.horizon) AS settled_events,
           count(*) FILTER (WHERE e.transaction_id < hz.horizon AND e.version = 0) AS settled_streams
      FROM {{schema}}.events e
     WHERE e.category = c.category AND (e.transaction_id, e.seq) > (k.transaction_id, k.seq)) n
 CROSS JOIN LATERAL (
    SELECT e.transaction_id, e.seq, e.recorded_at FROM {{schema}}.events e
     WHERE (e.category, e.transaction_id, e.seq) <= (c.category, '18446744073709551615'::xid8, 0)
     ORDER BY e.category DESC, e.transaction_id DESC, e.seq DESC LIMIT 1) l
  LEFT JOIN LATERAL (
    SELECT e.transaction_id, e.seq FROM {{schema}}.events e
     WHERE (e.category, e.transaction_id, e.seq) < (c.category, hz.horizon, 0)
     ORDER BY e.category DESC, e.transaction_id DESC, e.seq DESC LIMIT 1) s ON true`

// saveCategoryCountsSQL stores a category's counts up to a position, unless
// counts up to a later one are stored already (by a concurrent listing).
const saveCategoryCountsSQL = `INSERT INTO {{schema}}.category_counts (category, transaction_id, seq, events, streams)
VALUES ($1, $2, $3, $4, $5)
ON CONFLICT (category) DO UPDATE
   SET transaction_id = excluded.transaction_id, seq = excluded.seq, events = excluded.events, streams = excluded.streams
 WHERE (category_counts.transaction_id, category_counts.seq) < (excluded.transaction_id, excluded.seq)`

// appendSQL records a batch in one statement, with one snapshot:
// $1 category, $2 stream ID, $3 stream hash, $4 expected version, then the
// events' IDs, types, data, metadata and tags (JSON arrays, see tagsOf) as
// arrays ($5 to $9). It inserts the
// events at the versions after the stream's last one if the expected
// version matches it and the first event ID is not recorded, and returns
// one row per event; else it inserts nothing, returns no row, and
// appendVerdictSQL says why.
//
// A writer that recorded the same versions since this statement's snapshot
// holds the (category, stream_id, version) unique index, so the insert fails
// (ErrVersionTaken) instead of writing a gap or a fork. The statement is as
// small a plan as the checks allow: at high concurrency its executor
// start-up, not its index probes, is what costs.
var appendSQL = `INSERT INTO {{schema}}.events AS e (category, stream_id, stream_hash, version, event_id, type, data, metadata/*tags*/, tags/*end*/)
SELECT $1, $2, $3, s.version + i.ord, i.id, i.type, i.data, i.metadata/*tags*/, ` + tagsOf("i.tags") + `/*end*/
  FROM (SELECT coalesce(` + lastVersionOf("$1", "$2") + `, -1) AS version) s,
       unnest($5::uuid[], $6::text[], $7::jsonb[], $8::jsonb[]/*tags*/, $9::jsonb[]/*end*/) WITH ORDINALITY AS i(id, type, data, metadata/*tags*/, tags/*end*/, ord)
 WHERE ` + expectedMatches + `
   AND NOT EXISTS (SELECT FROM {{schema}}.events d WHERE d.event_id = ($5::uuid[])[1])`

// tagged keeps the parts of a statement between /*tags*/ and /*end*/, for
// appends with tagged events; untagged drops them.
func tagged(sql string) string   { return taggedPart.ReplaceAllString(sql, "$1") }
func untagged(sql string) string { return taggedPart.ReplaceAllString(sql, "") }

var taggedPart = regexp.MustCompile(`(?s)/\*tags\*/(.*?)/\*end\*/`)

// insertTags is the part of a statement that records, in event_tags, the
// tags of the events that its CTE ins inserted.
const insertTags = `tg AS (
    INSERT INTO {{schema}}.event_tags (tag, transaction_id, seq)
    SELECT t, ins.transaction_id, ins.seq FROM ins CROSS JOIN LATERAL unnest(ins.tags) AS t)`

// withTags turns an append statement that ends in appendTail's RETURNING
// into one that records its events' tags as well.
func withTags(insert string) string {
	const returning = "RETURNING e.transaction_id, e.seq, e.version, e.recorded_at"
	if !strings.HasSuffix(insert, returning) {
		panic("meowmx: withTags of a statement that does not end in " + returning)
	}
	return "WITH ins AS (" + tagged(insert) + ", e.tags),\n" + insertTags + `
SELECT transaction_id, seq, version, recorded_at FROM ins ORDER BY version`
}

// tagsOf turns the JSON array of an event's tags (or NULL), as the array
// statements take them, into the tags column's text[].
func tagsOf(col string) string {
	return `CASE WHEN ` + col + ` IS NULL THEN NULL ELSE ARRAY(SELECT jsonb_array_elements_text(` + col + `)) END`
}

// appendTail ends appendSQL.
const appendTail = `
 ORDER BY i.ord
RETURNING e.transaction_id, e.seq, e.version, e.recorded_at`

// appendAtSQL is the append of a transaction of its own with an exact
// expected version ($4, -1 for a new stream): it inserts the events at the
// versions after $4, if version $4 is the stream's last. It does not probe
// the event IDs: a version after $4 recorded meanwhile, or an event ID
// already recorded, fails the insert on its unique index, and
// the caller asks appendVerdictSQL why. In a transaction of its own the
// failure aborts nothing else, and the order check is not needed (see
// notTooOld). The smallest plan of all: at high concurrency the executor's
// start-up costs more than the index probes.
var appendAtSQL = `INSERT INTO {{schema}}.events AS e (category, stream_id, stream_hash, version, event_id, type, data, metadata/*tags*/, tags/*end*/)
SELECT $1, $2, $3, $4::bigint + i.ord, i.id, i.type, i.data, i.metadata/*tags*/, ` + tagsOf("i.tags") + `/*end*/
  FROM unnest($5::uuid[], $6::text[], $7::jsonb[], $8::jsonb[]/*tags*/, $9::jsonb[]/*end*/) WITH ORDINALITY AS i(id, type, data, metadata/*tags*/, tags/*end*/, ord)
 WHERE ` + versionIsLast + sharedTagLocks("$10") + `
 ORDER BY i.ord
RETURNING e.transaction_id, e.seq, e.version, e.recorded_at`

// appendAt1SQL is appendAtSQL for one event, without arrays.
var appendAt1SQL = `INSERT INTO {{schema}}.events AS e (category, stream_id, stream_hash, version, event_id, type, data, metadata/*tags*/, tags/*end*/)
SELECT $1, $2, $3, $4::bigint + 1, $5, $6, $7, $8/*tags*/, $9::text[]/*end*/
 WHERE ` + versionIsLast + sharedTagLocks("$10") + `
RETURNING e.transaction_id, e.seq, e.version, e.recorded_at`

var versionIsLast = `($4::bigint = -1 OR ` + lastVersionOf("$1", "$2") + ` = $4::bigint)`

// lastVersionOf is the version of the last event of the stream (category,
// id), or NULL. It is written as the first row of the (category, stream_id,
// version) index backwards, not as max(version) or an EXISTS probe: on a
// new table without statistics, the planner found those as cheap through
// the category index (category, then a filter on the stream's rows), and a
// generic plan made then kept reading every event of the category as the
// table grew. Only the unique index gives the rows in version order.
func lastVersionOf(category, id string) string {
	return `(SELECT x.version FROM {{schema}}.events x WHERE x.category = ` + category + ` AND x.stream_id = ` + id +
		` ORDER BY x.version DESC LIMIT 1)`
}

// expectedMatches compares the stream's version s.version with the
// expected one, $4: -2 any, -1 no stream, -3 stream exists, else exact.
const expectedMatches = `CASE $4::bigint WHEN -2 THEN true
                         WHEN -1 THEN s.version = -1
                         WHEN -3 THEN s.version >= 0
                         ELSE s.version = $4::bigint END`

// notTooOld, in an append inside the caller's transaction, refuses to
// record after an event written by a transaction with a higher id: the
// caller's transaction took its id earlier, and the stream's order would
// invert in the global log. An append in a transaction of its own needs no
// such check: it takes its id when it inserts, after the last writer it saw
// committed took its own.
//
// It also refuses to record before a conditional append that locked the
// events table (table_lock_fence): such an append waits for every writer in
// progress, but not for a transaction that took its id elsewhere and inserts
// its events only after the lock is gone.
const notTooOld = `
   AND coalesce((SELECT t.transaction_id FROM {{schema}}.events t
                  WHERE t.category = $1 AND t.stream_id = $2
                  ORDER BY t.version DESC LIMIT 1) <= {{schema}}.current_position_txid(), true)
   AND (SELECT f.transaction_id FROM {{schema}}.table_lock_fence f) <= {{schema}}.current_position_txid()`

// appendGroupSQL records several appends of this process, to distinct
// streams, in one statement: one snapshot, taken before the statement's
// transaction has an id, so that no stream's last event can have been
// written by a transaction with a higher id (the inversion that notTooOld
// guards against in the caller's transactions). One array element per
// event: $1 category, $2 stream ID, $3 stream hash, $4 its append's
// expected version, $5 ID, $6 type, $7 data, $8 metadata, $10 tags (a
// JSON array or NULL), $9 place in its
// append from 1. Each event goes after its stream's last version as the
// statement's snapshot sees it (the statement does not see its own rows).
// An append whose expected version does not match inserts nothing and gets
// one row without a position, holding the stream's version, its conflict;
// the others are recorded; a row that a unique index refuses (a racing
// writer's version, a recorded event ID) aborts the whole statement, and
// the appends are then made one by one. It returns each recorded event's ID
// and place.
var appendGroupSQL = `WITH /*cond*/` + groupConditionsFailed + `, /*endcond*/i AS MATERIALIZED (
    SELECT i.*, s.version AS current,
           CASE i.expected WHEN -2 THEN true
                           WHEN -1 THEN s.version = -1
                           WHEN -3 THEN s.version >= 0
                           ELSE s.version = i.expected END AS matches
      FROM unnest($1::text[], $2::text[], $3::bigint[], $4::bigint[], $5::uuid[], $6::text[], $7::jsonb[], $8::jsonb[]/*tags*/, $10::jsonb[]/*end*/, $9::int[]/*cond*/, $12::int[]/*endcond*/)
           WITH ORDINALITY AS i(category, stream_id, stream_hash, expected, id, type, data, metadata/*tags*/, tags/*end*/, ord/*cond*/, m/*endcond*/, n)
     CROSS JOIN LATERAL (SELECT coalesce(` + lastVersionOf("i.category", "i.stream_id") + `, -1) AS version) s
), ins AS (
    INSERT INTO {{schema}}.events AS e (category, stream_id, stream_hash, version, event_id, type, data, metadata/*tags*/, tags/*end*/)
    SELECT category, stream_id, stream_hash, current + ord, id, type, data, metadata/*tags*/, ` + tagsOf("tags") + `/*end*/ FROM i WHERE matches` + sharedTagLocks("$11") + notFailed + ` ORDER BY n
    RETURNING e.event_id, e.transaction_id, e.seq, e.version, e.recorded_at/*tags*/, e.tags/*end*/
)/*tags*/, ` + insertTags + `/*end*/
SELECT event_id, transaction_id, seq, version, recorded_at FROM ins
UNION ALL
SELECT id, NULL, NULL, current, NULL FROM i WHERE NOT matches AND ord = 1` + notFailed

// groupConditionsFailed, in appendGroupSQL for groups with conditional
// appends (appendGroupCond), lists the appends (by $12, each event's
// append, from 1) whose condition fails: one row per condition item, $13
// its append, $14 its first tag, $15 and $16 the condition's position
// (the transaction id as text), $17 its other tags and $18 its types (JSON
// arrays, or NULL for none). Each item reads event_tags from its position
// on (a LATERAL ... LIMIT 1: as an EXISTS, the generic plan hashed the whole
// table), and checks the other tags and the types of each event found on
// the event's row, read by its position: a scalar subquery, which the
// planner cannot turn into a hash of every event of the types, as it did
// with an EXISTS when the table was small and the plan was made. Items without tags are never grouped (see
// locksOf). The statement runs after lockSQL, with a snapshot taken after
// the locks, and reads every committed event, as the check of a lone
// conditional append does. An append whose condition fails records nothing
// and gets no row: it is made alone, which says why.
const groupConditionsFailed = `failed AS MATERIALIZED (
    SELECT DISTINCT c.m FROM unnest($13::int[], $14::text[], $15::text[], $16::bigint[], $17::jsonb[], $18::jsonb[])
           AS c(m, tag, after_tx, after_seq, rest, types)
     CROSS JOIN LATERAL (
        SELECT FROM {{schema}}.event_tags t
         WHERE t.tag = c.tag AND (t.transaction_id, t.seq) > (c.after_tx::xid8, c.after_seq)
           AND (c.rest IS NULL AND c.types IS NULL
                OR (SELECT (c.rest IS NULL OR to_jsonb(x.tags) @> c.rest) AND (c.types IS NULL OR c.types ? x.type)
                      FROM {{schema}}.events x
                     WHERE x.transaction_id = t.transaction_id AND x.seq = t.seq))
         LIMIT 1) hit
)`

// notFailed keeps, in appendGroupCond, the appends whose condition holds.
const notFailed = `/*cond*/ AND NOT EXISTS (SELECT FROM failed f WHERE f.m = i.m)/*endcond*/`

// withConditions keeps the parts of appendGroupSQL between /*cond*/ and
// /*endcond*/, for groups with conditional appends; withoutConditions drops
// them.
func withConditions(sql string) string    { return condPart.ReplaceAllString(sql, "$1") }
func withoutConditions(sql string) string { return condPart.ReplaceAllString(sql, "") }

var condPart = regexp.MustCompile(`(?s)/\*cond\*/(.*?)/\*endcond\*/`)

// sharedTagLocks is the part of an append statement's WHERE clause that
// takes, before the statement inserts its first row, a shared advisory lock
// of the transaction on each key of the array parameter param: the keys of
// its events' tags, sorted (see eventTagKeys in condition.go). A conditional
// append whose condition covers one of these events takes the same key
// exclusively: whichever comes second waits for the other to commit. Only
// the tagged statements keep it.
func sharedTagLocks(param string) string {
	return `/*tags*/
   AND (SELECT count(pg_advisory_xact_lock_shared(k)::text) FROM unnest(` + param + `::bigint[]) AS k) >= 0/*end*/`
}

// tagsNotTooOld is notTooOld for the tags of an append inside the caller's
// transaction, $10 (a text[] of every tag of the events): it refuses to
// record tagged events when an event carrying one of those tags was written
// by a transaction with a higher id, which a conditional append may have
// committed while this one waited for its locks (see condition.go). The
// statement runs after lockSQL took the tags' locks, with a snapshot taken
// after it.
const tagsNotTooOld = `/*tags*/
   AND NOT EXISTS (SELECT FROM {{schema}}.event_tags g
                    WHERE g.tag = ANY($10::text[]) AND g.transaction_id > {{schema}}.current_position_txid())/*end*/`

// appendVerdictSQL says why appendSQL recorded nothing: 1 version conflict,
// 2 the first event ID is recorded (the caller reads what is stored, to
// recognise an idempotent retry), 3 the transaction is too old (only asked
// when $5 is true: in the caller's transaction); and the stream's version.
// 0 means nothing stands in the way any more (the stream changed between the
// two statements): append again.
const appendVerdictSQL = `SELECT CASE WHEN EXISTS (SELECT FROM {{schema}}.events d WHERE d.event_id = $3) THEN 2
            WHEN NOT (` + expectedMatches + `) THEN 1
            WHEN $5 AND (s.last_tx > {{schema}}.current_position_txid()
                         OR (SELECT f.transaction_id FROM {{schema}}.table_lock_fence f) > {{schema}}.current_position_txid()
                         OR EXISTS (SELECT FROM {{schema}}.event_tags g
                                     WHERE g.tag = ANY($6::text[]) AND g.transaction_id > {{schema}}.current_position_txid())) THEN 3
            ELSE 0 END,
       s.version
  FROM (SELECT coalesce(l.version, -1) AS version, l.transaction_id AS last_tx
          FROM (SELECT) AS one
          LEFT JOIN LATERAL (SELECT t.version, t.transaction_id FROM {{schema}}.events t
                              WHERE t.category = $1 AND t.stream_id = $2
                              ORDER BY t.version DESC LIMIT 1) l ON true) s`

func newStatements(schema string) *statements {
	ident := pgx.Identifier{schema}.Sanitize()
	r := strings.NewReplacer("{{schema}}", ident).Replace
	return &statements{
		schema: schema,
		ident:  ident,

		createMigrations: r(`CREATE SCHEMA IF NOT EXISTS {{schema}};
CREATE TABLE IF NOT EXISTS {{schema}}.migrations (
    version    int PRIMARY KEY,
    name       text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
)`),
		appliedMigrations: r(`SELECT version FROM {{schema}}.migrations ORDER BY version`),
		recordMigration:   r(`INSERT INTO {{schema}}.migrations (version, name) VALUES (@version, @name)`),

		append:            r(untagged(appendSQL + appendTail)),
		appendTx:          r(untagged(appendSQL + notTooOld + appendTail)),
		appendTagged:      r(withTags(appendSQL + sharedTagLocks("$10") + appendTail)),
		appendTxTagged:    r(withTags(appendSQL + notTooOld + tagsNotTooOld + appendTail)),
		lockTags:          r(lockSQL),
		lockEventsShared:  r(`LOCK TABLE {{schema}}.events IN SHARE ROW EXCLUSIVE MODE`),
		raiseFence:        r(`UPDATE {{schema}}.table_lock_fence SET transaction_id = greatest(transaction_id, {{schema}}.current_position_txid())`),
		appendVerdict:     r(appendVerdictSQL),
		appendGroup:       r(untagged(withoutConditions(appendGroupSQL))),
		appendGroupTagged: r(tagged(withoutConditions(appendGroupSQL))),
		appendGroupCond:   r(tagged(withConditions(appendGroupSQL))),
		copiedFrom: r(`SELECT transaction_id, seq, version, recorded_at FROM {{schema}}.events
 WHERE category = $1 AND stream_id = $2 AND version >= $3 ORDER BY version`),
		copiedTags: r(`INSERT INTO {{schema}}.event_tags (tag, transaction_id, seq)
SELECT t, e.transaction_id, e.seq FROM {{schema}}.events e CROSS JOIN LATERAL unnest(e.tags) AS t
 WHERE e.category = $1 AND e.stream_id = $2 AND e.version >= $3 AND e.tags IS NOT NULL`),
		appendAt:        r(untagged(appendAtSQL)),
		appendAt1:       r(untagged(appendAt1SQL)),
		appendAtTagged:  r(withTags(appendAtSQL)),
		appendAt1Tagged: r(withTags(appendAt1SQL)),
		existingFrom: r(`SELECT ` + meowmxdriver.Qualified("e.", eventColumns) + `
  FROM {{schema}}.events f
  JOIN {{schema}}.events e ON e.category = f.category AND e.stream_id = f.stream_id AND e.version >= f.version
 WHERE f.event_id = $1
 ORDER BY e.version
 LIMIT $2`),

		readStreamFwd: r(`SELECT ` + eventColumns + ` FROM {{schema}}.events
 WHERE category = $1 AND stream_id = $2 AND version >= $3::bigint
 ORDER BY version
 LIMIT $4::bigint`),
		readStreamBack: r(`SELECT ` + eventColumns + ` FROM {{schema}}.events
 WHERE category = $1 AND stream_id = $2 AND ($3::bigint < 0 OR version <= $3::bigint)
 ORDER BY version DESC
 LIMIT $4::bigint`),
		readAll: r(`SELECT ` + eventColumns + ` FROM {{schema}}.events
 WHERE (transaction_id, seq) > ($1, $2) AND ` + visible + `
   AND (cardinality($3::text[]) = 0 OR type = ANY($3))
 ORDER BY transaction_id, seq
 LIMIT $4`),
		readCategory: r(`SELECT ` + eventColumns + ` FROM {{schema}}.events
 WHERE category = $5 AND (transaction_id, seq) > ($1, $2) AND ` + visible + `
   AND (cardinality($3::text[]) = 0 OR type = ANY($3))
 ORDER BY transaction_id, seq
 LIMIT $4`),
		streamVersion: r(`SELECT coalesce(` + lastVersionOf("$1", "$2") + `, -1)`),
		streams: r(strings.ReplaceAll(streamsSQL, "{{next}}",
			`(e.category, e.stream_id) > (s.category, s.stream_id)`)),
		categoryStreams: r(strings.ReplaceAll(streamsSQL, "{{next}}",
			`e.category = s.category AND e.stream_id > s.stream_id`)),
		categories:         r(categoriesSQL),
		saveCategoryCounts: r(saveCategoryCountsSQL),

		// The cluster now, the one recorded with its offset, the offset
		// the position functions add, the highest
		// stored position's transaction id (or checkpoint's, should one be
		// ahead) and the cluster's counter: every running transaction's id
		// is at least xmin, every future one at least xmax.
		clusterState: r(`SELECT s.system_identifier, c.system_identifier, c.position_offset,
       {{schema}}.visible_horizon()::text::bigint - pg_snapshot_xmin(pg_current_snapshot())::text::bigint,
       coalesce(greatest(
           (SELECT transaction_id FROM {{schema}}.events ORDER BY transaction_id DESC, seq DESC LIMIT 1),
           (SELECT transaction_id FROM {{schema}}.subscriptions ORDER BY transaction_id DESC LIMIT 1))::text::bigint, 0),
       pg_snapshot_xmin(pg_current_snapshot())::text::bigint,
       pg_snapshot_xmax(pg_current_snapshot())::text::bigint
  FROM pg_control_system() s, {{schema}}.cluster c`),
		lockEvents:    r(`LOCK TABLE {{schema}}.events IN SHARE ROW EXCLUSIVE MODE`),
		recordCluster: r(`UPDATE {{schema}}.cluster SET system_identifier = @system_identifier, position_offset = @offset, updated_at = now()`),

		sub: newSubscriptionStatements(r),

		saveSnapshot: r(`INSERT INTO {{schema}}.snapshots (category, stream_id, version, schema_version, state)
VALUES (@category, @stream_id, @version, @schema_version, @state) ON CONFLICT DO NOTHING`),
		loadSnapshot: r(`SELECT version, state FROM {{schema}}.snapshots
 WHERE category = @category AND stream_id = @stream_id AND schema_version = @schema_version
 ORDER BY version DESC LIMIT 1`),
		deleteSnapshots: r(`DELETE FROM {{schema}}.snapshots WHERE category = @category AND stream_id = @stream_id`),
	}
}

// horizonQuery finds the oldest transaction holding an id, running or
// prepared: it is what pg_snapshot_xmin, and so every global reader, waits
// for. The transaction id is the 32-bit xid that pg_stat_activity shows.
const horizonQuery = `SELECT pid, xid::text::bigint, (extract(epoch FROM age) * 1000000)::bigint, coalesce(datname, ''), coalesce(state, ''), coalesce(query, '')
  FROM (
    SELECT pid, backend_xid AS xid, now() - xact_start AS age, datname, state, left(query, 200) AS query
      FROM pg_stat_activity
     WHERE backend_xid IS NOT NULL AND pid <> pg_backend_pid()
    UNION ALL
    SELECT 0, transaction, now() - prepared, database, 'prepared', gid
      FROM pg_prepared_xacts
  ) h
 ORDER BY age(xid) DESC
 LIMIT 1`

// Channel is the LISTEN/NOTIFY channel of a schema: an append notifies it
// with the event's category after commit.
func Channel(schema string) string {
	channel := "meowmx_" + schema
	if len(channel) > 63 {
		channel = channel[:63]
	}
	return channel
}

// subscriptionStatements holds the subscription SQL of one schema.
type subscriptionStatements struct {
	initLock, initInsert, rows                                    string
	heartbeat, removeWorker, claim, release, advance              string
	readSubAll, readSubCategory, readSubCategories                string
	endPosition, lastPosition, reset, list, lag, lagBounded, park string
	parked, replay, pending                                       string
	unpark, workersAlive, deleteSubscription                      string
}

const subColumns = `name, partition, partitions, categories, types, tags, transaction_id, seq, generation, coalesce(owner, ''), lease_until, updated_at`

func newSubscriptionStatements(r func(string) string) subscriptionStatements {
	readSub := func(categoryFilter string) string {
		return r(`SELECT ` + eventColumns + ` FROM {{schema}}.events
 WHERE (transaction_id, seq) > ($1, $2) AND ` + visible + `
   AND ` + categoryFilter + `
   AND (cardinality($4::text[]) = 0 OR type = ANY($4::text[]))
   AND (cardinality($8::text[]) = 0 OR tags @> $8::text[])
   AND ($5::int <= 1 OR stream_hash % $5::int = $6::int)
 ORDER BY transaction_id, seq
 LIMIT $7`)
	}
	return subscriptionStatements{
		initLock: `SELECT pg_advisory_xact_lock(hashtextextended('meowmx.subscription.' || @schema::text || '.' || @name::text, 0))`,
		initInsert: r(`INSERT INTO {{schema}}.subscriptions (name, partition, partitions, categories, types, tags, transaction_id, seq)
SELECT @name, p, @partitions, @categories, @types, @tags, @transaction_id, @seq FROM generate_series(0, @partitions::int - 1) AS p
 WHERE NOT EXISTS (SELECT 1 FROM {{schema}}.subscriptions WHERE name = @name)`),
		rows: r(`SELECT ` + subColumns + `, 0::bigint FROM {{schema}}.subscriptions WHERE name = @name ORDER BY partition`),
		heartbeat: r(`WITH up AS (
    INSERT INTO {{schema}}.subscription_workers (name, worker, alive_until) VALUES (@name, @worker, now() + @ttl::interval)
    ON CONFLICT (name, worker) DO UPDATE SET alive_until = excluded.alive_until
), gone AS (
    DELETE FROM {{schema}}.subscription_workers WHERE name = @name AND worker <> @worker AND alive_until < now()
)
SELECT worker FROM {{schema}}.subscription_workers WHERE name = @name AND worker <> @worker AND alive_until >= now()
UNION ALL SELECT @worker
ORDER BY 1`),
		workersAlive: r(`SELECT EXISTS (SELECT FROM {{schema}}.subscription_workers WHERE alive_until > now())`),
		deleteSubscription: r(`WITH workers AS (
    DELETE FROM {{schema}}.subscription_workers WHERE name = @name
), parked AS (
    DELETE FROM {{schema}}.parked_events WHERE subscription = @name
)
DELETE FROM {{schema}}.subscriptions WHERE name = @name`),
		removeWorker: r(`WITH gone AS (
    DELETE FROM {{schema}}.subscription_workers WHERE name = @name AND worker = @worker
)
UPDATE {{schema}}.subscriptions SET owner = NULL, lease_until = NULL WHERE name = @name AND owner = @worker`),
		claim: r(`WITH renewed AS (
    UPDATE {{schema}}.subscriptions SET lease_until = now() + @lease::interval
     WHERE name = @name AND owner = @worker
    RETURNING ` + subColumns + `
), free AS (
    SELECT partition FROM {{schema}}.subscriptions
     WHERE name = @name AND (owner IS NULL OR (owner <> @worker AND lease_until < now()))
     ORDER BY partition
     LIMIT greatest(@want::int - (SELECT count(*) FROM renewed), 0)
     FOR UPDATE SKIP LOCKED
), taken AS (
    UPDATE {{schema}}.subscriptions s SET owner = @worker, lease_until = now() + @lease::interval
      FROM free WHERE s.name = @name AND s.partition = free.partition
    RETURNING ` + subColumnsOf("s") + `
)
SELECT *, 0::bigint FROM renewed UNION ALL SELECT *, 0::bigint FROM taken`),
		release: r(`UPDATE {{schema}}.subscriptions SET owner = NULL, lease_until = NULL
 WHERE name = @name AND owner = @worker AND partition = ANY(@partitions::int[])`),
		advance: r(`UPDATE {{schema}}.subscriptions
   SET transaction_id = $5, seq = $6, lease_until = now() + $7::interval, updated_at = now()
 WHERE name = $1 AND partition = $2 AND owner = $3 AND generation = $4`),
		readSubAll:        readSub(`($3::text[] IS NOT NULL)`),
		readSubCategory:   readSub(`category = ($3::text[])[1]`),
		readSubCategories: readSub(`category = ANY($3::text[])`),
		endPosition: r(`SELECT transaction_id, seq FROM {{schema}}.events WHERE ` + visible + `
 ORDER BY transaction_id DESC, seq DESC LIMIT 1`),
		lastPosition: r(`SELECT transaction_id, seq FROM {{schema}}.events ORDER BY transaction_id DESC, seq DESC LIMIT 1`),
		reset: r(`UPDATE {{schema}}.subscriptions
   SET transaction_id = @transaction_id, seq = @seq, generation = generation + 1, updated_at = now()
 WHERE name = @name`),
		list: r(`SELECT ` + subColumnsOf("s") + `,
       (SELECT count(*) FROM {{schema}}.parked_events p WHERE p.subscription = s.name AND p.partition = s.partition)
  FROM {{schema}}.subscriptions s
 WHERE @name = '' OR s.name = @name
 ORDER BY s.name, s.partition`),
		lag: r(`SELECT count(*), min(recorded_at) FROM {{schema}}.events
 WHERE (transaction_id, seq) > (@transaction_id, @seq)
   AND ` + subscriptionFilter),
		lagBounded: r(`SELECT count(*), min(recorded_at) FROM (SELECT recorded_at FROM {{schema}}.events
 WHERE (transaction_id, seq) > (@transaction_id, @seq)
   AND ` + subscriptionFilter + `
 ORDER BY transaction_id, seq LIMIT @limit::bigint) l`),
		pending: r(`SELECT EXISTS (SELECT FROM {{schema}}.events
 WHERE (transaction_id, seq) > (@transaction_id, @seq) AND (transaction_id, seq) <= (@until_transaction_id, @until_seq)
   AND ` + subscriptionFilter + `)`),
		park: r(`INSERT INTO {{schema}}.parked_events (subscription, partition, event_id, error, attempts)
VALUES (@name, @partition, @event_id, @error, @attempts)
ON CONFLICT (subscription, event_id) DO UPDATE
   SET error = excluded.error, attempts = parked_events.attempts + excluded.attempts,
       replay = false, parked_at = now()`),
		parked: r(`SELECT p.subscription, p.partition, p.error, p.attempts, p.replay, p.parked_at,
       ` + meowmxdriver.Qualified("e.", eventColumns) + `
  FROM {{schema}}.parked_events p
  JOIN {{schema}}.events e ON e.event_id = p.event_id
 WHERE p.subscription = @name AND (NOT @only_replay::bool OR (p.replay AND p.partition = @partition))
 ORDER BY e.transaction_id, e.seq
 LIMIT @limit::bigint`),
		replay: r(`UPDATE {{schema}}.parked_events SET replay = true WHERE subscription = @name`),
		unpark: r(`DELETE FROM {{schema}}.parked_events WHERE subscription = @name AND event_id = @event_id`),
	}
}

// subscriptionFilter keeps the events a subscription row covers: its
// categories and types (empty for all) and its partition.
const subscriptionFilter = `(cardinality(@categories::text[]) = 0 OR category = ANY(@categories::text[]))
   AND (cardinality(@types::text[]) = 0 OR type = ANY(@types::text[]))
   AND (cardinality(@tags::text[]) = 0 OR tags @> @tags::text[])
   AND (@partitions::int <= 1 OR stream_hash % @partitions::int = @partition::int)`

func subColumnsOf(alias string) string {
	a := alias + "."
	return a + "name, " + a + "partition, " + a + "partitions, " + a + "categories, " + a + "types, " + a + "tags, " +
		a + "transaction_id, " + a + "seq, " + a + "generation, coalesce(" + a + "owner, ''), " +
		a + "lease_until, " + a + "updated_at"
}

const notifySQL = `SELECT set_config('synchronous_commit', 'off', true), pg_notify($1, c) FROM unnest($2::text[]) AS c`

const (
	systemIDSQL    = `SELECT system_identifier FROM pg_control_system()`
	lockTimeoutSQL = `SET LOCAL lock_timeout = '10s'`
	// genericPlanSQL sets a group's transaction up: a generic plan (see
	// AppendGroup) and no JIT compilation, which a generic plan's cost
	// estimates (an index read to its end for a condition's LIMIT 1) can
	// call for, at 60 ms per execution for a statement that runs in 1.
	// beginReadCommitted begins the transactions whose statements must
	// each see what committed before they started (a conditional append's
	// check, after its locks), whatever default_transaction_isolation says.
	beginReadCommitted = `BEGIN ISOLATION LEVEL READ COMMITTED`
	genericPlanSQL     = `SELECT set_config('plan_cache_mode', 'force_generic_plan', true), set_config('jit', 'off', true)`
	// groupLocksSQL is genericPlanSQL and the locks of lockSQL, in one
	// statement, for a group with conditional appends.
	groupLocksSQL = `SELECT set_config('plan_cache_mode', 'force_generic_plan', true), set_config('jit', 'off', true),
       (SELECT count(CASE WHEN l.x THEN pg_advisory_xact_lock(l.k)::text ELSE pg_advisory_xact_lock_shared(l.k)::text END)
          FROM unnest($1::bigint[], $2::bool[]) AS l(k, x))`
	migrateLockSQL = `SELECT pg_advisory_xact_lock(hashtextextended('meowmx.migrate.' || $1::text, 0))`
)
