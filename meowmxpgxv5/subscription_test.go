package meowmxpgxv5_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/meowmx/meowmx"
	"github.com/meowmx/meowmx/internal/testdb"
	"github.com/meowmx/meowmx/meowmxpgxv5"
)

// appPool returns a pool whose connections carry an application name of
// their own, so that a test can terminate exactly them.
func appPool(t *testing.T) (*pgxpool.Pool, string) {
	t.Helper()
	var b [4]byte
	_, _ = rand.Read(b[:])
	app := "meowmx_test_" + hex.EncodeToString(b[:])
	pool := configuredPool(t, func(cfg *pgxpool.Config) {
		cfg.ConnConfig.RuntimeParams["application_name"] = app
		cfg.MaxConns = 8
	})
	return pool, app
}

// appStore returns a migrated store, in a schema of its own, on a pool of
// its own (see appPool).
func appStore(t *testing.T) (*meowmx.Store[pgx.Tx], string) {
	t.Helper()
	pool, app := appPool(t)
	store, err := meowmx.New(meowmxpgxv5.New(pool), &meowmx.Config{Schema: testdb.SchemaName(t), Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	if err := store.Migrate(context.Background()); err != nil {
		t.Fatal(err)
	}
	return store, app
}

func terminate(t *testing.T, app string) int {
	t.Helper()
	var n int
	err := testdb.Pool(t).QueryRow(context.Background(),
		`SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = $1`, app).Scan(&n)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// handledTable creates a table the handler fills, one row per event, with a
// primary key: an event handled twice fails the batch.
func handledTable(t *testing.T, store *meowmx.Store[pgx.Tx]) (string, func(ctx context.Context, tx pgx.Tx, events []meowmx.RecordedEvent) error, func() int) {
	t.Helper()
	table := pgx.Identifier{store.Schema(), "handled"}.Sanitize()
	if _, err := testdb.Pool(t).Exec(context.Background(), `CREATE TABLE `+table+` (event_id uuid PRIMARY KEY)`); err != nil {
		t.Fatal(err)
	}
	handle := func(ctx context.Context, tx pgx.Tx, events []meowmx.RecordedEvent) error {
		for _, e := range events {
			if _, err := tx.Exec(ctx, `INSERT INTO `+table+` (event_id) VALUES ($1)`, e.ID); err != nil {
				return err
			}
		}
		return nil
	}
	count := func() int {
		var n int
		if err := testdb.Pool(t).QueryRow(context.Background(), `SELECT count(*) FROM `+table).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	return table, handle, count
}

func waitCount(t *testing.T, count func() int, want int) {
	t.Helper()
	testdb.Eventually(t, func() (bool, string) {
		n := count()
		if n > want {
			t.Fatalf("%d events handled, want %d", n, want)
		}
		return n == want, fmt.Sprintf("%d events handled, want %d", n, want)
	})
}

func appendEvents(t *testing.T, store *meowmx.Store[pgx.Tx], n int) {
	t.Helper()
	for i := range n {
		if _, err := store.Append(context.Background(), meowmx.NewStream("job", fmt.Sprint(i%5)), meowmx.Any, meowmx.Event{Type: "Done", Data: data}); err != nil {
			t.Fatal(err)
		}
	}
}

func startSub(t *testing.T, store *meowmx.Store[pgx.Tx], cfg meowmx.SubscriptionConfig[pgx.Tx]) *meowmx.Subscription[pgx.Tx] {
	t.Helper()
	sub, err := store.Subscribe(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := sub.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sub.Stop(context.Background()) })
	return sub
}

// TestSubscriptionSurvivesDroppedConnections: every connection of the
// subscription's process, its LISTEN connection included, is terminated;
// the worker reconnects and handles every event exactly once.
func TestSubscriptionSurvivesDroppedConnections(t *testing.T) {
	t.Parallel()
	pool, app := appPool(t)
	schema := testdb.SchemaName(t)
	quiet := slog.New(slog.DiscardHandler)
	store, err := meowmx.New(meowmxpgxv5.New(pool), &meowmx.Config{Schema: schema, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	if err := store.Migrate(context.Background()); err != nil {
		t.Fatal(err)
	}
	// Writes go through another pool, as another process's would.
	writer, err := meowmx.New(meowmxpgxv5.New(testdb.Pool(t)), &meowmx.Config{Schema: schema, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	_, handle, count := handledTable(t, store)
	startSub(t, store, meowmx.SubscriptionConfig[pgx.Tx]{
		Name: "resilient", Handler: handle, Lease: 2 * time.Second, PollInterval: 200 * time.Millisecond,
		RetryBackoff: 5 * time.Millisecond, RetryBackoffMax: 50 * time.Millisecond,
	})
	appendEvents(t, writer, 50)
	waitCount(t, count, 50)

	for round := range 3 {
		if n := terminate(t, app); n == 0 {
			t.Fatalf("round %d: no connection to terminate", round)
		}
		appendEvents(t, writer, 20)
		waitCount(t, count, 50+20*(round+1))
	}
}

// TestWorkerBackendTerminatedMidBatch: the connection of a batch's
// transaction is terminated while the handler runs; the batch rolls back and
// is handled again, exactly once.
func TestWorkerBackendTerminatedMidBatch(t *testing.T) {
	t.Parallel()
	store, app := appStore(t)
	_, handle, count := handledTable(t, store)
	appendEvents(t, store, 40)

	inBatch := make(chan struct{})
	terminated := make(chan struct{})
	var once sync.Once
	handler := func(ctx context.Context, tx pgx.Tx, events []meowmx.RecordedEvent) error {
		if err := handle(ctx, tx, events); err != nil {
			return err
		}
		first := false
		once.Do(func() { first = true })
		if first {
			close(inBatch)
			<-terminated
			// The transaction's connection is gone: this fails, and the
			// batch with it.
			_, err := tx.Exec(ctx, `SELECT 1`)
			return err
		}
		return nil
	}
	startSub(t, store, meowmx.SubscriptionConfig[pgx.Tx]{
		Name: "killed", Handler: handler, BatchSize: 15, Lease: 2 * time.Second,
		PollInterval: 100 * time.Millisecond, RetryBackoff: 5 * time.Millisecond, RetryBackoffMax: 50 * time.Millisecond,
	})
	testdb.Recv(t, inBatch, "the first batch")
	if n := terminate(t, app); n == 0 {
		t.Fatal("no connection to terminate")
	}
	close(terminated)
	waitCount(t, count, 40)
	parked, err := store.ParkedEvents(context.Background(), "killed")
	if err != nil || len(parked) != 0 {
		t.Fatalf("parked %d events (%v)", len(parked), err)
	}
}

// TestOutageIsNotAFailedAttempt: when the database connection dies after the
// handler succeeded (the checkpoint cannot commit), the batch is retried
// without counting an attempt, so even with MaxAttempts 1 nothing is parked.
func TestOutageIsNotAFailedAttempt(t *testing.T) {
	t.Parallel()
	store, _ := appStore(t)
	_, handle, count := handledTable(t, store)
	appendEvents(t, store, 10)
	var kills atomic.Int32
	handler := func(ctx context.Context, tx pgx.Tx, events []meowmx.RecordedEvent) error {
		if err := handle(ctx, tx, events); err != nil {
			return err
		}
		if kills.Load() < 3 {
			kills.Add(1)
			var pid int
			if err := tx.QueryRow(ctx, `SELECT pg_backend_pid()`).Scan(&pid); err != nil {
				return err
			}
			if _, err := testdb.Pool(t).Exec(ctx, `SELECT pg_terminate_backend($1)`, pid); err != nil {
				return err
			}
		}
		return nil // the handler succeeded; its transaction cannot commit
	}
	startSub(t, store, meowmx.SubscriptionConfig[pgx.Tx]{
		Name: "outage", Handler: handler, MaxAttempts: 1, Lease: 2 * time.Second,
		PollInterval: 100 * time.Millisecond, RetryBackoff: 5 * time.Millisecond, RetryBackoffMax: 50 * time.Millisecond,
	})
	waitCount(t, count, 10)
	if kills.Load() != 3 {
		t.Fatalf("%d connections killed, want 3", kills.Load())
	}
	parked, err := store.ParkedEvents(context.Background(), "outage")
	if err != nil || len(parked) != 0 {
		t.Fatalf("an outage parked %d events (%v)", len(parked), err)
	}
}
