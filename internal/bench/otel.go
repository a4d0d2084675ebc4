package bench

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"

	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	"github.com/meowmx/meowmx/meowmxotel"
)

// OtelScenarios are the scenarios --otel measures.
var OtelScenarios = []string{"append-1", "catch-up"}

// otelTarget is the ratio of the instrumented store to the plain one that
// --otel asks for: at most 5% slower.
const otelTarget = 0.95

// instrumented is a store observed by meowmxotel with in-memory exporters:
// spans through the SDK's synchronous processor, as tests use an in-memory
// exporter, to an exporter that reads and counts them; metrics aggregated
// as a deployment's, read by a manual reader at the end. (The SDK's
// batching processor wakes its goroutine at each span's end: its cost is
// measured by meowmxotel's BenchmarkAppend, see BENCHMARKS.md.)
type instrumented struct {
	side   *side
	spans  *countingExporter
	tp     *sdktrace.TracerProvider
	reader *sdkmetric.ManualReader
	mp     *sdkmetric.MeterProvider
}

// instrumented returns a store observed by meowmxotel, whose spans of
// appends and reads need a caller's span when requireParent is set.
func (r *runner) instrumented(requireParent bool) (*instrumented, error) {
	in := &instrumented{spans: &countingExporter{}, reader: sdkmetric.NewManualReader()}
	in.tp = sdktrace.NewTracerProvider(sdktrace.WithSyncer(in.spans))
	in.mp = sdkmetric.NewMeterProvider(sdkmetric.WithReader(in.reader))
	cfg := &meowmxotel.Config{TracerProvider: in.tp, MeterProvider: in.mp, RequireParentSpan: requireParent}
	obs, err := meowmxotel.New(cfg)
	if err != nil {
		return nil, err
	}
	if in.side, err = r.db.observed(obs); err != nil {
		return nil, err
	}
	return in, nil
}

// close flushes and counts what the instrumentation made, so that a run
// that made nothing cannot pass for a cheap one.
func (in *instrumented) close(ctx context.Context) (spans, points int, err error) {
	if err := in.tp.ForceFlush(ctx); err != nil {
		return 0, 0, err
	}
	spans = int(in.spans.spans.Load())
	var rm metricdata.ResourceMetrics
	if err := in.reader.Collect(ctx, &rm); err != nil {
		return 0, 0, err
	}
	for _, sm := range rm.ScopeMetrics {
		points += len(sm.Metrics)
	}
	return spans, points, errors.Join(in.side.close(), in.tp.Shutdown(ctx), in.mp.Shutdown(ctx))
}

// otelCost runs a scenario with instrumentation on (meowmx's column)
// against the same store without it (the baseline's column).
func (r *runner) otelCost(ctx context.Context, name string) error {
	in, err := r.instrumented(false)
	if err != nil {
		return err
	}
	var runErr error
	switch name {
	case "append-1":
		runErr = r.otelAppend(ctx, in.side, "otel on/off", "otel")
		if runErr == nil {
			runErr = r.otelAppendParented(ctx)
		}
	case "catch-up":
		runErr = r.otelCatchUp(ctx, in)
	default:
		runErr = fmt.Errorf("--otel measures %v, not %s", OtelScenarios, name)
	}
	spans, instruments, err := in.close(ctx)
	if runErr != nil {
		return runErr
	}
	if err != nil {
		return err
	}
	if spans == 0 || instruments == 0 {
		return fmt.Errorf("the instrumented store made %d spans and %d metrics", spans, instruments)
	}
	fmt.Fprintf(r.o.Progress, "  %s with otel: %s spans exported, %d metrics\n", name, group(int64(spans)), instruments)
	return nil
}

// parentedSetting ends the setting of append-1's results measured with
// RequireParentSpan.
const parentedSetting = "otel on/off, spans need a parent"

