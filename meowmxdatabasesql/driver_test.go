package meowmxdatabasesql_test

import (
	"context"
	"database/sql"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	_ "github.com/jackc/pgx/v5/stdlib" // the "pgx" database/sql driver
	_ "github.com/lib/pq"              // the "postgres" database/sql driver

	"github.com/meowmx/meowmx"
	"github.com/meowmx/meowmx/internal/storetest"
	"github.com/meowmx/meowmx/internal/testdb"
	"github.com/meowmx/meowmx/meowmxdatabasesql"
	"github.com/meowmx/meowmx/meowmxdriver"
)

func TestMain(m *testing.M) { testdb.Main(m) }

// sqlDrivers are the database/sql drivers the suite runs on.
var sqlDrivers = []string{"pgx", "postgres"}

// TestConformance runs the whole suite on the driver, through pgx's stdlib
// driver and through lib/pq (which listens only on ListenURL).
func TestConformance(t *testing.T) {
	for _, name := range sqlDrivers {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			var opts []meowmxdatabasesql.Option
			if name == "postgres" {
				opts = append(opts, meowmxdatabasesql.ListenURL(testdb.URL()))
			}
			storetest.Exercise(t, harness(openDB(t, name, testdb.URL()), opts))
		})
	}
}

// TestListenNeedsURLThroughLibPQ: through lib/pq, without ListenURL, the
// driver says it cannot listen, and why; through pgx's stdlib driver it
// listens like the pool's connections.
func TestListenNeedsURLThroughLibPQ(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	err := meowmxdatabasesql.New(openDB(t, "postgres", testdb.URL())).Listen(ctx, "s", func() {}, func(string) {})
	if !errors.Is(err, meowmxdriver.ErrNoListen) || !strings.Contains(err.Error(), "ListenURL") {
		t.Fatalf("Listen through lib/pq without ListenURL: %v, want ErrNoListen naming ListenURL", err)
	}
	listening := make(chan struct{})
	done := make(chan error, 1)
	go func() {
		done <- meowmxdatabasesql.New(openDB(t, "pgx", testdb.URL())).Listen(ctx, "s", func() { close(listening) }, func(string) {})
	}()
	select {
	case <-listening:
	case err := <-done:
		t.Fatalf("Listen through pgx's stdlib driver: %v", err)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Listen after its context ended: %v", err)
	}
}

// openDB opens a database/sql pool through the named driver, closed when
// the test ends.
func openDB(t *testing.T, driverName, url string) *sql.DB {
	t.Helper()
	testdb.Pool(t) // fails (or skips) the test when PostgreSQL is unreachable
	db, err := sql.Open(driverName, url)
	if err != nil {
		t.Fatal(err)
	}
	db.SetMaxOpenConns(24)
	db.SetMaxIdleConns(24)
	t.Cleanup(func() { db.Close() })
	if err := db.PingContext(context.Background()); err != nil {
		t.Fatal(err)
	}
	return db
}

// harness is the suite's harness on db, with the driver made with opts.
func harness(db *sql.DB, opts []meowmxdatabasesql.Option) *storetest.Harness[*sql.Tx] {
	pool := func(s *meowmx.Store[*sql.Tx]) *sql.DB { return s.Driver().(*meowmxdatabasesql.Driver).DB() }
	return storetest.SQLTx(&storetest.Harness[*sql.Tx]{
		NewStore: func(t *testing.T, cfg *meowmx.Config, migrate bool) *meowmx.Store[*sql.Tx] {
			return storetest.OpenStore(t, meowmxdatabasesql.New(db, opts...), cfg, testdb.SchemaName(t), migrate)
		},
		Table: func(s *meowmx.Store[*sql.Tx], name string) string {
			return pgx.Identifier{s.Schema(), name}.Sanitize()
		},
		ConcurrentWriters: true,
	}, pool, testdb.DollarPlaceholders)
}

// TestPgBouncer runs the append, read and subscription cases through
// PgBouncer in transaction pooling mode, on both database/sql drivers:
// pgx's stdlib with statements described but not named (cache_describe),
// lib/pq with binary_parameters=yes (without it, lib/pq parses a statement
// and runs it in two round trips, which the pooler may send to two server
// sessions); each listens on a direct connection.
func TestPgBouncer(t *testing.T) {
	t.Parallel()
	bouncer := testdb.NewPgBouncer(t)
	urls := map[string]string{
		"pgx":      bouncer.URL("cache_describe"),
		"postgres": bouncer.URL("") + "&binary_parameters=yes",
	}
	for name, url := range urls {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			h := harness(openDB(t, name, url), []meowmxdatabasesql.Option{meowmxdatabasesql.ListenURL(testdb.URL())})
			h.Only = storetest.AppendReadSubscribe
			storetest.Exercise(t, h)
		})
	}
}

// TestBeginGivesBackConnections: the connection Begin takes goes back to the
// pool at Commit or Rollback (a pool of one would wait forever otherwise),
// once, even when Rollback follows a Commit.
func TestBeginGivesBackConnections(t *testing.T) {
	db := openDB(t, "postgres", testdb.URL())
	db.SetMaxOpenConns(1)
	d := meowmxdatabasesql.New(db)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for i := range 4 {
		tx, err := d.Begin(ctx, i%2 == 0)
		if err != nil {
			t.Fatalf("Begin %d: %v", i, err)
		}
		end := d.Rollback
		if i%2 == 0 {
			end = d.Commit
		}
		if err := end(ctx, tx); err != nil {
			t.Fatal(err)
		}
	}
	// As a batch that failed to commit is rolled back.
	tx, err := d.Begin(ctx, false)
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Commit(ctx, tx); err != nil {
		t.Fatal(err)
	}
	if err := d.Rollback(ctx, tx); err != nil {
		t.Fatal(err)
	}
	if err := db.PingContext(ctx); err != nil {
		t.Fatal(err)
	}
	if n := db.Stats().InUse; n != 0 {
		t.Errorf("%d connections in use after every transaction ended", n)
	}
}
