package meowmx_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/meowmx/meowmx"
	"github.com/meowmx/meowmx/internal/storetest"
	"github.com/meowmx/meowmx/internal/testdb"
	"github.com/meowmx/meowmx/meowmxpgxv5"
	"github.com/meowmx/meowmx/meowmxsqlite"
)

func TestMain(m *testing.M) { testdb.Main(m) }

func TestPostgres(t *testing.T) {
	t.Parallel()
	storetest.Exercise(t, postgresHarness())
}

func TestSQLite(t *testing.T) {
	t.Parallel()
	storetest.Exercise(t, sqliteHarness())
}

func postgresHarness() *storetest.Harness[pgx.Tx] {
	return postgresHarnessOn(func(t *testing.T) *meowmxpgxv5.Driver { return meowmxpgxv5.New(testdb.Pool(t)) })
}

// postgresHarnessOn is the PostgreSQL harness on the drivers newDriver
// makes.
func postgresHarnessOn(newDriver func(t *testing.T) *meowmxpgxv5.Driver) *storetest.Harness[pgx.Tx] {
	return &storetest.Harness[pgx.Tx]{
		NewStore: func(t *testing.T, cfg *meowmx.Config, migrate bool) *meowmx.Store[pgx.Tx] {
			return storetest.OpenStore(t, newDriver(t), cfg, testdb.SchemaName(t), migrate)
		},
		Begin: func(ctx context.Context, s *meowmx.Store[pgx.Tx]) (pgx.Tx, error) {
			return s.Driver().(*meowmxpgxv5.Driver).Pool().Begin(ctx)
		},
		Commit:   func(ctx context.Context, tx pgx.Tx) error { return tx.Commit(ctx) },
		Rollback: func(ctx context.Context, tx pgx.Tx) error { return tx.Rollback(ctx) },
		ReadModel: func(t *testing.T, s *meowmx.Store[pgx.Tx]) (func(context.Context, pgx.Tx, string, int) error, func(context.Context, string) (int, bool, error)) {
			pool := s.Driver().(*meowmxpgxv5.Driver).Pool()
			table := pgx.Identifier{s.Schema(), "read_model"}.Sanitize()
			if _, err := pool.Exec(context.Background(), `CREATE TABLE `+table+` (key text PRIMARY KEY, value int NOT NULL)`); err != nil {
				t.Fatal(err)
			}
			put := func(ctx context.Context, tx pgx.Tx, key string, value int) error {
				_, err := tx.Exec(ctx, `INSERT INTO `+table+` (key, value) VALUES ($1, $2)
					ON CONFLICT (key) DO UPDATE SET value = excluded.value`, key, value)
				return err
			}
			get := func(ctx context.Context, key string) (int, bool, error) {
				var value int
				err := pool.QueryRow(ctx, `SELECT value FROM `+table+` WHERE key = $1`, key).Scan(&value)
				if errors.Is(err, pgx.ErrNoRows) {
					return 0, false, nil
				}
				return value, err == nil, err
			}
			return put, get
		},
		Table: func(s *meowmx.Store[pgx.Tx], name string) string {
			return pgx.Identifier{s.Schema(), name}.Sanitize()
		},
		Exec: func(ctx context.Context, tx pgx.Tx, query string, args ...any) (int64, error) {
			tag, err := tx.Exec(ctx, testdb.DollarPlaceholders(query), args...)
			return tag.RowsAffected(), err
		},
		ExecDB: func(ctx context.Context, s *meowmx.Store[pgx.Tx], query string) error {
			_, err := s.Driver().(*meowmxpgxv5.Driver).Pool().Exec(ctx, query)
			return err
		},
		QueryPairs: func(ctx context.Context, s *meowmx.Store[pgx.Tx], query string) ([][2]string, error) {
			rows, err := s.Driver().(*meowmxpgxv5.Driver).Pool().Query(ctx, query)
			if err != nil {
				return nil, err
			}
			return pgx.CollectRows(rows, func(row pgx.CollectableRow) ([2]string, error) {
				var pair [2]string
				err := row.Scan(&pair[0], &pair[1])
				return pair, err
			})
		},
		ConcurrentWriters: true,
	}
}

