package meowmxotel_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"

	"github.com/meowmx/meowmx"
	"github.com/meowmx/meowmx/internal/testdb"
	"github.com/meowmx/meowmx/meowmxotel"
	"github.com/meowmx/meowmx/meowmxpgxv5"
)

// discardExporter drops the spans it is given.
type discardExporter struct{}

func (discardExporter) ExportSpans(context.Context, []sdktrace.ReadOnlySpan) error { return nil }
func (discardExporter) Shutdown(context.Context) error                             { return nil }

// BenchmarkAppend: single-event appends on PostgreSQL by 1 and 8 writers
// (goroutines of one store, grouped), with synchronous_commit off so that
// the disk's flushes do not hide the rest: without an observer (off), and
// with meowmxotel (metrics aggregated) whose spans go to an exporter that
// drops them through the SDK's synchronous processor (sync) or its
// batching processor (batch), which wakes its exporting goroutine at every
// span's end; and through the synchronous processor with every append made
// under a caller's span, so that its events store the trace context
// (context). It reports the CPU time of this process and of the PostgreSQL
// server per append, steadier than the wall time. Run with -cpuprofile to
// see where the observer's time goes.
func BenchmarkAppend(b *testing.B) {
	for _, bc := range []struct {
		variant string
		writers int
	}{{"off", 1}, {"sync", 1}, {"batch", 1}, {"context", 1}, {"off", 8}, {"sync", 8}, {"batch", 8}, {"context", 8}} {
		variant, writers := bc.variant, bc.writers
		b.Run(fmt.Sprintf("%s/writers=%d", variant, writers), func(b *testing.B) {
			cfg := &meowmx.Config{Schema: testdb.SchemaName(b), Logger: slog.New(slog.DiscardHandler)}
			var tp *sdktrace.TracerProvider
			if variant != "off" {
				tp = sdktrace.NewTracerProvider(sdktrace.WithSyncer(discardExporter{}))
				if variant == "batch" {
					tp = sdktrace.NewTracerProvider(sdktrace.WithBatcher(discardExporter{}))
				}
				mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(sdkmetric.NewManualReader()))
				b.Cleanup(func() {
					_ = tp.Shutdown(context.Background())
					_ = mp.Shutdown(context.Background())
				})
				obs, err := meowmxotel.New(&meowmxotel.Config{TracerProvider: tp, MeterProvider: mp})
				if err != nil {
					b.Fatal(err)
				}
				cfg.Observer = obs
			}
			testdb.Pool(b) // reachable, or skip / fail
			pcfg, err := pgxpool.ParseConfig(testdb.URL())
			if err != nil {
				b.Fatal(err)
			}
			// Without waiting for the disk, the figure is the CPU's.
			pcfg.ConnConfig.RuntimeParams["synchronous_commit"] = "off"
			pool, err := pgxpool.NewWithConfig(context.Background(), pcfg)
			if err != nil {
				b.Fatal(err)
			}
			defer pool.Close()
			store, err := meowmx.New(meowmxpgxv5.New(pool), cfg)
			if err != nil {
				b.Fatal(err)
			}
			defer store.Close()
			ctx := context.Background()
			if err := store.Migrate(ctx); err != nil {
				b.Fatal(err)
			}
			if variant == "context" {
				// One long request, so that its own span costs nothing per
				// append.
				var request trace.Span
				ctx, request = tp.Tracer("bench").Start(ctx, "request")
				defer request.End()
			}
			ev := meowmx.Event{Type: "OrderPlaced", Data: json.RawMessage(`{"order_id":"o-1042","amount_cents":4999}`)}
			b.ReportAllocs()
			b.ResetTimer()
			clientBefore, serverBefore := testdb.ProcessCPU(b, os.Getpid()), testdb.ServerCPU(b)
			var next atomic.Int64
			var wg sync.WaitGroup
			for range writers {
				wg.Go(func() {
					for i := next.Add(1); i <= int64(b.N); i = next.Add(1) {
						if _, err := store.Append(ctx, meowmx.NewStream("bench", fmt.Sprint(i)), meowmx.NoStream, ev); err != nil {
							b.Error(err)
							return
						}
					}
				})
			}
			wg.Wait()
			n := float64(b.N)
			b.ReportMetric(float64(testdb.ProcessCPU(b, os.Getpid())-clientBefore)/n/1e3, "client-us/op")
			b.ReportMetric(float64(testdb.ServerCPU(b)-serverBefore)/n/1e3, "server-us/op")
		})
	}
}

// BenchmarkObserver: the observer's own work for one append, without a
// database: a span through the synchronous processor to an exporter that
// drops it, and the append's metrics.
func BenchmarkObserver(b *testing.B) {
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(discardExporter{}))
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(sdkmetric.NewManualReader()))
	b.Cleanup(func() {
		_ = tp.Shutdown(context.Background())
		_ = mp.Shutdown(context.Background())
	})
	obs, err := meowmxotel.New(&meowmxotel.Config{TracerProvider: tp, MeterProvider: mp})
	if err != nil {
		b.Fatal(err)
	}
	start := meowmx.AppendStartData{Stream: meowmx.NewStream("bench", "1"), Expected: meowmx.NoStream, Events: 1}
	recorded := []meowmx.RecordedEvent{{Position: meowmx.Position{TransactionID: 1234567, Seq: 1}}}
	b.ReportAllocs()
	for b.Loop() {
		ctx := obs.AppendStart(context.Background(), &start)
		_ = obs.MetadataEntries(ctx, nil)
		obs.AppendGroupDone(ctx, &meowmx.AppendGroupData{Appends: 1, Events: 1})
		obs.AppendEnd(ctx, &meowmx.AppendEndData{AppendStartData: start, Outcome: meowmx.AppendRecorded, Recorded: recorded, Duration: time.Millisecond})
	}
}
