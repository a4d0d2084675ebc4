package meowmxsqlite

import (
	"fmt"
	"strings"
	"sync"

	"github.com/meowmx/meowmx/meowmxdriver"
)

// statements holds every SQL statement the driver runs, for one schema
// (a table-name prefix on SQLite).
type statements struct {
	prefix string

	createMigrations  string
	appliedMigrations string
	recordMigration   string

	findEventID    string
	existingFrom   string
	lastVersion    string
	insertMany     sync.Map // number of rows -> INSERT statement
	insertGuarded  sync.Map // number of rows -> INSERT statement guarded by the stream's version
	idsMany        sync.Map // number of IDs -> SELECT of recorded IDs
	versionsMany   sync.Map // number of streams -> SELECT of last versions
	eventIDExists  string
	readStreamFwd  string
	readStreamBack string

	readAll      string
	readCategory string

	streams, categoryStreams, categories string
	// saveCategories stores what a listing of categories counted.
	saveCategories string

	sub subscriptionStatements

	saveSnapshot, loadSnapshot, deleteSnapshots string
}

const eventColumns = `seq, category, stream_id, version, event_id, type, data, metadata, recorded_at, tags`

// streamsSQL lists a page of streams after (?1, ?2), at most ?3, with
// their last events: a loose index scan, where each step seeks the next
// stream in the (category, stream_id, version) index: the next ID in the
// same category, else ({{next category}}) the first of the next category.
// Each seek compares one column to a range after an equality: SQLite
// bounds an index search by a row value compared with a correlated one
// only on its first column, which would scan the rest of the category.
const streamsSQL = `WITH RECURSIVE s(category, stream_id, n) AS (
    SELECT ?1, ?2, 0
    UNION ALL
    SELECT CASE WHEN ` + nextInCategory + ` IS NOT NULL THEN s.category ELSE {{next category}} END,
           coalesce(` + nextInCategory + `,
               (SELECT min(e.stream_id) FROM {{prefix}}events e WHERE e.category = {{next category}})),
           s.n + 1
      FROM s WHERE s.n < ?3 AND s.category IS NOT NULL
)
SELECT e.category, e.stream_id, e.version, e.seq, e.recorded_at
  FROM s JOIN {{prefix}}events e
    ON e.category = s.category AND e.stream_id = s.stream_id
   AND e.version = (SELECT max(m.version) FROM {{prefix}}events m
                     WHERE m.category = s.category AND m.stream_id = s.stream_id)
 WHERE s.n > 0
 ORDER BY s.n`

// nextInCategory is the ID of the stream after s's in its category.
const nextInCategory = `(SELECT e.stream_id FROM {{prefix}}events e
     WHERE e.category = s.category AND e.stream_id > s.stream_id
     ORDER BY e.stream_id LIMIT 1)`

// nextCategory is the category after s's.
const nextCategory = `(SELECT e.category FROM {{prefix}}events e
     WHERE e.category > s.category ORDER BY e.category LIMIT 1)`

// categoriesSQL lists a page of categories after ?1, at most ?2: a loose
// index scan finds them. Their counts are those stored in category_counts
// up to a sequence number, plus those of the events after it, read from the
// (category, seq) index: a listing costs what was appended since the counts
// were last stored, not the category's size. The last column is how many
// events were counted after the stored counts (see saveCategoryCountsSQL).
const categoriesSQL = `WITH RECURSIVE c(category, n) AS (
    SELECT ?1, 0
    UNION ALL
    SELECT (SELECT e.category FROM {{prefix}}events e WHERE e.category > c.category
             ORDER BY e.category LIMIT 1), c.n + 1
      FROM c WHERE c.n < ?2 AND c.category IS NOT NULL
), k AS (
    SELECT c.n, c.category, coalesce(k.seq, 0) AS seq, coalesce(k.events, 0) AS events, coalesce(k.streams, 0) AS streams
      FROM c LEFT JOIN {{prefix}}category_counts k ON k.category = c.category
     WHERE c.n > 0
)
SELECT k.category,
       k.events + (SELECT count(*) FROM {{prefix}}events e WHERE e.category = k.category AND e.seq > k.seq),
       k.streams + (SELECT count(*) FROM {{prefix}}events e WHERE e.category = k.category AND e.seq > k.seq AND e.version = 0),
       l.seq, l.recorded_at,
       (SELECT count(*) FROM {{prefix}}events e WHERE e.category = k.category AND e.seq > k.seq)
  FROM k JOIN {{prefix}}events l
    ON l.seq = (SELECT max(m.seq) FROM {{prefix}}events m WHERE m.category = k.category)
 ORDER BY k.n`

