package meowmxpgxv5_test

import (
	"context"
	"fmt"
	"os"
	"runtime"
	"sync/atomic"
	"testing"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/meowmx/meowmx"
	"github.com/meowmx/meowmx/internal/testdb"
	"github.com/meowmx/meowmx/meowmxdriver"
	"github.com/meowmx/meowmx/meowmxpgxv5"
)

// The baselines write the same JSON into a plain table with a bigserial key
// and a unique (stream, version) index, in autocommit, on the same pool.

func baselineTable(b *testing.B) string {
	b.Helper()
	schema := testdb.SchemaName(b)
	table := pgx.Identifier{schema, "baseline"}.Sanitize()
	_, err := testdb.Pool(b).Exec(context.Background(), fmt.Sprintf(`CREATE SCHEMA %s;
CREATE TABLE %s (id bigserial PRIMARY KEY, stream text NOT NULL, version bigint NOT NULL, type text NOT NULL, data jsonb NOT NULL, UNIQUE (stream, version))`,
		pgx.Identifier{schema}.Sanitize(), table))
	if err != nil {
		b.Fatal(err)
	}
	return table
}

// BenchmarkAppend1: single-event appends with an exact expected version,
// each to a new stream, one writer.
func BenchmarkAppend1(b *testing.B) {
	store := newStore(b, testdb.Pool(b))
	ctx := context.Background()
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		if _, err := store.Append(ctx, meowmx.NewStream("bench", fmt.Sprint(i)), meowmx.NoStream, meowmx.Event{Type: "Benched", Data: data}); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkBaselineInsert1(b *testing.B) {
	table := baselineTable(b)
	pool := testdb.Pool(b)
	ctx := context.Background()
	query := `INSERT INTO ` + table + ` (stream, version, type, data) VALUES ($1, 0, $2, $3)`
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		if _, err := pool.Exec(ctx, query, fmt.Sprint("bench-", i), "Benched", data); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkAppend100: 100-event batches.
func BenchmarkAppend100(b *testing.B) {
	store := newStore(b, testdb.Pool(b))
	ctx := context.Background()
	batch := make([]meowmx.Event, 100)
	for i := range batch {
		batch[i] = meowmx.Event{Type: "Benched", Data: data}
	}
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		if _, err := store.Append(ctx, meowmx.NewStream("bench", fmt.Sprint(i)), meowmx.NoStream, batch...); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkAppendBatch: batches of several sizes, appended with an INSERT
// of arrays and with COPY, to place the COPY threshold. Not parallel: it
// changes the threshold.
func BenchmarkAppendBatch(b *testing.B) {
	for _, size := range []int{100, 200, 500, 1000, 5000} {
		for _, way := range []struct {
			name      string
			threshold int
		}{{"insert", 1 << 30}, {"copy", 1}} {
			b.Run(fmt.Sprintf("%d/%s", size, way.name), func(b *testing.B) {
				defer meowmxpgxv5.SetCopyThreshold(meowmxpgxv5.SetCopyThreshold(way.threshold))
				store := newStore(b, testdb.Pool(b))
				ctx := context.Background()
				batch := make([]meowmx.Event, size)
				for i := range batch {
					batch[i] = meowmx.Event{Type: "Benched", Data: data}
				}
				for i := 0; b.Loop(); i++ {
					if _, err := store.Append(ctx, meowmx.NewStream("bench", fmt.Sprint(i)), meowmx.NoStream, batch...); err != nil {
						b.Fatal(err)
					}
				}
				b.ReportMetric(float64(b.N*size)/b.Elapsed().Seconds(), "events/s")
			})
		}
	}
}

func BenchmarkBaselineInsert100(b *testing.B) {
	table := baselineTable(b)
	pool := testdb.Pool(b)
	ctx := context.Background()
	query := `INSERT INTO ` + table + ` (stream, version, type, data)
SELECT $1, v, $2, $3 FROM generate_series(0, 99) AS v`
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		if _, err := pool.Exec(ctx, query, fmt.Sprint("bench-", i), "Benched", data); err != nil {
			b.Fatal(err)
		}
	}
}

type benchDeposited struct {
	Amount int `json:"amount"`
}

type benchAccount struct {
	Balance int `json:"balance"`
	Ops     int `json:"ops"`
}

// BenchmarkAggregateLoad: loading a 10,000-event stream by replaying every
// event, against loading it from the snapshot taken at its last version.
func BenchmarkAggregateLoad(b *testing.B) {
	ctx := context.Background()
	store := newStore(b, testdb.Pool(b))
	registry := meowmx.NewRegistry()
	if err := meowmx.Register[benchDeposited](registry, "Deposited"); err != nil {
		b.Fatal(err)
	}
	evolve := func(a benchAccount, ev any) benchAccount {
		a.Balance += ev.(benchDeposited).Amount
		a.Ops++
		return a
	}
	batch := make([]meowmx.Event, 1000)
	for i := range batch {
		batch[i] = meowmx.Event{Type: "Deposited", Data: []byte(`{"amount":1}`)}
	}
	for i := range 10 {
		events := batch
		if i == 9 {
			events = batch[:999] // 9,999 events; Execute adds the 10,000th
		}
		if _, err := store.Append(ctx, meowmx.NewStream("account", "big"), meowmx.Any, events...); err != nil {
			b.Fatal(err)
		}
	}
	plain, err := meowmx.NewAggregate(store, meowmx.AggregateConfig[benchAccount]{Category: "account", Registry: registry, Evolve: evolve})
	if err != nil {
		b.Fatal(err)
	}
	snapshotted, err := meowmx.NewAggregate(store, meowmx.AggregateConfig[benchAccount]{Category: "account", Registry: registry, Evolve: evolve, SnapshotEvery: 1000, SnapshotVersion: 1})
	if err != nil {
		b.Fatal(err)
	}
	// The 10,000th event, through Execute, completes a multiple of 1,000:
	// a snapshot at version 9,999.
	if _, _, err := snapshotted.Execute(ctx, "big", func(benchAccount, int64) ([]any, error) {
		return []any{benchDeposited{Amount: 1}}, nil
	}); err != nil {
		b.Fatal(err)
	}
	for name, agg := range map[string]*meowmx.Aggregate[pgx.Tx, benchAccount]{"replay-all": plain, "from-snapshot": snapshotted} {
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				state, version, err := agg.Load(ctx, "big")
				if err != nil || state.Balance != 10000 || version != 9999 {
					b.Fatalf("loaded %+v at %d (%v)", state, version, err)
				}
			}
		})
	}
}

