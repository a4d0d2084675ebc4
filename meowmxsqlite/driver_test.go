package meowmxsqlite_test

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/meowmx/meowmx"
	"github.com/meowmx/meowmx/internal/testdb"
	"github.com/meowmx/meowmx/meowmxsqlite"
)

func TestMain(m *testing.M) { testdb.Main(m) }

// newStore returns a driver on db and a migrated store on it.
func newStore(t *testing.T, db *sql.DB) (*meowmxsqlite.Driver, *meowmx.Store[*sql.Tx]) {
	t.Helper()
	d := meowmxsqlite.New(db)
	store, err := meowmx.New(d, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := store.Migrate(context.Background()); err != nil {
		t.Fatal(err)
	}
	return d, store
}

func TestOpenSettings(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "with space & ?query#frag.db")
	db, err := meowmxsqlite.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var mode string
	var busy, sync int
	if err := db.QueryRow(`PRAGMA journal_mode`).Scan(&mode); err != nil || mode != "wal" {
		t.Fatalf("journal_mode = %q (%v), want wal", mode, err)
	}
	if err := db.QueryRow(`PRAGMA busy_timeout`).Scan(&busy); err != nil || busy != meowmxsqlite.BusyTimeout {
		t.Fatalf("busy_timeout = %d (%v)", busy, err)
	}
	if err := db.QueryRow(`PRAGMA synchronous`).Scan(&sync); err != nil || sync != 2 {
		t.Fatalf("synchronous = %d (%v), want 2 (FULL)", sync, err)
	}
	var cache int
	if err := db.QueryRow(`PRAGMA cache_size`).Scan(&cache); err != nil || cache != -32768 {
		t.Fatalf("cache_size = %d (%v), want -32768 (32 MiB)", cache, err)
	}
	if _, err := meowmxsqlite.Open(""); err == nil {
		t.Fatal("Open(\"\") succeeded")
	}
}