// otelAppendParented measures append-1 with meowmxotel's RequireParentSpan
// set: the benchmark's appends are made without a caller's span, so they
// make no span and only their metrics are recorded.
func (r *runner) otelAppendParented(ctx context.Context) error {
	in, err := r.instrumented(true)
	if err != nil {
		return err
	}
	runErr := r.otelAppend(ctx, in.side, parentedSetting, "otel-parented")
	spans, instruments, err := in.close(ctx)
	if runErr != nil {
		return runErr
	}
	if err != nil {
		return err
	}
	if spans != 0 || instruments == 0 {
		return fmt.Errorf("the store instrumented with RequireParentSpan made %d spans and %d metrics, want none and some", spans, instruments)
	}
	return nil
}

// otelAppend measures append-1 on the instrumented store on against the
// plain one, with streams named after prefix.
func (r *runner) otelAppend(ctx context.Context, on *side, setting, prefix string) error {
	for _, writers := range r.o.Writers {
		onOps := storeAppendOps(on, fmt.Sprintf("%s-on-w%d", prefix, writers), writers, 1)
		offOps := storeAppendOps(r.store, fmt.Sprintf("%s-off-w%d", prefix, writers), writers, 1)
		m, b, err := compareRounds(ctx, r.o.Duration, 10, onOps, offOps)
		if err != nil {
			return err
		}
		mp50, _, mp99 := latencyPercentiles(m.latencies)
		bp50, _, bp99 := latencyPercentiles(b.latencies)
		ratio := m.perSecond() / b.perSecond()
		r.add(Result{
			Scenario: "append-1", Setting: plural(writers, "writer") + ", " + setting, Writers: writers,
			Metric: "events/s", Meowmx: m.perSecond(), Baseline: ptr(b.perSecond()),
			Target: fmt.Sprintf("ratio ≥ %.2g", otelTarget), Met: ptr(ratio >= otelTarget),
			Extra: map[string]float64{
				"meowmx_p50_ms": mp50, "meowmx_p99_ms": mp99,
				"baseline_p50_ms": bp50, "baseline_p99_ms": bp99,
			},
		})
	}
	return nil
}

// otelCatchUp loads the events through the instrumented store under a
// span, so that they carry the trace context an instrumented application
// stores and the instrumented handler links each batch's span to their
// appends' spans; then subscriptions of both stores consume them, in
// alternating rounds.
func (r *runner) otelCatchUp(ctx context.Context, in *instrumented) error {
	total := r.o.CatchUpEvents
	on, off := in.side, r.store
	r.store = on
	loadCtx, span := in.tp.Tracer("bench").Start(ctx, "load")
	err := r.load(loadCtx, "catch-up", total)
	span.End()
	r.store = off
	if err != nil {
		return err
	}
	if err := r.db.raw.analyze(ctx); err != nil {
		return err
	}
	const page = 1000
	var best, bestOff float64
	for round := range 2 {
		elapsed, err := consume(ctx, off, fmt.Sprint("otel_off_", round), total, page)
		if err != nil {
			return err
		}
		bestOff = max(bestOff, float64(total)/elapsed.Seconds())
		if elapsed, err = consume(ctx, on, fmt.Sprint("otel_on_", round), total, page); err != nil {
			return err
		}
		best = max(best, float64(total)/elapsed.Seconds())
	}
	ratio := best / bestOff
	r.add(Result{
		Scenario: "catch-up", Setting: fmt.Sprintf("%s events, otel on/off", group(int64(total))),
		Metric: "events/s", Meowmx: best, Baseline: ptr(bestOff),
		Target: fmt.Sprintf("ratio ≥ %.2g", otelTarget), Met: ptr(ratio >= otelTarget),
	})
	return nil
}

// countingExporter is an in-memory span exporter that reads each span's
// name, attributes and links, counts it and keeps nothing, as an exporter
// that sends spans away would: the SDK's InMemoryExporter keeps every
// span, and a run's figure would then measure the growth of its heap.
type countingExporter struct {
	spans atomic.Int64
	attrs atomic.Int64
}

func (e *countingExporter) ExportSpans(_ context.Context, spans []sdktrace.ReadOnlySpan) error {
	attrs := 0
	for _, s := range spans {
		attrs += len(s.Name()) + len(s.Attributes()) + len(s.Links())
	}
	e.spans.Add(int64(len(spans)))
	e.attrs.Add(int64(attrs))
	return nil
}

func (e *countingExporter) Shutdown(context.Context) error { return nil }
