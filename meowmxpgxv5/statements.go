package meowmxpgxv5

import (
	"strings"

	"github.com/jackc/pgx/v5"
)

// statements holds every SQL statement the driver runs, for one schema.
type statements struct {
	ident   string // quoted identifier
	literal string // quoted string literal

	createMigrations  string
	appliedMigrations string
	recordMigration   string

	append         string
	readStreamFwd  string
	readStreamBack string
	readAll        string
	readCategory   string
	streamVersion  string

	sub subscriptionStatements

	// r puts the schema into a statement.
	r func(string) string
}

const eventColumns = `transaction_id, seq, category, stream_id, version, event_id, type, data, metadata, recorded_at`

// visible limits a global read to transactions that have all finished: every
// transaction id below the snapshot's xmin has committed or aborted, so no
// event can still appear before the returned ones.
const visible = `transaction_id < pg_snapshot_xmin(pg_current_snapshot())`

func newStatements(schema string) *statements {
	ident := pgx.Identifier{schema}.Sanitize()
	r := strings.NewReplacer("{{schema}}", ident).Replace
	return &statements{
		ident:   ident,
		literal: quoteLiteral(schema),

		createMigrations: r(`CREATE SCHEMA IF NOT EXISTS {{schema}};
CREATE TABLE IF NOT EXISTS {{schema}}.migrations (
    version    int PRIMARY KEY,
    name       text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
)`),
		appliedMigrations: r(`SELECT version FROM {{schema}}.migrations ORDER BY version`),
		recordMigration:   r(`INSERT INTO {{schema}}.migrations (version, name) VALUES ($1, $2)`),

		append: r(`SELECT o_status, o_current, o_transaction_id, o_seq, o_category, o_stream_id, o_version,
       o_id, o_type, o_data, o_metadata, o_recorded_at
  FROM {{schema}}.append_events($1, $2, $3, $4, $5, $6, $7, $8)`),

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
		streamVersion: r(`SELECT coalesce(max(version), -1) FROM {{schema}}.events WHERE category = $1 AND stream_id = $2`),

		sub: newSubscriptionStatements(r),
		r:   r,
	}
}

// horizonQuery finds the oldest transaction holding an id, running or
// prepared: it is what pg_snapshot_xmin, and so every global reader, waits
// for. The transaction id is the 32-bit xid that pg_stat_activity shows.
const horizonQuery = `SELECT pid, xid::text::bigint, age, coalesce(datname, ''), coalesce(state, ''), coalesce(query, ''), prepared
  FROM (
    SELECT pid, backend_xid AS xid, now() - xact_start AS age, datname, state, left(query, 200) AS query, false AS prepared
      FROM pg_stat_activity
     WHERE backend_xid IS NOT NULL AND pid <> pg_backend_pid()
    UNION ALL
    SELECT 0, transaction, now() - prepared, database, 'prepared', gid, true
      FROM pg_prepared_xacts
  ) h
 ORDER BY age(xid) DESC
 LIMIT 1`

func quoteLiteral(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }

// Channel is the LISTEN/NOTIFY channel of a schema: an append notifies it
// with the event's category after commit.
func Channel(schema string) string {
	channel := "meowmx_" + schema
	if len(channel) > 63 {
		channel = channel[:63]
	}
	return channel
}
