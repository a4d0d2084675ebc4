// Package testdb gives tests a real PostgreSQL (one schema per test) and
// SQLite files.
//
// PostgreSQL is reached at MEOWMX_TEST_DATABASE_URL, by default the local
// test database. When it is unreachable a test is skipped, except under
// CI=true, where it fails.
package testdb

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"go.uber.org/goleak"

	"github.com/meowmx/meowmx/meowmxsqlite"
)

// DefaultURL is the PostgreSQL used when MEOWMX_TEST_DATABASE_URL is unset.
const DefaultURL = "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"

// URL returns the test PostgreSQL's URL.
func URL() string {
	if url := os.Getenv("MEOWMX_TEST_DATABASE_URL"); url != "" {
		return url
	}
	return DefaultURL
}

var (
	poolOnce sync.Once
	pool     *pgxpool.Pool
	poolErr  error
)

// Pool returns the package's shared pool, connecting on first use.
func Pool(tb testing.TB) *pgxpool.Pool {
	tb.Helper()
	poolOnce.Do(func() {
		pool, poolErr = NewPool(URL(), 24)
	})
	if poolErr != nil {
		Unreachable(tb, poolErr)
	}
	return pool
}

// NewPool connects a pool of at most maxConns connections and pings it.
func NewPool(url string, maxConns int32) (*pgxpool.Pool, error) {
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, err
	}
	cfg.MaxConns = maxConns
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	p, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, err
	}
	if err := p.Ping(ctx); err != nil {
		p.Close()
		return nil, err
	}
	return p, nil
}

// Unreachable fails the test under CI=true and skips it otherwise.
func Unreachable(tb testing.TB, err error) {
	tb.Helper()
	if os.Getenv("CI") == "true" {
		tb.Fatalf("PostgreSQL at %s is unreachable (required under CI=true): %v", URL(), err)
	}
	tb.Skipf("PostgreSQL at %s is unreachable (set MEOWMX_TEST_DATABASE_URL): %v", URL(), err)
}

// Main runs a package's tests, closes the shared pool, and fails the run if
// goroutines are left behind. Call it from TestMain.
func Main(m *testing.M) {
	code := m.Run()
	if pool != nil {
		pool.Close()
	}
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintln(os.Stderr, "goroutine leak:", err)
			code = 1
		}
	}
	os.Exit(code)
}

// SchemaName returns a fresh schema name and drops the schema when the test
// ends.
func SchemaName(tb testing.TB) string {
	tb.Helper()
	var b [6]byte
	_, _ = rand.Read(b[:])
	name := "test_" + hex.EncodeToString(b[:])
	p := Pool(tb)
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if _, err := p.Exec(ctx, `DROP SCHEMA IF EXISTS "`+name+`" CASCADE`); err != nil {
			tb.Errorf("drop schema %s: %v", name, err)
		}
	})
	return name
}

// SQLite opens a new SQLite database in the test's temporary directory and
// closes it when the test ends.
func SQLite(tb testing.TB) *sql.DB {
	tb.Helper()
	db, err := meowmxsqlite.Open(filepath.Join(tb.TempDir(), "events.db"))
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { db.Close() })
	return db
}

// DollarPlaceholders turns ? placeholders into PostgreSQL's $1, $2...
func DollarPlaceholders(query string) string {
	var b strings.Builder
	n := 0
	for _, r := range query {
		if r == '?' {
			n++
			fmt.Fprintf(&b, "$%d", n)
			continue
		}
		b.WriteRune(r)
	}
	return b.String()
}