// TestTwoHandlesOneFile: two *sql.DB on one file, as two processes would
// have, append concurrently without losing or duplicating anything.
func TestTwoHandlesOneFile(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "shared.db")
	var stores []*meowmx.Store[*sql.Tx]
	for range 2 {
		db, err := meowmxsqlite.Open(path)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
		store, err := meowmx.New(meowmxsqlite.New(db), nil)
		if err != nil {
			t.Fatal(err)
		}
		if err := store.Migrate(ctx); err != nil {
			t.Fatal(err)
		}
		stores = append(stores, store)
	}
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Go(func() {
			store := stores[w%2]
			for i := range 20 {
				_, err := store.Append(ctx, meowmx.NewStream("tally", fmt.Sprint(i%3)), meowmx.Any,
					meowmx.Event{Type: "Counted", Data: json.RawMessage(`{}`)})
				if err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	events, err := stores[1].ReadAll(ctx, meowmx.Start, &meowmx.ReadOpts{Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	if len(events) != 160 {
		t.Fatalf("read %d events, want 160", len(events))
	}
	next := map[meowmx.Stream]int64{}
	for _, e := range events {
		if e.Version != next[e.Stream] {
			t.Fatalf("%s: version %d where %d was next", e.Stream, e.Version, next[e.Stream])
		}
		next[e.Stream]++
	}
}

// TestBatchTransactions: Begin takes this process's turn to write (an
// append waits for the batch to end), commits with synchronous=NORMAL unless
// asked to be synchronous, and gives the connection back with FULL.
func TestBatchTransactions(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := testdb.SQLite(t)
	db.SetMaxOpenConns(2)
	d, store := newStore(t, db)
	for _, synchronous := range []bool{false, true} {
		tx, err := d.Begin(ctx, synchronous)
		if err != nil {
			t.Fatal(err)
		}
		var level int
		if err := tx.QueryRow(`PRAGMA synchronous`).Scan(&level); err != nil {
			t.Fatal(err)
		}
		if want := map[bool]int{false: 1, true: 2}[synchronous]; level != want {
			t.Fatalf("synchronous=%v batch: PRAGMA synchronous = %d, want %d", synchronous, level, want)
		}
		appended := make(chan error, 1)
		go func() {
			_, err := store.Append(ctx, meowmx.NewStream("order", fmt.Sprint(synchronous)), meowmx.NoStream, meowmx.Event{Type: "A", Data: json.RawMessage(`{}`)})
			appended <- err
		}()
		testdb.Eventually(t, func() (bool, string) {
			select {
			case err := <-appended:
				t.Fatalf("an append ran during a batch transaction: %v", err)
			default:
			}
			return d.WritersWaiting() == 1, fmt.Sprintf("%d writers wait for their turn", d.WritersWaiting())
		})
		if err := d.Commit(ctx, tx); err != nil {
			t.Fatal(err)
		}
		if err := <-appended; err != nil {
			t.Fatal(err)
		}
		for range 2 { // both connections
			if err := db.QueryRow(`PRAGMA synchronous`).Scan(&level); err != nil || level != 2 {
				t.Fatalf("after the batch: synchronous = %d (%v), want 2 (FULL)", level, err)
			}
		}
	}
}

// TestWriteTurnLine: writers wait in line for as long as the line moves,
// however long that is; a turn held without end (a handler appending
// outside its batch's transaction) makes the next writer fail instead of
// waiting forever.
func TestWriteTurnLine(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	d, store := newStore(t, testdb.SQLite(t))
	tx, err := d.Begin(ctx, false)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		_, err := store.Append(ctx, meowmx.NewStream("order", "1"), meowmx.NoStream, meowmx.Event{Type: "A", Data: json.RawMessage(`{}`)})
		done <- err
	}()
	err = testdb.Recv(t, done, "the append waiting behind a turn that never ends")
	if err == nil || !strings.Contains(err.Error(), "Append instead of AppendTx") {
		t.Fatalf("append behind a turn held for good: %v", err)
	}
	if err := d.Rollback(ctx, tx); err != nil {
		t.Fatal(err)
	}
	if _, err := store.Append(ctx, meowmx.NewStream("order", "1"), meowmx.NoStream, meowmx.Event{Type: "A", Data: json.RawMessage(`{}`)}); err != nil {
		t.Fatalf("append once the turn is free: %v", err)
	}
}

// TestPreparedOnPoolOfOne: statements are prepared between write
// transactions, never while one holds the pool's only connection: on a pool
// of one, appends (alone and grouped) and reads go through, with their
// statements prepared after their first runs.
func TestPreparedOnPoolOfOne(t *testing.T) {
	t.Parallel()
	db, err := meowmxsqlite.Open(filepath.Join(t.TempDir(), "one.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	db.SetMaxOpenConns(1)
	_, store := newStore(t, db)
	defer store.Close()
	ctx := t.Context()
	for round := range 3 {
		var wg sync.WaitGroup
		errs := make(chan error, 8)
		for w := range 8 {
			wg.Go(func() {
				_, err := store.Append(ctx, meowmx.NewStream("one", fmt.Sprint(w)), meowmx.Any,
					meowmx.Event{Type: "Tick", Data: json.RawMessage(fmt.Sprintf(`{"round":%d}`, round))})
				errs <- err
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				t.Fatalf("round %d: %v", round, err)
			}
		}
		for w := range 8 {
			events, err := store.ReadStream(ctx, meowmx.NewStream("one", fmt.Sprint(w)), nil)
			if err != nil || len(events) != round+1 {
				t.Fatalf("round %d: stream %d has %d events, %v", round, w, len(events), err)
			}
		}
	}
	if db.Stats().OpenConnections != 1 {
		t.Fatalf("%d open connections on a pool of one", db.Stats().OpenConnections)
	}
}

// TestNotFromOpen: on databases that Open did not return (no _txlock in
// their DSN), two handles on one file appending to one stream at once
// still take the write lock as they begin: none fails, and the stream is
// gapless.
func TestNotFromOpen(t *testing.T) {
	t.Parallel()
	dsn := "file:" + filepath.Join(t.TempDir(), "plain.db") + "?_pragma=busy_timeout(10000)&_pragma=journal_mode(WAL)"
	var stores []*meowmx.Store[*sql.Tx]
	for range 2 {
		db, err := sql.Open("sqlite", dsn)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
		_, store := newStore(t, db)
		t.Cleanup(func() { store.Close() })
		stores = append(stores, store)
	}
	ctx := t.Context()
	stream := meowmx.NewStream("plain", "1")
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for w := range 8 {
		wg.Go(func() {
			for range 25 {
				if _, err := stores[w%2].Append(ctx, stream, meowmx.Any, meowmx.Event{Type: "T", Data: json.RawMessage(`{}`)}); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	events, err := stores[0].ReadStream(ctx, stream, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(events) != 200 || events[199].Version != 199 {
		t.Fatalf("the stream has %d events", len(events))
	}
}
