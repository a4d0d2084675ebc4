package meowmxpgxv5_test

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/meowmx/meowmx"
	"github.com/meowmx/meowmx/internal/testdb"
	"github.com/meowmx/meowmx/meowmxpgxv5"
)

// benchEvents is the size of the catch-up benchmark's store:
// MEOWMX_BENCH_EVENTS, by default 1,000,000.
func benchEvents() int {
	if n, err := strconv.Atoi(os.Getenv("MEOWMX_BENCH_EVENTS")); err == nil && n > 0 {
		return n
	}
	return 1_000_000
}

// BenchmarkCatchUp: a subscription with a no-op handler consumes every
// stored event (batches of 1,000); the baseline scans the same rows with a
// plain ordered SELECT in pages of 1,000. Reported as events/s of each and
// their ratio.
func BenchmarkCatchUp(b *testing.B) {
	ctx := context.Background()
	pool := testdb.Pool(b)
	quiet := slog.New(slog.DiscardHandler)
	store := newStore(b, pool)
	schema := store.Schema()
	total := benchEvents()
	batch := make([]meowmx.Event, 1000)
	for i := range batch {
		batch[i] = meowmx.Event{Type: "Measured", Data: []byte(`{"sensor":"s-1","value":21.5,"unit":"C"}`)}
	}
	loadStart := time.Now()
	for i := 0; i < total; i += len(batch) {
		n := min(len(batch), total-i)
		if _, err := store.Append(ctx, meowmx.NewStream("sensor", fmt.Sprint(i/len(batch)%500)), meowmx.Any, batch[:n]...); err != nil {
			b.Fatal(err)
		}
		if (i/len(batch))%100 == 0 {
			b.Logf("loaded %d of %d events (%s)", i+n, total, time.Since(loadStart).Round(time.Second))
		}
	}
	if _, err := pool.Exec(ctx, `VACUUM ANALYZE `+pgx.Identifier{schema, "events"}.Sanitize()); err != nil {
		b.Fatal(err)
	}

	var subRates, baseRates []float64
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		// Baseline: a keyset scan of the same table, pages of 1,000.
		start := time.Now()
		scanned := 0
		var lastTx uint64
		var lastSeq int64
		query := `SELECT transaction_id, seq, category, stream_id, version, event_id, type, data, metadata, recorded_at FROM ` +
			pgx.Identifier{schema, "events"}.Sanitize() + ` WHERE (transaction_id, seq) > ($1, $2) ORDER BY transaction_id, seq LIMIT 1000`
		for {
			rows, err := pool.Query(ctx, query, lastTx, lastSeq)
			if err != nil {
				b.Fatal(err)
			}
			n := 0
			for rows.Next() {
				var (
					cat, sid, typ string
					version       int64
					id            [16]byte
					d, m          []byte
					at            time.Time
				)
				if err := rows.Scan(&lastTx, &lastSeq, &cat, &sid, &version, &id, &typ, &d, &m, &at); err != nil {
					b.Fatal(err)
				}
				n++
			}
			if rows.Err() != nil {
				b.Fatal(rows.Err())
			}
			scanned += n
			if n == 0 {
				break
			}
		}
		baseRates = append(baseRates, float64(scanned)/time.Since(start).Seconds())

		// meowmx: a new subscription from the start, no-op handler.
		var (
			mu   sync.Mutex
			seen int
			done = make(chan struct{})
		)
		sub, err := store.Subscribe(meowmx.SubscriptionConfig[pgx.Tx]{
			Name: fmt.Sprintf("catch_up_%d", i), BatchSize: 1000, Logger: quiet,
			Handler: func(ctx context.Context, tx pgx.Tx, events []meowmx.RecordedEvent) error {
				mu.Lock()
				seen += len(events)
				if seen == total {
					close(done)
				}
				mu.Unlock()
				return nil
			},
		})
		if err != nil {
			b.Fatal(err)
		}
		start = time.Now()
		if err := sub.Start(ctx); err != nil {
			b.Fatal(err)
		}
		<-done
		subRates = append(subRates, float64(total)/time.Since(start).Seconds())
		if err := sub.Stop(ctx); err != nil {
			b.Fatal(err)
		}
		if scanned != total {
			b.Fatalf("baseline scanned %d events, want %d", scanned, total)
		}
	}
	b.StopTimer()
	sub, base := median(subRates), median(baseRates)
	b.ReportMetric(sub, "events/s")
	b.ReportMetric(base, "baseline-events/s")
	b.ReportMetric(sub/base, "ratio")
}