// BenchmarkAppendGroup: one writer recording groups of single-event appends
// to distinct streams through the driver, against the same appends made
// one by one: the cost of the group statement per event.
func BenchmarkAppendGroup(b *testing.B) {
	for _, size := range []int{1, 4, 16, 64} {
		for _, grouped := range []bool{false, true} {
			b.Run(fmt.Sprintf("%d/grouped=%v", size, grouped), func(b *testing.B) {
				store := newStore(b, testdb.Pool(b))
				exec := store.Driver().Executor()
				ctx := context.Background()
				k := 0
				params := func() []*meowmxdriver.AppendParams {
					group := make([]*meowmxdriver.AppendParams, size)
					for i := range group {
						k++
						group[i] = &meowmxdriver.AppendParams{
							Schema: store.Schema(), Category: "bench", StreamID: fmt.Sprint(k), Expected: meowmx.NoStream,
							Events: []meowmxdriver.EventInsert{{ID: uuid.Must(uuid.NewV7()), Type: "Benched", Data: data}},
						}
					}
					return group
				}
				for b.Loop() {
					group := params()
					if grouped {
						if _, err := exec.AppendGroup(ctx, group); err != nil {
							b.Fatal(err)
						}
						continue
					}
					for _, p := range group {
						if _, err := exec.Append(ctx, p); err != nil {
							b.Fatal(err)
						}
					}
				}
				b.ReportMetric(float64(b.N*size)/b.Elapsed().Seconds(), "events/s")
			})
		}
	}
}

