package meowmxotel_test

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os/exec"
	"strings"
	"testing"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/meowmx/meowmx"
	"github.com/meowmx/meowmx/internal/testdb"
	"github.com/meowmx/meowmx/meowmxotel"
	"github.com/meowmx/meowmx/meowmxpgxv5"
	"github.com/meowmx/meowmx/meowmxsqlite"
)

func TestMain(m *testing.M) { testdb.Main(m) }

// telemetry is an Observer with in-memory exporters.
type telemetry struct {
	obs    *meowmxotel.Observer
	spans  *tracetest.InMemoryExporter
	reader *sdkmetric.ManualReader
	tp     *sdktrace.TracerProvider
}

func newTelemetry(t *testing.T, cfg meowmxotel.Config, opts ...sdktrace.TracerProviderOption) *telemetry {
	t.Helper()
	spans := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(append([]sdktrace.TracerProviderOption{sdktrace.WithSyncer(spans)}, opts...)...)
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	t.Cleanup(func() {
		_ = tp.Shutdown(context.Background())
		_ = mp.Shutdown(context.Background())
	})
	cfg.TracerProvider, cfg.MeterProvider = tp, mp
	obs, err := meowmxotel.New(&cfg)
	if err != nil {
		t.Fatal(err)
	}
	return &telemetry{obs: obs, spans: spans, reader: reader, tp: tp}
}

func (tm *telemetry) collect(t *testing.T) metricdata.ResourceMetrics {
	t.Helper()
	var rm metricdata.ResourceMetrics
	if err := tm.reader.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	return rm
}

// spansNamed returns the ended spans called name, in the order they ended.
func (tm *telemetry) spansNamed(name string) tracetest.SpanStubs {
	var out tracetest.SpanStubs
	for _, s := range tm.spans.GetSpans() {
		if s.Name == name {
			out = append(out, s)
		}
	}
	return out
}

func attr(s tracetest.SpanStub, key string) attribute.Value {
	for _, kv := range s.Attributes {
		if string(kv.Key) == key {
			return kv.Value
		}
	}
	return attribute.Value{}
}

// metricValue sums the data points of the metric name whose attributes
// include want (a sum's values, a gauge's values, or a histogram's
// counts), and says whether it found one.
func metricValue(rm metricdata.ResourceMetrics, name string, want ...attribute.KeyValue) (float64, bool) {
	var total float64
	found := false
	match := func(set attribute.Set) bool {
		for _, kv := range want {
			if v, ok := set.Value(kv.Key); !ok || v.Emit() != kv.Value.Emit() {
				return false
			}
		}
		return true
	}
	add := func(v float64, ok bool) {
		if ok {
			total, found = total+v, true
		}
	}
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			if m.Name != name {
				continue
			}
			switch d := m.Data.(type) {
			case metricdata.Sum[int64]:
				add(sumPoints(d.DataPoints, match))
			case metricdata.Gauge[int64]:
				add(sumPoints(d.DataPoints, match))
			case metricdata.Gauge[float64]:
				add(sumPoints(d.DataPoints, match))
			case metricdata.Histogram[float64]:
				add(countPoints(d.DataPoints, match))
			case metricdata.Histogram[int64]:
				add(countPoints(d.DataPoints, match))
			}
		}
	}
	return total, found
}

// sumPoints sums the values of the points match keeps.
func sumPoints[N int64 | float64](points []metricdata.DataPoint[N], match func(attribute.Set) bool) (float64, bool) {
	total, found := 0.0, false
	for _, p := range points {
		if match(p.Attributes) {
			total, found = total+float64(p.Value), true
		}
	}
	return total, found
}

// countPoints sums the counts of the histogram points match keeps.
func countPoints[N int64 | float64](points []metricdata.HistogramDataPoint[N], match func(attribute.Set) bool) (float64, bool) {
	total, found := 0.0, false
	for _, p := range points {
		if match(p.Attributes) {
			total, found = total+float64(p.Count), true
		}
	}
	return total, found
}