// saveCategoryCountsSQL stores a category's counts up to a sequence
// number, unless counts up to a later one are stored already.
const saveCategoryCountsSQL = `INSERT INTO {{prefix}}category_counts (category, seq, events, streams) VALUES (?1, ?2, ?3, ?4)
ON CONFLICT (category) DO UPDATE SET seq = excluded.seq, events = excluded.events, streams = excluded.streams
 WHERE excluded.seq > {{prefix}}category_counts.seq`

func newStatements(schema string) *statements {
	prefix := schema + "_"
	r := strings.NewReplacer("{{prefix}}", prefix).Replace
	return &statements{
		prefix: prefix,

		createMigrations: r(`CREATE TABLE IF NOT EXISTS {{prefix}}migrations (
    version    INTEGER PRIMARY KEY,
    name       TEXT    NOT NULL,
    applied_at TEXT    NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
)`),
		appliedMigrations: r(`SELECT version FROM {{prefix}}migrations ORDER BY version`),
		recordMigration:   r(`INSERT INTO {{prefix}}migrations (version, name) VALUES (?, ?)`),

		streams:         r(strings.ReplaceAll(streamsSQL, "{{next category}}", nextCategory)),
		categoryStreams: r(strings.ReplaceAll(streamsSQL, "{{next category}}", "NULL")),
		categories:      r(categoriesSQL),
		saveCategories:  r(saveCategoryCountsSQL),

		findEventID: r(`SELECT category, stream_id, version FROM {{prefix}}events WHERE event_id = ?`),
		existingFrom: r(`SELECT ` + eventColumns + ` FROM {{prefix}}events
 WHERE category = ? AND stream_id = ? AND version >= ?
 ORDER BY version
 LIMIT ?`),
		lastVersion:   r(`SELECT coalesce(max(version), -1) FROM {{prefix}}events WHERE category = ? AND stream_id = ?`),
		eventIDExists: r(`SELECT count(*) FROM {{prefix}}events WHERE event_id = ?`),
		readStreamFwd: r(`SELECT ` + eventColumns + ` FROM {{prefix}}events
 WHERE category = ? AND stream_id = ? AND version >= ?
 ORDER BY version
 LIMIT ?`),
		readStreamBack: r(`SELECT ` + eventColumns + ` FROM {{prefix}}events
 WHERE category = ?1 AND stream_id = ?2 AND (?3 < 0 OR version <= ?3)
 ORDER BY version DESC
 LIMIT ?4`),
		sub: newSubscriptionStatements(r),

		saveSnapshot: r(`INSERT INTO {{prefix}}snapshots (category, stream_id, version, schema_version, state, created_at)
VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING`),
		loadSnapshot: r(`SELECT version, state FROM {{prefix}}snapshots
 WHERE category = ? AND stream_id = ? AND schema_version = ?
 ORDER BY version DESC LIMIT 1`),
		deleteSnapshots: r(`DELETE FROM {{prefix}}snapshots WHERE category = ? AND stream_id = ?`),

		// The position is (0, seq): a position with a transaction id (from
		// PostgreSQL) is after every SQLite event. types is a JSON array,
		// empty for all.
		readAll: r(`SELECT ` + eventColumns + ` FROM {{prefix}}events
 WHERE ?1 = 0 AND seq > ?2
   AND (?3 = '[]' OR type IN (SELECT value FROM json_each(?3)))
 ORDER BY seq
 LIMIT ?4`),
		readCategory: r(`SELECT ` + eventColumns + ` FROM {{prefix}}events
 WHERE category = ?5 AND ?1 = 0 AND seq > ?2
   AND (?3 = '[]' OR type IN (SELECT value FROM json_each(?3)))
 ORDER BY seq
 LIMIT ?4`),
	}
}

// many returns the statement cached in cache for n, made by build.
func many(cache *sync.Map, n int, build func(n int) string) string {
	if q, ok := cache.Load(n); ok {
		return q.(string)
	}
	q, _ := cache.LoadOrStore(n, build(n))
	return q.(string)
}

// placeholders returns n copies of one, separated by commas.
func placeholders(n int, one string) string {
	return strings.TrimSuffix(strings.Repeat(one+", ", n), ", ")
}

// recordedIDs selects which of n event IDs are recorded.
func (st *statements) recordedIDs(n int) string {
	return many(&st.idsMany, n, func(n int) string {
		return `SELECT event_id FROM ` + st.prefix + `events WHERE event_id IN (` + placeholders(n, "?") + `)`
	})
}

