package meowmxsqlite_test

import (
	"context"
	"database/sql"
	"fmt"
	"log/slog"
	"path/filepath"
	"runtime"
	"sync/atomic"
	"testing"

	"github.com/meowmx/meowmx"
	"github.com/meowmx/meowmx/meowmxsqlite"
)

var benchData = []byte(`{"amount":42,"currency":"EUR","note":"bench"}`)

// benchStore is a migrated store on a new file opened with Open (WAL,
// synchronous=FULL), and its database, closed with the benchmark.
func benchStore(b *testing.B) (*meowmx.Store[*sql.Tx], *sql.DB) {
	db, err := meowmxsqlite.Open(filepath.Join(b.TempDir(), "bench.db"))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = db.Close() })
	store, err := meowmx.New(meowmxsqlite.New(db), &meowmx.Config{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = store.Close() })
	if err := store.Migrate(context.Background()); err != nil {
		b.Fatal(err)
	}
	return store, db
}

// BenchmarkAppend1: single-event appends to new streams, one writer, on a
// file opened with Open (WAL, synchronous=FULL).
func BenchmarkAppend1(b *testing.B) {
	store, _ := benchStore(b)
	ctx := context.Background()
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		if _, err := store.Append(ctx, meowmx.NewStream("bench", fmt.Sprint(i)), meowmx.NoStream, meowmx.Event{Type: "Benched", Data: benchData}); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkAppend1Concurrent: single-event appends to new streams from 8
// goroutines through one store (grouped), on a file opened with Open.
func BenchmarkAppend1Concurrent(b *testing.B) {
	store, _ := benchStore(b)
	ctx := context.Background()
	var next atomic.Int64
	b.ReportAllocs()
	b.SetParallelism(8 / max(runtime.GOMAXPROCS(0), 1))
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			i := next.Add(1)
			if _, err := store.Append(ctx, meowmx.NewStream("bench", fmt.Sprint(i)), meowmx.NoStream, meowmx.Event{Type: "Benched", Data: benchData}); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// BenchmarkBaselineInsert1: the bare autocommit INSERT into a table with a
// unique (stream, version) index, on the same settings.
func BenchmarkBaselineInsert1(b *testing.B) {
	db, err := meowmxsqlite.Open(filepath.Join(b.TempDir(), "baseline.db"))
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	ctx := context.Background()
	if _, err := db.ExecContext(ctx, `CREATE TABLE baseline (id INTEGER PRIMARY KEY AUTOINCREMENT, stream TEXT NOT NULL, version INTEGER NOT NULL, type TEXT NOT NULL, data TEXT NOT NULL, UNIQUE (stream, version))`); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		if _, err := db.ExecContext(ctx, `INSERT INTO baseline (stream, version, type, data) VALUES (?, 0, ?, ?)`, fmt.Sprint("bench-", i), "Benched", string(benchData)); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkTableInsert1: the bare autocommit INSERT of BenchmarkBaselineInsert1
// into meowmx's own events table (its columns and indexes, no guard, no
// check, event IDs increasing as UUIDv7 are): what the table costs a
// single writer, apart from the append's statement and transaction.
func BenchmarkTableInsert1(b *testing.B) {
	_, db := benchStore(b)
	ctx := context.Background()
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		if _, err := db.ExecContext(ctx, `INSERT INTO meowmx_events (category, stream_id, stream_hash, version, event_id, type, data, recorded_at) VALUES ('bench', ?, 0, 0, ?, ?, ?, unixepoch('subsec') * 1000000)`,
			fmt.Sprint(i), fmt.Sprintf("00000000-0000-7000-8000-%012x", i), "Benched", string(benchData)); err != nil {
			b.Fatal(err)
		}
	}
}