// observedSQLite is a migrated store on a new SQLite file, observed by obs,
// closed when the test ends.
func observedSQLite(t *testing.T, obs meowmx.Observer) *meowmx.Store[*sql.Tx] {
	t.Helper()
	store, err := meowmx.New(meowmxsqlite.New(testdb.SQLite(t)), &meowmx.Config{Observer: obs, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = store.Close() })
	if err := store.Migrate(t.Context()); err != nil {
		t.Fatal(err)
	}
	return store
}

func TestSQLite(t *testing.T) {
	t.Parallel()
	exercise(t, func(t *testing.T, cfg *meowmx.Config) *meowmx.Store[*sql.Tx] {
		store, err := meowmx.New(meowmxsqlite.New(testdb.SQLite(t)), cfg)
		if err != nil {
			t.Fatal(err)
		}
		return store
	})
}

func TestPostgres(t *testing.T) {
	t.Parallel()
	exercise(t, func(t *testing.T, cfg *meowmx.Config) *meowmx.Store[pgx.Tx] {
		cfg.Schema = testdb.SchemaName(t)
		store, err := meowmx.New(meowmxpgxv5.New(testdb.Pool(t)), cfg)
		if err != nil {
			t.Fatal(err)
		}
		return store
	})
}

// exercise runs a known workload on a store observed with in-memory
// exporters and checks the spans and the metrics it made.
func exercise[TTx any](t *testing.T, open func(t *testing.T, cfg *meowmx.Config) *meowmx.Store[TTx]) {
	tm := newTelemetry(t, meowmxotel.Config{})
	store := open(t, &meowmx.Config{Observer: tm.obs, Logger: slog.New(slog.DiscardHandler)})
	t.Cleanup(func() { _ = store.Close() })
	ctx := t.Context()
	if err := store.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	reg, err := tm.obs.ObserveStore(store)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = reg.Unregister() })

	// The workload, under a request's span: one append recorded, its
	// idempotent retry, a conflict, bad input, a poison event, a read.
	reqCtx, request := tm.tp.Tracer("test").Start(ctx, "request")
	order := meowmx.NewStream("order", "1")
	events := []meowmx.Event{
		{ID: uuid.New(), Type: "Placed", Data: json.RawMessage(`{"n":1}`), Metadata: json.RawMessage(`{"user":"u1"}`)},
		{ID: uuid.New(), Type: "Paid", Data: json.RawMessage(`{"n":2}`)},
	}
	recorded, err := store.Append(reqCtx, order, meowmx.NoStream, events...)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := store.Append(reqCtx, order, meowmx.NoStream, events...); err != nil {
		t.Fatalf("idempotent retry: %v", err)
	}
	if _, err := store.Append(reqCtx, order, meowmx.NoStream, meowmx.Event{Type: "Placed", Data: json.RawMessage(`{}`)}); !errors.Is(err, meowmx.ErrVersionConflict) {
		t.Fatalf("conflict: got %v", err)
	}
	if _, err := store.Append(reqCtx, order, meowmx.Any, meowmx.Event{Type: "", Data: json.RawMessage(`{}`)}); !errors.Is(err, meowmx.ErrInvalidInput) {
		t.Fatalf("bad input: got %v", err)
	}
	poison, err := store.Append(reqCtx, meowmx.NewStream("order", "2"), meowmx.NoStream, meowmx.Event{Type: "Poison", Data: json.RawMessage(`{}`)})
	if err != nil {
		t.Fatal(err)
	}
	read, err := store.ReadStream(reqCtx, order, nil)
	if err != nil || len(read) != 2 {
		t.Fatalf("read: %d events, %v", len(read), err)
	}
	request.End()

	// The append's span is the request's child, and its trace context is
	// in the events' metadata, beside the metadata the event had.
	appends := tm.spansNamed("append order")
	if len(appends) != 5 {
		t.Fatalf("%d append spans, want 5", len(appends))
	}
	first := appends[0]
	if first.Parent.SpanID() != request.SpanContext().SpanID() || first.SpanContext.TraceID() != request.SpanContext().TraceID() {
		t.Fatalf("the append's parent is %v, want the request %v", first.Parent, request.SpanContext())
	}
	for i, want := range []string{"recorded", "retried", "conflict", "invalid", "recorded"} {
		if got := attr(appends[i], "meowmx.outcome").AsString(); got != want {
			t.Errorf("append %d: outcome %q, want %q", i, got, want)
		}
	}
	if got := attr(first, "meowmx.position").AsString(); got != recorded[0].Position.String() {
		t.Errorf("append span position %q, want %q", got, recorded[0].Position)
	}
	if got := attr(first, "meowmx.stream.id").AsString(); got != "1" || attr(first, "meowmx.category").AsString() != "order" {
		t.Errorf("append span stream %q in %q", got, attr(first, "meowmx.category").AsString())
	}
	if got := attr(first, "meowmx.expected_version").AsInt64(); got != int64(meowmx.NoStream) {
		t.Errorf("append span expected version %d", got)
	}
	if got := attr(first, "meowmx.events").AsInt64(); got != 2 {
		t.Errorf("append span events %d", got)
	}
	if appends[2].Status.Code != codes.Error || attr(appends[2], "error.type").AsString() != "conflict" {
		t.Errorf("the conflict's span: status %v, error.type %q", appends[2].Status, attr(appends[2], "error.type").AsString())
	}
	wantParent := fmt.Sprintf("00-%s-%s-01", first.SpanContext.TraceID(), first.SpanContext.SpanID())
	for i, ev := range read {
		var meta map[string]string
		if err := json.Unmarshal(ev.Metadata, &meta); err != nil {
			t.Fatalf("event %d metadata %s: %v", i, ev.Metadata, err)
		}
		if meta["traceparent"] != wantParent {
			t.Errorf("event %d traceparent %q, want %q", i, meta["traceparent"], wantParent)
		}
		if i == 0 && meta["user"] != "u1" {
			t.Errorf("event 0 lost its own metadata: %s", ev.Metadata)
		}
		if string(recorded[i].Metadata) == "" {
			t.Errorf("the recorded event %d returned by Append has no metadata", i)
		}
	}
	if reads := tm.spansNamed("read stream"); len(reads) != 1 || attr(reads[0], "meowmx.events").AsInt64() != 2 {
		t.Errorf("read spans: %+v", reads)
	}

	// A subscription: its handler's span is linked to the appends' spans,
	// and the handler's own spans are its children. The poison event is
	// parked.
	sub, err := store.Subscribe(meowmx.SubscriptionConfig[TTx]{
		Name: "audit", Categories: []string{"order"}, MaxAttempts: 1,
		Handler: func(ctx context.Context, tx TTx, events []meowmx.RecordedEvent) error {
			_, span := tm.tp.Tracer("test").Start(ctx, "project")
			span.End()
			for _, ev := range events {
				if ev.Type == "Poison" {
					return errors.New("poisoned")
				}
			}
			return nil
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := sub.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if err := store.WaitCaughtUp(ctx, "audit"); err != nil {
		t.Fatal(err)
	}
	if err := sub.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	// However the events were batched (the visibility horizon, which other
	// tests' transactions hold, can split them), the order's two events
	// are handled in spans linked to their append's span only, each the
	// parent of the handler's own span; the poison event's batches are
	// linked to its append.
	processes := tm.spansNamed("process audit")
	handledEvents := int64(0)
	linked := map[trace.SpanID]bool{}
	for _, s := range processes {
		for _, l := range s.Links {
			linked[l.SpanContext.SpanID()] = true
		}
		if attr(s, "meowmx.outcome").AsString() != "handled" {
			continue
		}
		handledEvents += attr(s, "messaging.batch.message_count").AsInt64()
		if len(s.Links) != 1 || s.Links[0].SpanContext.SpanID() != first.SpanContext.SpanID() {
			t.Errorf("a handled batch's links %+v, want one to the append span %s", s.Links, first.SpanContext.SpanID())
		}
		if s.Parent.IsValid() {
			t.Errorf("a batch's span has a parent %v; want a root linked to the append", s.Parent)
		}
		if attr(s, "meowmx.attempt").AsInt64() < 1 {
			t.Errorf("a batch at attempt %d", attr(s, "meowmx.attempt").AsInt64())
		}
		children := 0
		for _, p := range tm.spansNamed("project") {
			if p.Parent.SpanID() == s.SpanContext.SpanID() {
				children++
			}
		}
		if children != 1 {
			t.Errorf("the handler's span is not a child of its batch's span")
		}
	}
	if handledEvents != 2 {
		t.Errorf("handled batches hold %d events, want the order's 2", handledEvents)
	}
	if !linked[appends[4].SpanContext.SpanID()] {
		t.Errorf("no batch is linked to the poison event's append")
	}
	failed := 0
	for _, s := range processes {
		if attr(s, "meowmx.outcome").AsString() == "failed" {
			failed++
			if s.Status.Code != codes.Error {
				t.Errorf("a failed batch's span has status %v", s.Status)
			}
		}
	}
	if failed == 0 {
		t.Errorf("no failed batch among the process spans")
	}
	if len(poison) != 1 {
		t.Fatal(poison)
	}

	// The metrics of the workload.
	rm := tm.collect(t)
	cat := attribute.String("meowmx.category", "order")
	for _, c := range []struct {
		outcome string
		appends float64
		events  float64
	}{{"recorded", 2, 3}, {"retried", 1, 2}, {"conflict", 1, 1}, {"invalid", 1, 1}} {
		out := attribute.String("meowmx.outcome", c.outcome)
		if got, _ := metricValue(rm, "meowmx.events.appended", cat, out); got != c.events {
			t.Errorf("meowmx.events.appended{%s} = %v, want %v", c.outcome, got, c.events)
		}
		if got, _ := metricValue(rm, "meowmx.append.duration", cat, out); got != c.appends {
			t.Errorf("meowmx.append.duration{%s} count = %v, want %v", c.outcome, got, c.appends)
		}
	}
	if got, _ := metricValue(rm, "meowmx.events.read", attribute.String("meowmx.read.kind", "stream")); got != 2 {
		t.Errorf("meowmx.events.read{stream} = %v, want 2", got)
	}
	audit := attribute.String("meowmx.subscription", "audit")
	if got, _ := metricValue(rm, "meowmx.subscription.events.handled", audit); got != 2 {
		t.Errorf("meowmx.subscription.events.handled = %v, want 2 (the poison event is parked, not handled)", got)
	}
	if got, _ := metricValue(rm, "meowmx.subscription.batch.duration", audit, attribute.String("meowmx.outcome", "failed")); got < 1 {
		t.Errorf("meowmx.subscription.batch.duration{failed} count = %v, want at least 1", got)
	}
	if got, _ := metricValue(rm, "meowmx.subscription.events.parked", audit); got != 1 {
		t.Errorf("meowmx.subscription.events.parked = %v, want 1", got)
	}
	part := attribute.Int("meowmx.partition", 0)
	if got, ok := metricValue(rm, "meowmx.subscription.parked", audit, part); !ok || got != 1 {
		t.Errorf("meowmx.subscription.parked = %v (%v), want 1", got, ok)
	}
	if got, ok := metricValue(rm, "meowmx.subscription.lag", audit, part); !ok || got != 0 {
		t.Errorf("meowmx.subscription.lag = %v (%v), want 0 once caught up", got, ok)
	}
	if got, ok := metricValue(rm, "meowmx.subscription.time_behind", audit, part); !ok || got != 0 {
		t.Errorf("meowmx.subscription.time_behind = %v (%v), want 0 once caught up", got, ok)
	}
	if _, ok := metricValue(rm, "meowmx.horizon.age"); !ok {
		t.Errorf("no meowmx.horizon.age")
	}
	// Three appends reached the database outside a transaction (the
	// retried one too); the invalid one did not.
	if got, _ := metricValue(rm, "meowmx.append.group.size"); got < 1 {
		t.Errorf("meowmx.append.group.size has %v data points", got)
	}

	// With the worker stopped, three more events: the lag counts them, up
	// to the limit.
	for i := range 3 {
		if _, err := store.Append(ctx, order, meowmx.Any, meowmx.Event{Type: "Shipped", Data: json.RawMessage(fmt.Sprintf(`{"n":%d}`, i))}); err != nil {
			t.Fatal(err)
		}
	}
	rm = tm.collect(t)
	if got, _ := metricValue(rm, "meowmx.subscription.lag", audit, part); got != 3 {
		t.Errorf("meowmx.subscription.lag = %v, want 3", got)
	}
	if got, ok := metricValue(rm, "meowmx.subscription.time_behind", audit, part); !ok || got < 0 {
		t.Errorf("meowmx.subscription.time_behind = %v (%v)", got, ok)
	}
	lags, err := store.SubscriptionLags(ctx, 2)
	if err != nil || len(lags) != 1 || lags[0].Events != 2 || !lags[0].Capped {
		t.Errorf("SubscriptionLags(2) = %+v, %v; want 2 events, capped", lags, err)
	}
}

// TestTraceContextStored: the trace context goes into the metadata of
// events appended under a span of the caller's, unless disabled; an append
// made without one stores none.
func TestTraceContextStored(t *testing.T) {
	t.Parallel()
	for _, disabled := range []bool{false, true} {
		tm := newTelemetry(t, meowmxotel.Config{DisableTraceContext: disabled})
		store := observedSQLite(t, tm.obs)
		ctx := t.Context()
		reqCtx, request := tm.tp.Tracer("test").Start(ctx, "request")
		for i, c := range []context.Context{ctx, reqCtx} {
			rec, err := store.Append(c, meowmx.NewStream("a", fmt.Sprint(i)), meowmx.Any,
				meowmx.Event{Type: "A", Data: json.RawMessage(`{}`)},
				meowmx.Event{Type: "B", Data: json.RawMessage(`{}`), Metadata: json.RawMessage(`{"k":"v"}`)})
			if err != nil {
				t.Fatal(err)
			}
			read, err := store.ReadStream(ctx, rec[0].Stream, nil)
			if err != nil {
				t.Fatal(err)
			}
			if i == 0 || disabled {
				if read[0].Metadata != nil || string(read[1].Metadata) != `{"k":"v"}` {
					t.Errorf("disabled %v, under a span %v: metadata %s and %s, want none and the event's own", disabled, i == 1, read[0].Metadata, read[1].Metadata)
				}
				continue
			}
			for _, ev := range read {
				var meta map[string]string
				if err := json.Unmarshal(ev.Metadata, &meta); err != nil || !strings.HasPrefix(meta["traceparent"], "00-"+request.SpanContext().TraceID().String()+"-") {
					t.Errorf("under a span: metadata %s (%v), want the request's trace", ev.Metadata, err)
				}
			}
		}
		request.End()
		if n := len(tm.spansNamed("append a")); n != 2 {
			t.Fatalf("%d append spans, want 2", n)
		}
	}
}

// TestRootAppendUnsampled: an append without a caller's span stores no
// trace context, whether its own span is sampled or not.
func TestRootAppendUnsampled(t *testing.T) {
	t.Parallel()
	tm := newTelemetry(t, meowmxotel.Config{}, sdktrace.WithSampler(sdktrace.NeverSample()))
	store := observedSQLite(t, tm.obs)
	ctx := t.Context()
	rec, err := store.Append(ctx, meowmx.NewStream("a", "1"), meowmx.Any, meowmx.Event{Type: "A", Data: json.RawMessage(`{}`)})
	if err != nil {
		t.Fatal(err)
	}
	if rec[0].Metadata != nil {
		t.Fatalf("an unsampled root append stored metadata %s", rec[0].Metadata)
	}
	// Under a caller's span, sampled out too, the context (flags 00) goes
	// with the events, so that the consumer makes the same decision.
	reqCtx, request := tm.tp.Tracer("test").Start(ctx, "request")
	defer request.End()
	rec, err = store.Append(reqCtx, meowmx.NewStream("a", "2"), meowmx.Any, meowmx.Event{Type: "A", Data: json.RawMessage(`{}`)})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(rec[0].Metadata), `"traceparent":"00-`+request.SpanContext().TraceID().String()) || !strings.Contains(string(rec[0].Metadata), `-00"`) {
		t.Fatalf("under an unsampled caller's span: metadata %s", rec[0].Metadata)
	}
}

// TestCancelledBatchAborted: a handler call cancelled by a stop is an
// aborted batch, not a failure of the handler.
func TestCancelledBatchAborted(t *testing.T) {
	t.Parallel()
	tm := newTelemetry(t, meowmxotel.Config{})
	store := observedSQLite(t, tm.obs)
	ctx := t.Context()
	if _, err := store.Append(ctx, meowmx.NewStream("a", "1"), meowmx.Any, meowmx.Event{Type: "A", Data: json.RawMessage(`{}`)}); err != nil {
		t.Fatal(err)
	}
	started := make(chan struct{}, 1)
	sub, err := store.Subscribe(meowmx.SubscriptionConfig[*sql.Tx]{
		Name: "slow",
		Handler: func(ctx context.Context, _ *sql.Tx, _ []meowmx.RecordedEvent) error {
			select {
			case started <- struct{}{}:
			default:
			}
			<-ctx.Done()
			return ctx.Err()
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := sub.Start(ctx); err != nil {
		t.Fatal(err)
	}
	testdb.Recv(t, started, "the handler to start")
	stopCtx, cancel := context.WithCancel(ctx)
	cancel() // stop at once: the batch in flight is cancelled
	_ = sub.Stop(stopCtx)
	<-sub.Stopped()
	spans := tm.spansNamed("process slow")
	if len(spans) == 0 {
		t.Fatal("no process span")
	}
	for _, s := range spans {
		if got := attr(s, "meowmx.outcome").AsString(); got != "aborted" {
			t.Errorf("a cancelled batch's outcome is %q, want aborted", got)
		}
	}
	rm := tm.collect(t)
	if got, _ := metricValue(rm, "meowmx.subscription.batch.duration", attribute.String("meowmx.outcome", "failed")); got != 0 {
		t.Errorf("%v cancelled batches counted as failed", got)
	}
}

// TestRequireParentSpan: with Config.RequireParentSpan, appends and reads
// make spans only under a span of the caller's, their metrics are recorded
// either way, and handler calls still have spans, linked to the appends
// that made one.
func TestRequireParentSpan(t *testing.T) {
	t.Parallel()
	tm := newTelemetry(t, meowmxotel.Config{RequireParentSpan: true})
	store := observedSQLite(t, tm.obs)
	ctx := t.Context()
	reqCtx, request := tm.tp.Tracer("test").Start(ctx, "request")
	for i, c := range []context.Context{ctx, reqCtx} {
		stream := meowmx.NewStream("a", fmt.Sprint(i))
		if _, err := store.Append(c, stream, meowmx.Any, meowmx.Event{Type: "A", Data: json.RawMessage(`{}`)}); err != nil {
			t.Fatal(err)
		}
		if _, err := store.ReadStream(c, stream, nil); err != nil {
			t.Fatal(err)
		}
	}
	request.End()
	for _, name := range []string{"append a", "read stream"} {
		spans := tm.spansNamed(name)
		if len(spans) != 1 {
			t.Fatalf("%d %q spans, want 1 (the one under the request)", len(spans), name)
		}
		if spans[0].Parent.SpanID() != request.SpanContext().SpanID() {
			t.Errorf("the %q span's parent is %v, want the request", name, spans[0].Parent.SpanID())
		}
	}
	rm := tm.collect(t)
	if got, _ := metricValue(rm, "meowmx.append.duration", attribute.String("meowmx.outcome", "recorded")); got != 2 {
		t.Errorf("%v appends measured, want 2", got)
	}
	if got, _ := metricValue(rm, "meowmx.events.read"); got != 2 {
		t.Errorf("%v events read measured, want 2", got)
	}

	handled := make(chan struct{}, 2)
	sub, err := store.Subscribe(meowmx.SubscriptionConfig[*sql.Tx]{
		Name: "both",
		Handler: func(_ context.Context, _ *sql.Tx, events []meowmx.RecordedEvent) error {
			for range events {
				handled <- struct{}{}
			}
			return nil
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := sub.Start(ctx); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		testdb.Recv(t, handled, "the events to be handled")
	}
	if err := sub.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	process := tm.spansNamed("process both")
	if len(process) == 0 {
		t.Fatal("no span of the handler's calls")
	}
	appendSpan := tm.spansNamed("append a")[0].SpanContext.SpanID()
	var links int
	for _, s := range process {
		for _, l := range s.Links {
			if l.SpanContext.SpanID() != appendSpan {
				t.Errorf("a handler span links to %v, want only the append under the request", l.SpanContext.SpanID())
			}
			links++
		}
	}
	if links != 1 {
		t.Errorf("%d links from handler spans, want 1", links)
	}
}

// TestRequireParentSpanRecordingCaller: a caller's span that records
// counts as a parent even when its span context is not valid (here its IDs
// are zero): the append and the read make spans of their own and leave the
// caller's alone.
func TestRequireParentSpanRecordingCaller(t *testing.T) {
	t.Parallel()
	tm := newTelemetry(t, meowmxotel.Config{RequireParentSpan: true}, sdktrace.WithIDGenerator(zeroIDs{}))
	store := observedSQLite(t, tm.obs)
	reqCtx, request := tm.tp.Tracer("test").Start(t.Context(), "request")
	if !request.IsRecording() || request.SpanContext().IsValid() {
		t.Fatal("the request's span should record with an invalid span context")
	}
	stream := meowmx.NewStream("a", "1")
	if _, err := store.Append(reqCtx, stream, meowmx.Any, meowmx.Event{Type: "A", Data: json.RawMessage(`{}`)}); err != nil {
		t.Fatal(err)
	}
	if _, err := store.ReadStream(reqCtx, stream, nil); err != nil {
		t.Fatal(err)
	}
	if !request.IsRecording() {
		t.Fatal("the store ended the caller's span")
	}
	request.End()
	reqs := tm.spansNamed("request")
	if len(reqs) != 1 || len(reqs[0].Attributes) != 0 {
		t.Fatalf("the request's spans %+v, want one, without the store's attributes", reqs)
	}
	for _, name := range []string{"append a", "read stream"} {
		if n := len(tm.spansNamed(name)); n != 1 {
			t.Errorf("%d %q spans, want 1", n, name)
		}
	}
}

// zeroIDs is an sdktrace.IDGenerator whose IDs are all zero: its spans
// record, with span contexts that are not valid.
type zeroIDs struct{}

func (zeroIDs) NewIDs(context.Context) (trace.TraceID, trace.SpanID) {
	return trace.TraceID{}, trace.SpanID{}
}
func (zeroIDs) NewSpanID(context.Context, trace.TraceID) trace.SpanID { return trace.SpanID{} }

// TestCoreImportsNoOpenTelemetry: the store's package, its types and its
// drivers compile without OpenTelemetry.
func TestCoreImportsNoOpenTelemetry(t *testing.T) {
	t.Parallel()
	out, err := exec.Command("go", "list", "-deps",
		"github.com/meowmx/meowmx", "github.com/meowmx/meowmx/meowmxpgxv5", "github.com/meowmx/meowmx/meowmxsqlite").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	for _, pkg := range strings.Fields(string(out)) {
		if strings.HasPrefix(pkg, "go.opentelemetry.io/") || strings.HasPrefix(pkg, "github.com/prometheus/") {
			t.Errorf("the core imports %s", pkg)
		}
	}
}

// histogramSum sums the values recorded in the int64 histogram name.
func histogramSum(rm metricdata.ResourceMetrics, name string) int64 {
	var total int64
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			if d, ok := m.Data.(metricdata.Histogram[int64]); ok && m.Name == name {
				for _, p := range d.DataPoints {
					total += p.Sum
				}
			}
		}
	}
	return total
}

// TestPostgresGroupsAndNotifications: the group commit histograms add up
// to the appends made, and a listening session cut by the server counts as
// a failed notification.
func TestPostgresGroupsAndNotifications(t *testing.T) {
	t.Parallel()
	tm := newTelemetry(t, meowmxotel.Config{})
	pool := testdb.Pool(t)
	schema := testdb.SchemaName(t)
	store, err := meowmx.New(meowmxpgxv5.New(pool), &meowmx.Config{Schema: schema, Observer: tm.obs, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	ctx := t.Context()
	if err := store.Migrate(ctx); err != nil {
		t.Fatal(err)
	}

	const writers, each = 8, 10
	errs := make(chan error, writers)
	for w := range writers {
		go func() {
			for i := range each {
				_, err := store.Append(ctx, meowmx.NewStream("g", fmt.Sprintf("%d-%d", w, i)), meowmx.NoStream,
					meowmx.Event{Type: "A", Data: json.RawMessage(`{}`)}, meowmx.Event{Type: "B", Data: json.RawMessage(`{}`)})
				if err != nil {
					errs <- err
					return
				}
			}
			errs <- nil
		}()
	}
	for range writers {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	rm := tm.collect(t)
	if got := histogramSum(rm, "meowmx.append.group.size"); got != writers*each {
		t.Errorf("the group sizes add up to %d appends, want %d", got, writers*each)
	}
	if got := histogramSum(rm, "meowmx.append.group.events"); got != 2*writers*each {
		t.Errorf("the group sizes add up to %d events, want %d", got, 2*writers*each)
	}
	trips, _ := metricValue(rm, "meowmx.append.group.size")
	if trips < 1 || trips > writers*each {
		t.Errorf("%v trips to the database for %d appends", trips, writers*each)
	}

	// A subscription makes the store listen; the server ends that session.
	sub, err := store.Subscribe(meowmx.SubscriptionConfig[pgx.Tx]{
		Name: "listener", Categories: []string{"g"},
		Handler: func(context.Context, pgx.Tx, []meowmx.RecordedEvent) error { return nil },
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := sub.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = sub.Stop(context.WithoutCancel(ctx)) }()
	listen := "LISTEN " + pgx.Identifier{meowmxpgxv5.Channel(schema)}.Sanitize()
	testdb.Eventually(t, func() (bool, string) {
		var n int
		err := pool.QueryRow(ctx, `SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE query = $1`, listen).Scan(&n)
		return err == nil && n > 0, fmt.Sprintf("terminated %d listening sessions (%v)", n, err)
	})
	dir := attribute.String("meowmx.notification.direction", "listen")
	testdb.Eventually(t, func() (bool, string) {
		got, _ := metricValue(tm.collect(t), "meowmx.notifications.failed", dir)
		return got >= 1, fmt.Sprintf("meowmx.notifications.failed{listen} = %v", got)
	})
}