func sqliteHarness() *storetest.Harness[*sql.Tx] {
	// Each test gets its own file; several stores of one test share it, each
	// in a table prefix of its own.
	var (
		mu  sync.Mutex
		dbs = map[*testing.T]*sql.DB{}
		n   int
	)
	sqliteDB := func(s *meowmx.Store[*sql.Tx]) *sql.DB { return s.Driver().(*meowmxsqlite.Driver).DB() }
	return storetest.SQLTx(&storetest.Harness[*sql.Tx]{
		NewStore: func(t *testing.T, cfg *meowmx.Config, migrate bool) *meowmx.Store[*sql.Tx] {
			mu.Lock()
			db, ok := dbs[t]
			if !ok {
				db = testdb.SQLite(t)
				dbs[t] = db
				t.Cleanup(func() {
					mu.Lock()
					delete(dbs, t)
					mu.Unlock()
				})
			}
			n++
			schema := fmt.Sprintf("store%d", n)
			mu.Unlock()
			return storetest.OpenStore(t, meowmxsqlite.New(db), cfg, schema, migrate)
		},
		Table: func(s *meowmx.Store[*sql.Tx], name string) string { return s.Schema() + "_" + name },
	}, sqliteDB, nil)
}

// TestPgBouncer runs the suite through PgBouncer in transaction pooling
// mode: a pool that names no prepared statement (cache_describe), and
// notifications listened for on a direct connection. Nothing meowmx does
// may rely on the state of a pooled session.
func TestPgBouncer(t *testing.T) {
	t.Parallel()
	bouncer := testdb.NewPgBouncer(t)
	pool, err := testdb.NewPool(bouncer.URL("cache_describe"), 24)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	// Transaction pooling: two clients at once get the same server
	// session, one after the other, which session pooling never does.
	ctx := t.Context()
	c1, err := pool.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer c1.Release()
	c2, err := pool.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Release()
	testdb.Eventually(t, func() (bool, string) {
		var pid1, pid2 int
		if err := c1.QueryRow(ctx, "SELECT pg_backend_pid()").Scan(&pid1); err != nil {
			t.Fatal(err)
		}
		if err := c2.QueryRow(ctx, "SELECT pg_backend_pid()").Scan(&pid2); err != nil {
			t.Fatal(err)
		}
		return pid1 == pid2, fmt.Sprintf("two clients on server sessions %d and %d", pid1, pid2)
	})
	c1.Release()
	c2.Release()
	h := postgresHarnessOn(func(t *testing.T) *meowmxpgxv5.Driver {
		return meowmxpgxv5.New(pool, meowmxpgxv5.ListenURL(testdb.URL()))
	})
	h.Only = storetest.AppendReadSubscribe
	storetest.Exercise(t, h)
}

// TestPgBouncerPolls: behind a pooler in transaction mode with no direct
// connection to listen on, the store says once why it does not listen, and
// subscriptions still deliver, by polling.
func TestPgBouncerPolls(t *testing.T) {
	t.Parallel()
	bouncer := testdb.NewPgBouncer(t)
	pool, err := testdb.NewPool(bouncer.URL("cache_describe"), 8)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	var log testdb.Buffer
	store, err := meowmx.New(meowmxpgxv5.New(pool, meowmxpgxv5.TransactionPooled()), &meowmx.Config{
		Schema: testdb.SchemaName(t), Logger: slog.New(slog.NewTextHandler(&log, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	ctx := t.Context()
	if err := store.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	handled := make(chan meowmx.RecordedEvent, 10)
	sub, err := store.Subscribe(meowmx.SubscriptionConfig[pgx.Tx]{
		Name: "polled", PollInterval: 50 * time.Millisecond,
		Handler: meowmx.HandleEach(func(_ context.Context, _ pgx.Tx, e meowmx.RecordedEvent) error {
			handled <- e
			return nil
		}),
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := sub.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer sub.Stop(context.Background())
	for i := range 3 {
		if _, err := store.Append(ctx, meowmx.NewStream("polled", fmt.Sprint(i)), meowmx.NoStream, meowmx.Event{Type: "E", Data: []byte("{}")}); err != nil {
			t.Fatal(err)
		}
		if e := testdb.Recv(t, handled, "the event, by polling"); e.Stream.ID != fmt.Sprint(i) {
			t.Fatalf("handled %s, want stream %d", e.Stream, i)
		}
	}
	if n := strings.Count(log.String(), "not listening for appends of other processes"); n != 1 {
		t.Fatalf("the warning was logged %d times: %s", n, log.String())
	}
	if !strings.Contains(log.String(), "pooler in transaction mode") {
		t.Fatalf("the warning does not say why: %s", log.String())
	}
}