// BenchmarkDeliveryLatency: after a second of warm-up, events appended at a steady 1,000 per second
// (one per append, through another store, as another process would), each
// timed from before its append to its handler; p50, p95 and p99 in ms.
func BenchmarkDeliveryLatency(b *testing.B) {
	b.Run("async-commit", func(b *testing.B) { benchmarkDeliveryLatency(b, false) })
	b.Run("sync-commit", func(b *testing.B) { benchmarkDeliveryLatency(b, true) })
}

func benchmarkDeliveryLatency(b *testing.B, synchronous bool) {
	ctx := context.Background()
	pool := testdb.Pool(b)
	quiet := slog.New(slog.DiscardHandler)
	store := newStore(b, pool)
	schema := store.Schema()
	writer, err := meowmx.New(meowmxpgxv5.New(pool), &meowmx.Config{Schema: schema, Logger: quiet})
	if err != nil {
		b.Fatal(err)
	}
	const perSecond, seconds = 1000, 5
	var (
		mu        sync.Mutex
		sent      = map[uuid.UUID]time.Time{}
		latencies []time.Duration
		appends   []time.Duration // baseline: append call to its return
		done      = make(chan struct{})
	)
	sub, err := store.Subscribe(meowmx.SubscriptionConfig[pgx.Tx]{
		Name: "latency", Logger: quiet, SynchronousCommit: synchronous,
		Handler: func(ctx context.Context, tx pgx.Tx, events []meowmx.RecordedEvent) error {
			now := time.Now()
			mu.Lock()
			defer mu.Unlock()
			for _, e := range events {
				if at, measured := sent[e.ID]; measured {
					latencies = append(latencies, now.Sub(at))
				}
			}
			if len(latencies) == perSecond*seconds {
				close(done)
			}
			return nil
		},
	})
	if err != nil {
		b.Fatal(err)
	}
	if err := sub.Start(ctx); err != nil {
		b.Fatal(err)
	}
	defer sub.Stop(ctx)
	// One second of warm-up at the same rate (connections, prepared
	// statements, a new table's first pages), then one timed run of
	// perSecond*seconds events, whatever b.N.
	warmUp := perSecond
	ticker := time.NewTicker(time.Second / perSecond)
	var wg sync.WaitGroup
	for i := range warmUp + perSecond*seconds {
		<-ticker.C
		if i == warmUp {
			b.ResetTimer()
		}
		payload := fmt.Sprintf(`{"n":%d}`, i)
		id := uuid.New()
		if i >= warmUp {
			mu.Lock()
			sent[id] = time.Now()
			mu.Unlock()
		}
		wg.Go(func() {
			began := time.Now()
			if _, err := writer.Append(ctx, meowmx.NewStream("tick", fmt.Sprint(i%50)), meowmx.Any, meowmx.Event{ID: id, Type: "Tick", Data: []byte(payload)}); err != nil {
				b.Error(err)
			}
			took := time.Since(began)
			if i >= warmUp {
				mu.Lock()
				appends = append(appends, took)
				mu.Unlock()
			}
		})
	}
	ticker.Stop()
	wg.Wait()
	<-done
	b.StopTimer()
	slices.Sort(latencies)
	slices.Sort(appends)
	pct := func(d []time.Duration, p float64) float64 {
		return float64(d[int(p*float64(len(d)-1))].Microseconds()) / 1000
	}
	b.ReportMetric(pct(latencies, 0.50), "p50-ms")
	b.ReportMetric(pct(latencies, 0.95), "p95-ms")
	b.ReportMetric(pct(latencies, 0.99), "p99-ms")
	b.ReportMetric(pct(appends, 0.99), "append-p99-ms")
}

func median(values []float64) float64 {
	if len(values) == 0 {
		return 0
	}
	sorted := slices.Clone(values)
	slices.Sort(sorted)
	return sorted[len(sorted)/2]
}
