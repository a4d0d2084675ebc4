package meowmxdatabasesql

import (
	"context"
	"database/sql"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	_ "github.com/lib/pq"

	"github.com/meowmx/meowmx/internal/testdb"
)

// libpq is a pool of the test database through lib/pq, as the adapter
// sees it.
func libpq(t *testing.T) *pool {
	t.Helper()
	testdb.Pool(t) // fails (or skips) the test when PostgreSQL is unreachable
	db, err := sql.Open("postgres", testdb.URL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return &pool{db: db, d: newDialect(db)}
}

// TestBatchFailures: a statement of a batch that fails ends it: its error
// is every later result's and Close's, a callback reading its rows gets it
// (rather than nil rows), and the transaction a BEGIN of the batch opened
// is rolled back before the connection goes back.
func TestBatchFailures(t *testing.T) {
	ctx := context.Background()
	p := libpq(t)
	c, err := p.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// The session's own pid: other packages' tests share the database, and
	// their sessions may be inside a transaction at any moment.
	raw := c.(*conn).conn
	var pid int
	if err := raw.QueryRowContext(ctx, "SELECT pg_backend_pid()").Scan(&pid); err != nil {
		t.Fatal(err)
	}
	b := &pgx.Batch{}
	b.Queue("BEGIN READ ONLY")
	b.Queue("SET LOCAL jit = off")
	var seen error
	// Refused before it runs: Query itself fails, and the callback still
	// gets rows (pgx's defers their Close).
	b.Queue("SELECT * FROM no_such_table WHERE $1::int = 0", 0).Query(func(rows pgx.Rows) error {
		for rows.Next() {
			t.Error("a row of the failed query")
		}
		seen = rows.Err()
		return seen
	})
	b.Queue("COMMIT")
	err = c.SendBatch(ctx, b).Close()
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) || pgErr.Code != "42P01" {
		t.Fatalf("Close = %v, want undefined_table as a *pgconn.PgError", err)
	}
	if !errors.As(seen, &pgErr) || pgErr.Code != "42P01" {
		t.Errorf("the callback's rows ended with %v, want undefined_table", seen)
	}
	if !c.(*conn).open {
		t.Error("the batch's transaction is not known to be open")
	}
	c.Release() // rolls back, then gives the connection back
	// The server sets a session's state before it answers, so the
	// rollback's answer means the state below is already current.
	var status string
	err = p.db.QueryRowContext(ctx, "SELECT coalesce(max(state), '') FROM pg_stat_activity WHERE pid = $1", pid).Scan(&status)
	if err != nil {
		t.Fatal(err)
	}
	if strings.HasPrefix(status, "idle in transaction") {
		t.Errorf("the batch's session was left %q", status)
	}
	if err := raw.PingContext(ctx); !errors.Is(err, sql.ErrConnDone) {
		t.Errorf("the released connection still answers: %v", err)
	}
}

// TestCancelledStatement: through lib/pq, which reports a cancelled
// statement as the server's error, the error also matches the context's.
func TestCancelledStatement(t *testing.T) {
	p := libpq(t)
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	c, err := p.Acquire(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Release()
	_, err = c.Exec(ctx, "SELECT pg_sleep(60)")
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Exec = %v, want an error matching context.DeadlineExceeded", err)
	}
	rows, err := c.Query(ctx, "SELECT pg_sleep(60)")
	if !errors.Is(err, context.DeadlineExceeded) || rows == nil {
		t.Fatalf("Query = %v, %v; want rows and an error matching context.DeadlineExceeded", rows, err)
	}
	rows.Close()
}