// lastVersions selects the last version (-1 for none) of each of n streams,
// given as category and ID pairs: one index search each.
func (st *statements) lastVersions(n int) string {
	return many(&st.versionsMany, n, func(n int) string {
		return `SELECT v.column1, v.column2,
       coalesce((SELECT max(e.version) FROM ` + st.prefix + `events e WHERE e.category = v.column1 AND e.stream_id = v.column2), -1)
  FROM (VALUES ` + placeholders(n, "(?, ?)") + `) AS v`
	})
}

// insertEvents is the INSERT of n events.
func (st *statements) insertEvents(n int) string {
	return many(&st.insertMany, n, func(n int) string {
		return `INSERT INTO ` + st.prefix + `events (category, stream_id, stream_hash, version, event_id, type, data, metadata, recorded_at, tags) VALUES ` +
			placeholders(n, "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?)")
	})
}

// insertGuarded is the INSERT of n events of one stream that inserts
// nothing unless the stream's last version (-1 for none) is the last
// parameter: an append with an exact expected version in one statement.
func (st *statements) insertGuardedEvents(n int) string {
	return many(&st.insertGuarded, n, func(n int) string {
		return `INSERT INTO ` + st.prefix + `events (category, stream_id, stream_hash, version, event_id, type, data, metadata, recorded_at, tags) SELECT * FROM (VALUES ` +
			placeholders(n, "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?)") + `) WHERE (SELECT coalesce(max(version), -1) FROM ` + st.prefix + `events WHERE category = ? AND stream_id = ?) = ?`
	})
}

// subscriptionStatements holds the subscription SQL of one prefix. Times are
// microseconds since the Unix epoch, from this process's clock: SQLite's
// users share one machine.
type subscriptionStatements struct {
	exists, initInsert, rows                                string
	heartbeat, prune, listWorkers, removeWorker             string
	workersAlive                                            string
	deleteSubscription                                      [3]string
	freeOwned, renew, free, take, owned, release            string
	advance, readSubAll, readSubCategory, readSubMany       string
	endPosition, reset, list, lag, lagBounded, park, parked string
	replay, unpark, pending                                 string
}

const subColumns = `name, partition, partitions, categories, types, tags, seq, generation, coalesce(owner, ''), lease_until, updated_at`

// hasAllTags keeps the events (of the table {{prefix}}events, unaliased)
// that carry every tag of the JSON array in parameter %[1]s.
const hasAllTags = `(%[1]s = '[]' OR (SELECT count(*) FROM {{prefix}}event_tags t
        WHERE t.seq = {{prefix}}events.seq AND t.tag IN (SELECT value FROM json_each(%[1]s))) = json_array_length(%[1]s))`

