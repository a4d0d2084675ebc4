package meowmxpgxv5_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/meowmx/meowmx"
	"github.com/meowmx/meowmx/internal/testdb"
	"github.com/meowmx/meowmx/meowmxdriver"
	"github.com/meowmx/meowmx/meowmxpgxv5"
)

func poolAt(t *testing.T, url string) *pgxpool.Pool {
	t.Helper()
	pool, err := testdb.NewPool(url, 8)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	return pool
}

func storeOn(t *testing.T, pool *pgxpool.Pool, schema string, log *testdb.Buffer) *meowmx.Store[pgx.Tx] {
	t.Helper()
	logger := slog.New(slog.DiscardHandler)
	if log != nil {
		logger = slog.New(slog.NewTextHandler(log, &slog.HandlerOptions{Level: slog.LevelInfo}))
	}
	store, err := meowmx.New(meowmxpgxv5.New(pool), &meowmx.Config{Schema: schema, Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	return store
}

// seedSchema writes, on the shared cluster, a schema whose positions are far
// ahead of cluster's transaction counter: two streams of 3 and 2 events, and
// a subscription "audit" that has handled them all.
func seedSchema(t *testing.T, cluster *pgxpool.Pool) (schema string, events []meowmx.RecordedEvent) {
	t.Helper()
	ctx := context.Background()
	a := testdb.Pool(t)
	testdb.AdvanceCounter(t, a, testdb.Counter(t, cluster)+5000)
	schema = testdb.SchemaName(t)
	store := storeOn(t, a, schema, nil)
	if err := store.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	for _, b := range []struct {
		id string
		n  int
	}{{"1", 3}, {"2", 2}} {
		batch := make([]meowmx.Event, b.n)
		for i := range batch {
			batch[i] = meowmx.Event{Type: "Step", Data: data}
		}
		if _, err := store.Append(ctx, meowmx.NewStream("order", b.id), meowmx.NoStream, batch...); err != nil {
			t.Fatal(err)
		}
	}
	events = readAll(t, store, meowmx.Start, 5)
	handled := make(chan meowmx.RecordedEvent, 10)
	sub := startSub(t, store, meowmx.SubscriptionConfig[pgx.Tx]{Name: "audit", Handler: collect(handled)})
	for range 5 {
		testdb.Recv(t, handled, "the subscription on the old cluster")
	}
	if err := sub.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	return schema, events
}

func collect(out chan<- meowmx.RecordedEvent) meowmx.Handler[pgx.Tx] {
	return meowmx.HandleEach(func(_ context.Context, _ pgx.Tx, e meowmx.RecordedEvent) error {
		out <- e
		return nil
	})
}

// readAll reads the whole log after after, waiting until it holds at least
// want events.
func readAll(t *testing.T, store *meowmx.Store[pgx.Tx], after meowmx.Position, want int) []meowmx.RecordedEvent {
	t.Helper()
	var got []meowmx.RecordedEvent
	testdb.Eventually(t, func() (bool, string) {
		var err error
		got, err = store.ReadAll(context.Background(), after, &meowmx.ReadOpts{Limit: 1000})
		if err != nil {
			t.Fatal(err)
		}
		return len(got) >= want, fmt.Sprintf("read %d events, want %d", len(got), want)
	})
	return got
}

// checkOrder checks that positions increase and each stream's versions
// come in order, from 0, in the global order.
func checkOrder(t *testing.T, events []meowmx.RecordedEvent) {
	t.Helper()
	next := map[meowmx.Stream]int64{}
	for i, e := range events {
		if i > 0 && e.Position.Compare(events[i-1].Position) <= 0 {
			t.Fatalf("position %s after %s", e.Position, events[i-1].Position)
		}
		if e.Version != next[e.Stream] {
			t.Fatalf("%s version %d where %d was next, at %s", e.Stream, e.Version, next[e.Stream], e.Position)
		}
		next[e.Stream]++
	}
}

// TestClusterMove: a schema dumped from one cluster and restored into
// another, whose transaction counter is far behind its positions, keeps
// working: the old events are read, new events come after them, and a
// subscription checkpointed at the end of the old log receives the new ones.
// It happens on the first use of the store (or at Migrate), in a process
// that was already running against the old cluster too; a role that cannot
// re-base gets ErrClusterMoved and writes nothing until Migrate does it.
func TestClusterMove(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := testdb.NewCluster(t)
	poolB := poolAt(t, b.URL())
	var systemA, systemB int64
	for pool, id := range map[*pgxpool.Pool]*int64{testdb.Pool(t): &systemA, poolB: &systemB} {
		if err := pool.QueryRow(ctx, `SELECT system_identifier FROM pg_control_system()`).Scan(id); err != nil {
			t.Fatal(err)
		}
	}

	t.Run("first use", func(t *testing.T) {
		schema, old := seedSchema(t, poolB)
		if err := b.RestoreSchema(ctx, testdb.URL(), schema); err != nil {
			t.Fatal(err)
		}
		var log testdb.Buffer
		store := storeOn(t, poolB, schema, &log)
		// The old events, all of them, in their order.
		got, err := store.ReadAll(ctx, meowmx.Start, nil)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != len(old) || got[len(got)-1].Position != old[len(old)-1].Position {
			t.Fatalf("read %d events on the new cluster, want the %d restored ones", len(got), len(old))
		}
		// New events after them.
		added, err := store.Append(ctx, meowmx.NewStream("order", "1"), 2, meowmx.Event{Type: "Step", Data: data})
		if err != nil {
			t.Fatal(err)
		}
		if added[0].Position.Compare(old[len(old)-1].Position) <= 0 {
			t.Fatalf("a new event at %s, before the last restored one at %s", added[0].Position, old[len(old)-1].Position)
		}
		if _, err := store.Append(ctx, meowmx.NewStream("order", "3"), meowmx.NoStream, meowmx.Event{Type: "Step", Data: data}); err != nil {
			t.Fatal(err)
		}
		checkOrder(t, readAll(t, store, meowmx.Start, 7))
		// The subscription, checkpointed at the old end, gets the new two.
		handled := make(chan meowmx.RecordedEvent, 10)
		startSub(t, store, meowmx.SubscriptionConfig[pgx.Tx]{Name: "audit", Handler: collect(handled)})
		for _, want := range []string{"order-1", "order-3"} {
			if e := testdb.Recv(t, handled, "the new events"); e.Stream.String() != want {
				t.Fatalf("the subscription received %s version %d, want the new event of %s", e.Stream, e.Version, want)
			}
		}
		testdb.Eventually(t, func() (bool, string) {
			st, err := store.SubscriptionStatuses(ctx, "audit")
			if err != nil {
				t.Fatal(err)
			}
			return st[0].Lag == 0 && st[0].Checkpoint.Compare(added[0].Position) > 0, fmt.Sprintf("%+v", st[0])
		})
		if !strings.Contains(log.String(), "transaction counter is behind") {
			t.Fatalf("no warning logged about the move: %q", log.String())
		}
		if res, err := store.MigrateWithResult(ctx); err != nil || res.Cluster != nil {
			t.Fatalf("Migrate after the store re-based itself: %+v, %v", res, err)
		}
	})

	t.Run("migrate", func(t *testing.T) {
		schema, old := seedSchema(t, poolB)
		if err := b.RestoreSchema(ctx, testdb.URL(), schema); err != nil {
			t.Fatal(err)
		}
		store := storeOn(t, poolB, schema, nil)
		res, err := store.MigrateWithResult(ctx)
		if err != nil {
			t.Fatal(err)
		}
		c := res.Cluster
		if c == nil || !c.Rebased || c.SystemIdentifier != systemB || c.PreviousSystemIdentifier != systemA ||
			c.LastPosition != old[len(old)-1].Position.TransactionID || c.Offset <= 0 || c.PreviousOffset != 0 {
			t.Fatalf("Migrate on the new cluster reported %+v", c)
		}
		added, err := store.Append(ctx, meowmx.NewStream("order", "2"), 1, meowmx.Event{Type: "Step", Data: data})
		if err != nil {
			t.Fatal(err)
		}
		checkOrder(t, readAll(t, store, meowmx.Start, 6))
		if added[0].Position.TransactionID <= c.LastPosition {
			t.Fatalf("new position %s, not after %d", added[0].Position, c.LastPosition)
		}
	})

	t.Run("without the right to re-base", func(t *testing.T) {
		schema, old := seedSchema(t, poolB)
		if err := b.RestoreSchema(ctx, testdb.URL(), schema); err != nil {
			t.Fatal(err)
		}
		var r [4]byte
		_, _ = rand.Read(r[:])
		role := "app_" + hex.EncodeToString(r[:])
		ident := pgx.Identifier{schema}.Sanitize()
		if err := b.Psql("test", `CREATE ROLE `+role+` LOGIN;
GRANT USAGE ON SCHEMA `+ident+` TO `+role+`;
GRANT SELECT, INSERT ON ALL TABLES IN SCHEMA `+ident+` TO `+role+`;
GRANT USAGE ON ALL SEQUENCES IN SCHEMA `+ident+` TO `+role); err != nil {
			t.Fatal(err)
		}
		app := storeOn(t, poolAt(t, strings.Replace(b.URL(), "postgres@", role+"@", 1)), schema, nil)
		if _, err := app.Append(ctx, meowmx.NewStream("order", "9"), meowmx.NoStream, meowmx.Event{Type: "Step", Data: data}); !errors.Is(err, meowmx.ErrClusterMoved) {
			t.Fatalf("append by a role that cannot re-base: err = %v, want ErrClusterMoved", err)
		}
		if _, err := app.ReadAll(ctx, meowmx.Start, nil); !errors.Is(err, meowmx.ErrClusterMoved) {
			t.Fatalf("read by a role that cannot re-base: err = %v, want ErrClusterMoved", err)
		}
		owner := storeOn(t, poolB, schema, nil)
		if v, err := owner.StreamVersion(ctx, meowmx.NewStream("order", "9")); err != nil || v != -1 {
			t.Fatalf("the refused append wrote: version %d, %v", v, err)
		}
		if err := owner.Migrate(ctx); err != nil {
			t.Fatal(err)
		}
		added, err := app.Append(ctx, meowmx.NewStream("order", "9"), meowmx.NoStream, meowmx.Event{Type: "Step", Data: data})
		if err != nil {
			t.Fatalf("append after Migrate re-based: %v", err)
		}
		if added[0].Position.Compare(old[len(old)-1].Position) <= 0 {
			t.Fatalf("new position %s, not after %s", added[0].Position, old[len(old)-1].Position)
		}
	})

	t.Run("a running process cut over", func(t *testing.T) {
		// The store's pool reaches the shared cluster, then, after a
		// restore and a reconnect, the new one: as a DNS switch would do.
		var port atomic.Int32
		cfg, err := pgxpool.ParseConfig(testdb.URL())
		if err != nil {
			t.Fatal(err)
		}
		port.Store(int32(cfg.ConnConfig.Port))
		cfg.BeforeConnect = func(_ context.Context, cc *pgx.ConnConfig) error {
			cc.Port = uint16(port.Load())
			return nil
		}
		pool, err := pgxpool.NewWithConfig(ctx, cfg)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(pool.Close)
		schema, old := seedSchema(t, poolB)
		store := storeOn(t, pool, schema, nil)
		if got := readAll(t, store, meowmx.Start, len(old)); len(got) != len(old) {
			t.Fatalf("read %d events before the cut-over", len(got))
		}
		if err := b.RestoreSchema(ctx, testdb.URL(), schema); err != nil {
			t.Fatal(err)
		}
		port.Store(int32(b.Port))
		pool.Reset()
		added, err := store.Append(ctx, meowmx.NewStream("order", "2"), 1, meowmx.Event{Type: "Step", Data: data})
		if err != nil {
			t.Fatal(err)
		}
		var id int64
		if err := pool.QueryRow(ctx, `SELECT system_identifier FROM pg_control_system()`).Scan(&id); err != nil || id != systemB {
			t.Fatalf("the pool reaches cluster %d (%v), want the new one, %d", id, err, systemB)
		}
		if added[0].Position.Compare(old[len(old)-1].Position) <= 0 {
			t.Fatalf("new position %s, not after %s", added[0].Position, old[len(old)-1].Position)
		}
		checkOrder(t, readAll(t, store, meowmx.Start, len(old)+1))
	})

	// A cluster with another system identifier whose transaction counter
	// is ahead of the positions (pg_upgrade, a cluster that has run
	// longer) is recorded, and nothing else changes. It runs on the test's
	// own cluster: on the shared one, other tests' transactions hold ids
	// older than this test's last event, as they never would on a cluster
	// just upgraded.
	t.Run("counter ahead", func(t *testing.T) {
		var r [4]byte
		_, _ = rand.Read(r[:])
		schema := "ahead_" + hex.EncodeToString(r[:])
		first := storeOn(t, poolB, schema, nil)
		if err := first.Migrate(ctx); err != nil {
			t.Fatal(err)
		}
		before, err := first.Append(ctx, meowmx.NewStream("order", "1"), meowmx.NoStream, meowmx.Event{Type: "Step", Data: data})
		if err != nil {
			t.Fatal(err)
		}
		table := pgx.Identifier{schema, "cluster"}.Sanitize()
		if _, err := poolB.Exec(ctx, `UPDATE `+table+` SET system_identifier = 42`); err != nil {
			t.Fatal(err)
		}
		var log testdb.Buffer
		store := storeOn(t, poolAt(t, b.URL()), schema, &log) // a process that has not seen the cluster yet
		after, err := store.Append(ctx, meowmx.NewStream("order", "1"), 0, meowmx.Event{Type: "Step", Data: data})
		if err != nil {
			t.Fatal(err)
		}
		var id, offset int64
		if err := poolB.QueryRow(ctx, `SELECT system_identifier, position_offset FROM `+table).Scan(&id, &offset); err != nil {
			t.Fatal(err)
		}
		if id != systemB || offset != 0 {
			t.Fatalf("cluster record after the check: system identifier %d, offset %d; want %d, 0", id, offset, systemB)
		}
		if after[0].Position.TransactionID-before[0].Position.TransactionID > 100 {
			t.Fatalf("positions jumped from %s to %s", before[0].Position, after[0].Position)
		}
		if !strings.Contains(log.String(), "recorded it") {
			t.Fatalf("the change was not logged: %q", log.String())
		}
	})

	// In the caller's transaction the check is a read in that transaction:
	// a pool of one connection, held by the caller, is enough.
	t.Run("in a transaction on a pool of one", func(t *testing.T) {
		schema := testdb.SchemaName(t)
		if err := storeOn(t, poolB, schema, nil).Migrate(ctx); err != nil {
			t.Fatal(err)
		}
		one, err := testdb.NewPool(b.URL(), 1)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(one.Close)
		store := storeOn(t, one, schema, nil) // a driver that has not checked the schema yet
		// A bound on a wait that would otherwise never end, not a timing.
		bounded, cancel := context.WithTimeout(ctx, testdb.StallTimeout())
		defer cancel()
		tx, err := one.Begin(bounded)
		if err != nil {
			t.Fatal(err)
		}
		defer tx.Rollback(ctx)
		if _, err := store.AppendTx(bounded, tx, meowmx.NewStream("order", "1"), meowmx.NoStream, meowmx.Event{Type: "Step", Data: data}); err != nil {
			t.Fatal(err)
		}
		if err := tx.Commit(bounded); err != nil {
			t.Fatal(err)
		}
	})

	// A move found in the caller's transaction re-bases on another pool
	// connection, and the caller's append follows the restored events.
	t.Run("found in a transaction", func(t *testing.T) {
		schema, old := seedSchema(t, poolB)
		if err := b.RestoreSchema(ctx, testdb.URL(), schema); err != nil {
			t.Fatal(err)
		}
		store := storeOn(t, poolB, schema, nil)
		var added []meowmx.RecordedEvent
		err := pgx.BeginFunc(ctx, poolB, func(tx pgx.Tx) error {
			var err error
			added, err = store.AppendTx(ctx, tx, meowmx.NewStream("order", "2"), 1, meowmx.Event{Type: "Step", Data: data})
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		if added[0].Position.Compare(old[len(old)-1].Position) <= 0 {
			t.Fatalf("new position %s, not after %s", added[0].Position, old[len(old)-1].Position)
		}
		checkOrder(t, readAll(t, store, meowmx.Start, len(old)+1))
	})

	// Position functions that disagree with the record (replaced by hand,
	// or left behind by a restore of only some objects) are rewritten from
	// it before anything is written through them.
	t.Run("functions differ from the record", func(t *testing.T) {
		schema, old := seedSchema(t, poolB)
		if err := b.RestoreSchema(ctx, testdb.URL(), schema); err != nil {
			t.Fatal(err)
		}
		if err := storeOn(t, poolB, schema, nil).Migrate(ctx); err != nil {
			t.Fatal(err)
		}
		ident := pgx.Identifier{schema}.Sanitize()
		if _, err := poolB.Exec(ctx, meowmxpgxv5.PositionFunctions(ident, 0)); err != nil {
			t.Fatal(err)
		}
		store := storeOn(t, poolAt(t, b.URL()), schema, nil)
		added, err := store.Append(ctx, meowmx.NewStream("order", "2"), 1, meowmx.Event{Type: "Step", Data: data})
		if err != nil {
			t.Fatal(err)
		}
		if added[0].Position.Compare(old[len(old)-1].Position) <= 0 {
			t.Fatalf("new position %s, not after %s", added[0].Position, old[len(old)-1].Position)
		}
		checkOrder(t, readAll(t, store, meowmx.Start, len(old)+1))
	})
}

// TestClusterReports: a store's cluster reports end with the store, and a
// newer store's registration for the schema is not ended by an older one.
func TestClusterReports(t *testing.T) {
	d := meowmxpgxv5.New(testdb.Pool(t))
	var first, second int
	stopFirst := d.OnClusterChange("s", func(*meowmxdriver.ClusterChange) { first++ })
	d.ReportClusterChange("s", &meowmxdriver.ClusterChange{})
	stopSecond := d.OnClusterChange("s", func(*meowmxdriver.ClusterChange) { second++ })
	stopFirst()
	d.ReportClusterChange("s", &meowmxdriver.ClusterChange{})
	stopSecond()
	d.ReportClusterChange("s", &meowmxdriver.ClusterChange{})
	if first != 1 || second != 1 {
		t.Fatalf("reports received: %d and %d, want 1 and 1", first, second)
	}
}
