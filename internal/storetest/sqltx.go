package storetest

import (
	"context"
	"database/sql"
	"errors"
	"testing"

	"github.com/meowmx/meowmx"
)

// SQLTx fills the fields of a harness whose drivers run on a *sql.DB, the
// one db returns for a store, with *sql.Tx transactions: Begin, Commit,
// Rollback, Exec and the read model's statements (with ? placeholders
// rewritten by placeholders, nil to keep them), ExecDB, QueryPairs, and
// ReadModel (in h.Table(s, "read_model")).
func SQLTx(h *Harness[*sql.Tx], db func(*meowmx.Store[*sql.Tx]) *sql.DB, placeholders func(string) string) *Harness[*sql.Tx] {
	if placeholders == nil {
		placeholders = func(q string) string { return q }
	}
	h.ReadModel = func(t *testing.T, s *meowmx.Store[*sql.Tx]) (func(context.Context, *sql.Tx, string, int) error, func(context.Context, string) (int, bool, error)) {
		table := h.Table(s, "read_model")
		if _, err := db(s).Exec(`CREATE TABLE ` + table + ` (key text PRIMARY KEY, value int NOT NULL)`); err != nil {
			t.Fatal(err)
		}
		upsert := placeholders(`INSERT INTO ` + table + ` (key, value) VALUES (?, ?)
			ON CONFLICT (key) DO UPDATE SET value = excluded.value`)
		put := func(ctx context.Context, tx *sql.Tx, key string, value int) error {
			_, err := tx.ExecContext(ctx, upsert, key, value)
			return err
		}
		lookup := placeholders(`SELECT value FROM ` + table + ` WHERE key = ?`)
		get := func(ctx context.Context, key string) (int, bool, error) {
			var value int
			err := db(s).QueryRowContext(ctx, lookup, key).Scan(&value)
			if errors.Is(err, sql.ErrNoRows) {
				return 0, false, nil
			}
			return value, err == nil, err
		}
		return put, get
	}
	h.Begin = func(ctx context.Context, s *meowmx.Store[*sql.Tx]) (*sql.Tx, error) {
		return db(s).BeginTx(ctx, nil)
	}
	h.Commit = func(ctx context.Context, tx *sql.Tx) error { return tx.Commit() }
	h.Rollback = func(ctx context.Context, tx *sql.Tx) error { return tx.Rollback() }
	h.Exec = func(ctx context.Context, tx *sql.Tx, query string, args ...any) (int64, error) {
		res, err := tx.ExecContext(ctx, placeholders(query), args...)
		if err != nil {
			return 0, err
		}
		return res.RowsAffected()
	}
	h.ExecDB = func(ctx context.Context, s *meowmx.Store[*sql.Tx], query string) error {
		_, err := db(s).ExecContext(ctx, query)
		return err
	}
	h.QueryPairs = func(ctx context.Context, s *meowmx.Store[*sql.Tx], query string) ([][2]string, error) {
		rows, err := db(s).QueryContext(ctx, query)
		if err != nil {
			return nil, err
		}
		defer rows.Close()
		var out [][2]string
		for rows.Next() {
			var pair [2]string
			if err := rows.Scan(&pair[0], &pair[1]); err != nil {
				return nil, err
			}
			out = append(out, pair)
		}
		return out, rows.Err()
	}
	return h
}
