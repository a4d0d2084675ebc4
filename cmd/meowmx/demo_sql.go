package main

import (
	"context"
	"database/sql"
	"regexp"

	"github.com/jackc/pgx/v5"
)

// sqlAdapter runs the demo's read-model SQL (with $N placeholders) on
// either driver.
type sqlAdapter[TTx any] struct {
	table  func(name string) string
	execDB func(ctx context.Context, q string) error
	exec   func(ctx context.Context, tx TTx, q string, args ...any) error
	query  func(ctx context.Context, q string) (rows, error)
}

// rows is what pgx.Rows and *sql.Rows have in common.
type rows interface {
	Next() bool
	Scan(dest ...any) error
	Err() error
	Close() error
}

// pgxRows gives pgx.Rows the Close of *sql.Rows.
type pgxRows struct{ pgx.Rows }

func (r pgxRows) Close() error {
	r.Rows.Close()
	return nil
}

// pgAdapter runs the demo's SQL on the PostgreSQL store of b, in its schema.
func pgAdapter(b *backend) *sqlAdapter[pgx.Tx] {
	schema := pgx.Identifier{b.pg.Schema()}.Sanitize()
	pool := b.pool
	return &sqlAdapter[pgx.Tx]{
		table: func(name string) string { return schema + "." + name },
		execDB: func(ctx context.Context, q string) error {
			_, err := pool.Exec(ctx, q)
			return err
		},
		exec: func(ctx context.Context, tx pgx.Tx, q string, args ...any) error {
			_, err := tx.Exec(ctx, q, args...)
			return err
		},
		query: func(ctx context.Context, q string) (rows, error) {
			r, err := pool.Query(ctx, q)
			return pgxRows{r}, err
		},
	}
}

// liteAdapter runs the demo's SQL on the SQLite store of b, with its table
// prefix and ?N placeholders.
func liteAdapter(b *backend) *sqlAdapter[*sql.Tx] {
	prefix := b.lite.Schema() + "_"
	db := b.liteDB
	numbered := regexp.MustCompile(`\$(\d+)`)
	return &sqlAdapter[*sql.Tx]{
		table: func(name string) string { return prefix + name },
		execDB: func(ctx context.Context, q string) error {
			_, err := db.ExecContext(ctx, q)
			return err
		},
		exec: func(ctx context.Context, tx *sql.Tx, q string, args ...any) error {
			_, err := tx.ExecContext(ctx, numbered.ReplaceAllString(q, "?$1"), args...)
			return err
		},
		query: func(ctx context.Context, q string) (rows, error) {
			return db.QueryContext(ctx, q)
		},
	}
}