// BenchmarkAppend1Exact: single-event appends with exact expected versions,
// streams of 100 events, one writer (the shape of meowmx bench's append-1).
func BenchmarkAppend1Exact(b *testing.B) {
	store := newStore(b, testdb.Pool(b))
	ctx := context.Background()
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		stream := meowmx.NewStream("bench", fmt.Sprint(i/100))
		if _, err := store.Append(ctx, stream, meowmx.ExpectedVersion(i%100-1), meowmx.Event{Type: "Benched", Data: data}); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkAppend1Concurrent: single-event appends to new streams from 8
// goroutines through one store (grouped), reporting the CPU time of this
// process and of the PostgreSQL server per append (from /proc, so Linux
// only), to see where an append's cost lies.
func BenchmarkAppend1Concurrent(b *testing.B) {
	store := newStore(b, testdb.Pool(b))
	ctx := context.Background()
	var next atomic.Int64
	clientBefore, serverBefore := testdb.ProcessCPU(b, os.Getpid()), testdb.ServerCPU(b)
	b.SetParallelism(8 / max(runtime.GOMAXPROCS(0), 1))
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			i := next.Add(1)
			if _, err := store.Append(ctx, meowmx.NewStream("bench", fmt.Sprint(i)), meowmx.NoStream, meowmx.Event{Type: "Benched", Data: data}); err != nil {
				b.Error(err)
				return
			}
		}
	})
	n := float64(b.N)
	b.ReportMetric(float64(testdb.ProcessCPU(b, os.Getpid())-clientBefore)/n/1e3, "client-us/op")
	b.ReportMetric(float64(testdb.ServerCPU(b)-serverBefore)/n/1e3, "server-us/op")
}

// BenchmarkAppendTagged appends events without a stream, each tagged with
// a tag of its own and one tag that every event carries, without a
// condition and with one on the tag of its own (the dcb scenario's disjoint
// tags), from 1 goroutine and from 8 (grouped), with the client's and the
// server's CPU per append.
func BenchmarkAppendTagged(b *testing.B) {
	for _, setting := range []struct {
		writers     int
		conditional bool
	}{{1, false}, {1, true}, {8, false}, {8, true}} {
		b.Run(fmt.Sprintf("writers=%d/conditional=%v", setting.writers, setting.conditional), func(b *testing.B) {
			store := newStore(b, testdb.Pool(b))
			ctx := context.Background()
			var next atomic.Int64
			appendOne := func() error {
				e := meowmx.Event{Type: "Benched", Data: data, Tags: []string{fmt.Sprint("seat:", next.Add(1)), "flight:f1"}}
				var cond *meowmx.AppendCondition
				if setting.conditional {
					cond = &meowmx.AppendCondition{FailIfEventsMatch: meowmx.Query{Items: []meowmx.QueryItem{{Types: []string{"Benched"}, Tags: e.Tags[:1]}}}}
				}
				_, err := store.AppendEvents(ctx, cond, e)
				return err
			}
			clientBefore, serverBefore := testdb.ProcessCPU(b, os.Getpid()), testdb.ServerCPU(b)
			if setting.writers == 1 {
				for b.Loop() {
					if err := appendOne(); err != nil {
						b.Fatal(err)
					}
				}
			} else {
				b.SetParallelism(setting.writers / max(runtime.GOMAXPROCS(0), 1))
				b.RunParallel(func(pb *testing.PB) {
					for pb.Next() {
						if err := appendOne(); err != nil {
							b.Error(err)
							return
						}
					}
				})
			}
			n := float64(b.N)
			b.ReportMetric(float64(testdb.ProcessCPU(b, os.Getpid())-clientBefore)/n/1e3, "client-us/op")
			b.ReportMetric(float64(testdb.ServerCPU(b)-serverBefore)/n/1e3, "server-us/op")
		})
	}
}
