package meowmxsqlite

import (
	"strings"
	"sync"
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
	eventIDExists  string
	readStreamFwd  string
	readStreamBack string

	sub subscriptionStatements

	// r puts the table prefix into a statement.
	r            func(string) string
	readAll      string
	readCategory string
}

const eventColumns = `seq, category, stream_id, version, event_id, type, data, metadata, recorded_at`

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
		r:   r,

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

// insertEvents is the INSERT of n events.
func (st *statements) insertEvents(n int) string {
	if q, ok := st.insertMany.Load(n); ok {
		return q.(string)
	}
	var b strings.Builder
	b.WriteString(`INSERT INTO ` + st.prefix + `events (category, stream_id, stream_hash, version, event_id, type, data, metadata, recorded_at) VALUES `)
	for i := range n {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString("(?, ?, ?, ?, ?, ?, ?, ?, ?)")
	}
	q, _ := st.insertMany.LoadOrStore(n, b.String())
	return q.(string)
}