func newSubscriptionStatements(r func(string) string) subscriptionStatements {
	readSub := func(categoryFilter string) string {
		return r(`SELECT ` + eventColumns + ` FROM {{prefix}}events
 WHERE seq > ?1 AND ` + categoryFilter + `
   AND (?3 = '[]' OR type IN (SELECT value FROM json_each(?3)))
   AND ` + fmt.Sprintf(hasAllTags, "?7") + `
   AND (?4 <= 1 OR stream_hash % ?4 = ?5)
 ORDER BY seq
 LIMIT ?6`)
	}
	return subscriptionStatements{
		exists: r(`SELECT count(*) FROM {{prefix}}subscriptions WHERE name = ?`),
		initInsert: r(`INSERT INTO {{prefix}}subscriptions (name, partition, partitions, categories, types, tags, seq, updated_at)
VALUES (?, ?, ?, ?, ?, ?, ?, ?)`),
		rows: r(`SELECT ` + subColumns + `, 0 FROM {{prefix}}subscriptions WHERE name = ? ORDER BY partition`),
		heartbeat: r(`INSERT INTO {{prefix}}subscription_workers (name, worker, alive_until) VALUES (?1, ?2, ?3)
ON CONFLICT (name, worker) DO UPDATE SET alive_until = excluded.alive_until`),
		prune:        r(`DELETE FROM {{prefix}}subscription_workers WHERE name = ?1 AND alive_until < ?2`),
		listWorkers:  r(`SELECT worker FROM {{prefix}}subscription_workers WHERE name = ?1 ORDER BY worker`),
		removeWorker: r(`DELETE FROM {{prefix}}subscription_workers WHERE name = ?1 AND worker = ?2`),
		workersAlive: r(`SELECT EXISTS (SELECT 1 FROM {{prefix}}subscription_workers WHERE alive_until > ?1)`),
		deleteSubscription: [3]string{
			r(`DELETE FROM {{prefix}}subscription_workers WHERE name = ?1`),
			r(`DELETE FROM {{prefix}}parked_events WHERE subscription = ?1`),
			r(`DELETE FROM {{prefix}}subscriptions WHERE name = ?1`), // last: its count is returned
		},
		freeOwned: r(`UPDATE {{prefix}}subscriptions SET owner = NULL, lease_until = NULL WHERE name = ?1 AND owner = ?2`),
		renew:     r(`UPDATE {{prefix}}subscriptions SET lease_until = ?3 WHERE name = ?1 AND owner = ?2`),
		free: r(`SELECT partition FROM {{prefix}}subscriptions
 WHERE name = ?1 AND (owner IS NULL OR (owner <> ?2 AND lease_until < ?3))
 ORDER BY partition LIMIT ?4`),
		take:    r(`UPDATE {{prefix}}subscriptions SET owner = ?2, lease_until = ?3 WHERE name = ?1 AND partition = ?4`),
		owned:   r(`SELECT ` + subColumns + `, 0 FROM {{prefix}}subscriptions WHERE name = ?1 AND owner = ?2 ORDER BY partition`),
		release: r(`UPDATE {{prefix}}subscriptions SET owner = NULL, lease_until = NULL WHERE name = ?1 AND owner = ?2 AND partition = ?3`),
		advance: r(`UPDATE {{prefix}}subscriptions SET seq = ?5, lease_until = ?6, updated_at = ?7
 WHERE name = ?1 AND partition = ?2 AND owner = ?3 AND generation = ?4`),
		readSubAll:      readSub(`?2 IS NOT NULL`),
		readSubCategory: readSub(`category = ?2`),
		readSubMany:     readSub(`category IN (SELECT value FROM json_each(?2))`),
		endPosition:     r(`SELECT coalesce(max(seq), 0) FROM {{prefix}}events`),
		reset:           r(`UPDATE {{prefix}}subscriptions SET seq = ?2, generation = generation + 1, updated_at = ?3 WHERE name = ?1`),
		list: r(`SELECT ` + subColumns + `,
       (SELECT count(*) FROM {{prefix}}parked_events p WHERE p.subscription = s.name AND p.partition = s.partition)
  FROM {{prefix}}subscriptions s
 WHERE ?1 = '' OR s.name = ?1
 ORDER BY s.name, s.partition`),
		lag: r(`SELECT count(*), min(recorded_at) FROM {{prefix}}events
 WHERE seq > ?1
   AND (?2 = '[]' OR category IN (SELECT value FROM json_each(?2)))
   AND (?3 = '[]' OR type IN (SELECT value FROM json_each(?3)))
   AND ` + fmt.Sprintf(hasAllTags, "?6") + `
   AND (?4 <= 1 OR stream_hash % ?4 = ?5)`),
		lagBounded: r(`SELECT count(*), min(recorded_at) FROM (SELECT recorded_at FROM {{prefix}}events
 WHERE seq > ?1
   AND (?2 = '[]' OR category IN (SELECT value FROM json_each(?2)))
   AND (?3 = '[]' OR type IN (SELECT value FROM json_each(?3)))
   AND ` + fmt.Sprintf(hasAllTags, "?6") + `
   AND (?4 <= 1 OR stream_hash % ?4 = ?5)
 ORDER BY seq LIMIT ?7)`),
		pending: r(`SELECT EXISTS (SELECT 1 FROM {{prefix}}events
 WHERE seq > ?1 AND seq <= ?6
   AND (?2 = '[]' OR category IN (SELECT value FROM json_each(?2)))
   AND (?3 = '[]' OR type IN (SELECT value FROM json_each(?3)))
   AND ` + fmt.Sprintf(hasAllTags, "?7") + `
   AND (?4 <= 1 OR stream_hash % ?4 = ?5))`),
		park: r(`INSERT INTO {{prefix}}parked_events (subscription, partition, event_id, error, attempts, parked_at)
VALUES (?1, ?2, ?3, ?4, ?5, ?6)
ON CONFLICT (subscription, event_id) DO UPDATE
   SET error = excluded.error, attempts = attempts + excluded.attempts, replay = 0, parked_at = excluded.parked_at`),
		parked: r(`SELECT p.subscription, p.partition, p.error, p.attempts, p.replay, p.parked_at,
       ` + meowmxdriver.Qualified("e.", eventColumns) + `
  FROM {{prefix}}parked_events p
  JOIN {{prefix}}events e ON e.event_id = p.event_id
 WHERE p.subscription = ?1 AND (NOT ?2 OR (p.replay AND p.partition = ?3))
 ORDER BY e.seq
 LIMIT ?4`),
		replay: r(`UPDATE {{prefix}}parked_events SET replay = 1 WHERE subscription = ?`),
		unpark: r(`DELETE FROM {{prefix}}parked_events WHERE subscription = ? AND event_id = ?`),
	}
}
