// Package meowmxotel traces and measures a meowmx store with OpenTelemetry.
//
// New returns a meowmx.Observer; set it as the store's Config.Observer:
//
//	obs, err := meowmxotel.New(nil) // the global tracer and meter providers
//	...
//	store, err := meowmx.New(driver, &meowmx.Config{Observer: obs})
//	...
//	reg, err := obs.ObserveStore(store) // lag and horizon gauges
//	defer reg.Unregister()
//
// It makes a span per append, per read and per call of a subscription's
// handler (appends and reads only under a span of the caller's when
// Config.RequireParentSpan is set); stores the W3C trace context of each
// append's span in the metadata of its events (key "traceparent", and
// "tracestate" when there is one) unless Config.DisableTraceContext is
// set; and links the span of each handler call to the spans of the appends
// of the events it handles, so that a request can be followed from the
// call that appended to the read model that consumed it. The README lists every span, attribute and
// metric.
//
// Only this package imports OpenTelemetry: an application that does not
// import it does not compile it.
package meowmxotel

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/meowmx/meowmx"
)

// ScopeName is the instrumentation scope of meowmx's tracer and meter.
const ScopeName = "github.com/meowmx/meowmx"

// Config configures an Observer. The zero value is usable.
type Config struct {
	// TracerProvider makes the spans. Defaults to otel.GetTracerProvider().
	TracerProvider trace.TracerProvider
	// MeterProvider makes the metrics. Defaults to otel.GetMeterProvider().
	MeterProvider metric.MeterProvider
	// Propagator writes the trace context into appended events' metadata
	// and reads it back for the links of handler spans. Defaults to
	// propagation.TraceContext{} (W3C traceparent and tracestate).
	Propagator propagation.TextMapPropagator
	// DisableTraceContext leaves appended events' metadata alone: handler
	// spans then have no links.
	DisableTraceContext bool
	// RequireParentSpan makes spans of appends and reads only when they are
	// made under a span of the caller's (a request's, typically): any valid
	// span context counts, a remote or unsampled one too. Their metrics are
	// recorded either way, and every handler call still has a span. An
	// append made without a caller's span stores no trace context and no
	// handler's span links to it; leaving its span out saves most of what
	// instrumentation costs an append (see BENCHMARKS.md,
	// "Instrumentation"). The spans of an instrumented database driver
	// (otelpgx, say) that were children of such an append's or read's span
	// then start traces of their own.
	RequireParentSpan bool
	// LagLimit is how many unhandled events the lag gauge counts per
	// partition at most (see meowmx.Store.SubscriptionLags). Defaults to
	// meowmx.LagLimitDefault.
	LagLimit int64
}

// Observer implements meowmx.Observer and meowmx.MetadataInjector with
// OpenTelemetry. It is safe for concurrent use, and one Observer may serve
// several stores.
type Observer struct {
	tracer    trace.Tracer
	meter     metric.Meter
	prop      propagation.TextMapPropagator
	names     []string // the propagator's keys
	fields    [][]byte // the same, as bytes
	inject    bool
	parented  bool // Config.RequireParentSpan
	lagLimit  int64
	m         instruments
	attrSets  sync.Map // attrKey -> metric.MeasurementOption
	spanNames sync.Map // [2]string -> span name
}

type instruments struct {
	eventsAppended, appendRetries metric.Int64Counter
	appendDuration                metric.Float64Histogram
	groupAppends, groupEvents     metric.Int64Histogram
	eventsRead                    metric.Int64Counter
	readDuration                  metric.Float64Histogram
	eventsHandled, eventsParked   metric.Int64Counter
	batchDuration                 metric.Float64Histogram
	notificationFailures          metric.Int64Counter
	lag, parked                   metric.Int64ObservableGauge
	timeBehind, horizonAge        metric.Float64ObservableGauge
}

// durationBuckets are the bounds, in seconds, of the latency histograms:
// from half a millisecond to ten seconds.
var durationBuckets = []float64{0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10}

// groupBuckets are the bounds of the group commit histograms.
var groupBuckets = []float64{1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1000}

// New returns an Observer configured by cfg (nil for the defaults).
func New(cfg *Config) (*Observer, error) {
	c := Config{}
	if cfg != nil {
		c = *cfg
	}
	if c.TracerProvider == nil {
		c.TracerProvider = otel.GetTracerProvider()
	}
	if c.MeterProvider == nil {
		c.MeterProvider = otel.GetMeterProvider()
	}
	if c.Propagator == nil {
		c.Propagator = propagation.TraceContext{}
	}
	if c.LagLimit < 0 {
		return nil, fmt.Errorf("meowmxotel: Config.LagLimit must not be negative, got %d", c.LagLimit)
	}
	if c.LagLimit == 0 {
		c.LagLimit = meowmx.LagLimitDefault
	}
	o := &Observer{
		tracer:   c.TracerProvider.Tracer(ScopeName),
		meter:    c.MeterProvider.Meter(ScopeName),
		prop:     c.Propagator,
		inject:   !c.DisableTraceContext,
		parented: c.RequireParentSpan,
		lagLimit: c.LagLimit,
	}
	for _, f := range c.Propagator.Fields() {
		o.names, o.fields = append(o.names, f), append(o.fields, []byte(f))
	}
	if err := o.m.create(o.meter); err != nil {
		return nil, fmt.Errorf("meowmxotel: %w", err)
	}
	return o, nil
}

func (m *instruments) create(meter metric.Meter) error {
	var errs []error
	counter := func(name, unit, desc string) metric.Int64Counter {
		c, err := meter.Int64Counter(name, metric.WithUnit(unit), metric.WithDescription(desc))
		errs = append(errs, err)
		return c
	}
	seconds := func(name, desc string) metric.Float64Histogram {
		h, err := meter.Float64Histogram(name, metric.WithUnit("s"), metric.WithDescription(desc),
			metric.WithExplicitBucketBoundaries(durationBuckets...))
		errs = append(errs, err)
		return h
	}
	sizes := func(name, unit, desc string) metric.Int64Histogram {
		h, err := meter.Int64Histogram(name, metric.WithUnit(unit), metric.WithDescription(desc),
			metric.WithExplicitBucketBoundaries(groupBuckets...))
		errs = append(errs, err)
		return h
	}
	m.eventsAppended = counter("meowmx.events.appended", "{event}", "Events of appends, by category and outcome (outcome recorded: events written).")
	m.appendRetries = counter("meowmx.append.retries", "{retry}", "Retries the store made of appends by itself (a lost race for a version, an aborted transaction).")
	m.appendDuration = seconds("meowmx.append.duration", "Duration of appends, retries included, by category and outcome; its count is the number of appends.")
	m.groupAppends = sizes("meowmx.append.group.size", "{append}", "Appends that went to the database together (group commit).")
	m.groupEvents = sizes("meowmx.append.group.events", "{event}", "Events that went to the database together (group commit).")
	m.eventsRead = counter("meowmx.events.read", "{event}", "Events returned by reads, by kind of read.")
	m.readDuration = seconds("meowmx.read.duration", "Duration of reads, by kind; its count is the number of reads.")
	m.eventsHandled = counter("meowmx.subscription.events.handled", "{event}", "Events handled and checkpointed, by subscription.")
	m.eventsParked = counter("meowmx.subscription.events.parked", "{event}", "Events parked after failing, by subscription.")
	m.batchDuration = seconds("meowmx.subscription.batch.duration", "Duration of calls of subscription handlers, from the start of their transaction to its end, by subscription and outcome (failed: the handler's error); its count is the number of calls.")
	m.notificationFailures = counter("meowmx.notifications.failed", "{failure}", "Notifications that could not be sent (direction send) and lost listening sessions (direction listen).")
	var err error
	m.lag, err = meter.Int64ObservableGauge("meowmx.subscription.lag", metric.WithUnit("{event}"),
		metric.WithDescription("Events a subscription partition has not handled yet, counted up to a limit."))
	errs = append(errs, err)
	m.parked, err = meter.Int64ObservableGauge("meowmx.subscription.parked", metric.WithUnit("{event}"),
		metric.WithDescription("Events a subscription partition holds parked."))
	errs = append(errs, err)
	m.timeBehind, err = meter.Float64ObservableGauge("meowmx.subscription.time_behind", metric.WithUnit("s"),
		metric.WithDescription("How long ago the first event a subscription partition has not handled was recorded (0 when caught up)."))
	errs = append(errs, err)
	m.horizonAge, err = meter.Float64ObservableGauge("meowmx.horizon.age", metric.WithUnit("s"),
		metric.WithDescription("Age of the oldest running transaction holding the visibility horizon back (PostgreSQL; 0 when none)."))
	errs = append(errs, err)
	return errors.Join(errs...)
}

// Attribute keys.
const (
	keyCategory     = attribute.Key("meowmx.category")
	keyStream       = attribute.Key("meowmx.stream")
	keyStreamID     = attribute.Key("meowmx.stream.id")
	keyOutcome      = attribute.Key("meowmx.outcome")
	keyEvents       = attribute.Key("meowmx.events")
	keyExpected     = attribute.Key("meowmx.expected_version")
	keyConditional  = attribute.Key("meowmx.conditional")
	keyInTx         = attribute.Key("meowmx.in_transaction")
	keyRetries      = attribute.Key("meowmx.retries")
	keyPosition     = attribute.Key("meowmx.position")
	keyVersion      = attribute.Key("meowmx.version")
	keyReadKind     = attribute.Key("meowmx.read.kind")
	keyAfter        = attribute.Key("meowmx.after")
	keyLimit        = attribute.Key("meowmx.limit")
	keySubscription = attribute.Key("meowmx.subscription")
	keyPartition    = attribute.Key("meowmx.partition")
	keyAttempt      = attribute.Key("meowmx.attempt")
	keyReplay       = attribute.Key("meowmx.replay")
	keyDirection    = attribute.Key("meowmx.notification.direction")
	keyBatchCount   = attribute.Key("messaging.batch.message_count")
	keyErrorType    = attribute.Key("error.type")
)

// attrKey identifies a cached attribute set of a measurement.
type attrKey struct {
	k1, k2 attribute.Key
	v1, v2 string
}

// attrs returns the measurement option of the attributes k1=v1 (and k2=v2
// when k2 is set), made once and cached: metrics cost no allocation per
// append.
func (o *Observer) attrs(k1 attribute.Key, v1 string, k2 attribute.Key, v2 string) metric.MeasurementOption {
	key := attrKey{k1, k2, v1, v2}
	if opt, ok := o.attrSets.Load(key); ok {
		return opt.(metric.MeasurementOption)
	}
	kv := []attribute.KeyValue{k1.String(v1)}
	if k2 != "" {
		kv = append(kv, k2.String(v2))
	}
	opt, _ := o.attrSets.LoadOrStore(key, metric.WithAttributeSet(attribute.NewSet(kv...)))
	return opt.(metric.MeasurementOption)
}

// AppendStart starts the append's span (none when Config.RequireParentSpan
// is set and ctx has no span). Its attributes are set when it ends, all at
// once: one allocation instead of three.
func (o *Observer) AppendStart(ctx context.Context, data *meowmx.AppendStartData) context.Context {
	if o.noSpan(ctx) {
		return ctx
	}
	root := !trace.SpanContextFromContext(ctx).IsValid()
	ctx, _ = o.tracer.Start(ctx, o.name("append ", data.Stream.Category), producerKind)
	if root && o.inject {
		// No caller's span: MetadataEntries stores no trace context.
		ctx = context.WithValue(ctx, rootAppend{}, true)
	}
	return ctx
}

// noSpan says an append or read made with ctx makes no span: with
// Config.RequireParentSpan, when ctx has no span of the caller's (neither a
// valid span context nor a span that records).
func (o *Observer) noSpan(ctx context.Context) bool {
	return o.parented && !trace.SpanContextFromContext(ctx).IsValid() && !trace.SpanFromContext(ctx).IsRecording()
}

// producerKind is an append span's kind, made once.
var producerKind = trace.WithSpanKind(trace.SpanKindProducer)

// rootAppend marks the context of an append made without a caller's span.
type rootAppend struct{}

// name returns verb+object, made once and cached: span names cost no
// allocation per call.
func (o *Observer) name(verb, object string) string {
	key := [2]string{verb, object}
	if n, ok := o.spanNames.Load(key); ok {
		return n.(string)
	}
	n, _ := o.spanNames.LoadOrStore(key, verb+object)
	return n.(string)
}

// MetadataEntries gives the trace context of the append's span to the
// events' metadata when the append was made under a span of the caller's
// (the request that appended, typically): an append without one starts a
// trace of its own, which the events need not carry.
func (o *Observer) MetadataEntries(ctx context.Context, dst []string) []string {
	if !o.inject {
		return dst
	}
	if !trace.SpanContextFromContext(ctx).IsValid() || ctx.Value(rootAppend{}) != nil {
		return dst
	}
	c := appendCarrier{dst: dst}
	o.prop.Inject(ctx, &c)
	return c.dst
}

// appendCarrier is a propagation.TextMapCarrier that appends what is set
// to dst, as key, value pairs.
type appendCarrier struct{ dst []string }

func (c *appendCarrier) Get(string) string     { return "" }
func (c *appendCarrier) Set(key, value string) { c.dst = append(c.dst, key, value) }
func (c *appendCarrier) Keys() []string        { return nil }

// AppendEnd ends the append's span and counts it.
func (o *Observer) AppendEnd(ctx context.Context, data *meowmx.AppendEndData) {
	outcome := string(data.Outcome)
	opt := o.attrs(keyCategory, data.Stream.Category, keyOutcome, outcome)
	// The duration's exemplars point at the append's span; the counters'
	// would point at arbitrary appends and cost as much to take.
	o.m.eventsAppended.Add(context.Background(), int64(data.Events), opt)
	o.m.appendDuration.Record(ctx, data.Duration.Seconds(), opt)
	if data.Retries > 0 {
		o.m.appendRetries.Add(context.Background(), int64(data.Retries), o.attrs(keyCategory, data.Stream.Category, "", ""))
	}
	span := trace.SpanFromContext(ctx)
	if !span.IsRecording() {
		return
	}
	buf := appendAttrs.Get().(*[]attribute.KeyValue)
	defer appendAttrs.Put(buf)
	attrs := append((*buf)[:0],
		keyCategory.String(data.Stream.Category),
		keyStreamID.String(data.Stream.ID),
		keyEvents.Int(data.Events),
		keyExpected.Int64(int64(data.Expected)),
		keyOutcome.String(outcome),
		keyRetries.Int(data.Retries),
	)
	if data.Conditional {
		attrs = append(attrs, keyConditional.Bool(true))
	}
	if data.InTx {
		attrs = append(attrs, keyInTx.Bool(true))
	}
	if len(data.Recorded) > 0 {
		attrs = append(attrs, keyPosition.String(data.Recorded[0].Position.String()), keyVersion.Int64(data.Recorded[0].Version))
	}
	span.SetAttributes(attrs...) // copied by the span
	*buf = attrs
	endSpan(span, outcome, data.Err)
}

// appendAttrs holds the slices AppendEnd gathers a span's attributes in
// before setting them: the span copies them, and the slice serves the
// next append.
var appendAttrs = sync.Pool{New: func() any { s := make([]attribute.KeyValue, 0, 10); return &s }}

// endSpan marks a span failed when err is set, and ends it.
func endSpan(span trace.Span, errType string, err error) {
	if err != nil {
		span.SetAttributes(keyErrorType.String(errType))
		span.SetStatus(codes.Error, err.Error())
	}
	span.End()
}

// ReadStart starts the read's span (none when Config.RequireParentSpan is
// set and ctx has no span).
func (o *Observer) ReadStart(ctx context.Context, data *meowmx.ReadStartData) context.Context {
	if o.noSpan(ctx) {
		return ctx
	}
	attrs := []attribute.KeyValue{keyReadKind.String(string(data.Kind))}
	switch data.Kind {
	case meowmx.ReadKindStream:
		attrs = append(attrs, keyStream.String(data.Stream.String()), keyCategory.String(data.Stream.Category))
	case meowmx.ReadKindCategory:
		attrs = append(attrs, keyCategory.String(data.Category))
	}
	if data.Kind != meowmx.ReadKindStream {
		attrs = append(attrs, keyAfter.String(data.After.String()))
	}
	if data.Limit > 0 {
		attrs = append(attrs, keyLimit.Int(data.Limit))
	}
	ctx, _ = o.tracer.Start(ctx, o.name("read ", string(data.Kind)),
		trace.WithSpanKind(trace.SpanKindClient), trace.WithAttributes(attrs...))
	return ctx
}

// ReadEnd ends the read's span and counts its events.
func (o *Observer) ReadEnd(ctx context.Context, data *meowmx.ReadEndData) {
	opt := o.attrs(keyReadKind, string(data.Kind), "", "")
	o.m.eventsRead.Add(ctx, int64(data.Events), opt)
	o.m.readDuration.Record(ctx, data.Duration.Seconds(), opt)
	span := trace.SpanFromContext(ctx)
	if !span.IsRecording() {
		return
	}
	span.SetAttributes(keyEvents.Int(data.Events))
	endSpan(span, "error", data.Err)
}

// BatchStart starts the span of a handler call, linked to the spans of the
// appends of its events.
func (o *Observer) BatchStart(ctx context.Context, data *meowmx.BatchStartData) context.Context {
	opts := []trace.SpanStartOption{
		trace.WithSpanKind(trace.SpanKindConsumer),
		trace.WithAttributes(
			keySubscription.String(data.Subscription),
			keyPartition.Int(data.Partition),
			keyBatchCount.Int(len(data.Events)),
			keyAttempt.Int(data.Attempt),
		),
	}
	if data.Replay {
		opts = append(opts, trace.WithAttributes(keyReplay.Bool(true)))
	}
	if links := o.links(data.Events); len(links) > 0 {
		opts = append(opts, trace.WithLinks(links...))
	}
	ctx, _ = o.tracer.Start(ctx, o.name("process ", data.Subscription), opts...)
	return ctx
}

// MaxLinks is the most links a handler call's span gets: one per distinct
// append among its events, the first ones in order (the SDK's default
// limit of links per span is 128 too).
const MaxLinks = 128

// links returns a link to the span context stored in the events' metadata
// by each distinct append, in order, at most MaxLinks. Events of one
// append share one context, which is extracted once.
func (o *Observer) links(events []meowmx.RecordedEvent) []trace.Link {
	if len(o.fields) == 0 {
		return nil
	}
	var (
		links  []trace.Link
		seen   map[string]bool
		key    []byte
		last   []byte
		prev   []byte
		values = make([][]byte, len(o.fields))
	)
	for i := range events {
		// The events of an append often have the same metadata: one look
		// at it is enough.
		meta := events[i].Metadata
		if i > 0 && bytes.Equal(meta, prev) {
			continue
		}
		prev = meta
		clear(values)
		found := false
		memberStrings(meta, func(k, v []byte) {
			for f, field := range o.fields {
				if bytes.Equal(k, field) {
					values[f], found = v, true
				}
			}
		})
		if !found {
			continue
		}
		key = key[:0]
		for _, v := range values {
			key = append(append(key, v...), 0)
		}
		if bytes.Equal(key, last) || seen[string(key)] {
			continue
		}
		last = append(last[:0], key...)
		if seen == nil {
			seen = map[string]bool{}
		}
		seen[string(key)] = true
		carrier := make(propagation.MapCarrier, len(o.fields))
		for f, v := range values {
			if v != nil {
				carrier[o.names[f]] = string(v)
			}
		}
		sc := trace.SpanContextFromContext(o.prop.Extract(context.Background(), carrier))
		if !sc.IsValid() {
			continue
		}
		if links = append(links, trace.Link{SpanContext: sc}); len(links) == MaxLinks {
			break
		}
	}
	return links
}

// memberStrings calls found with the key and the raw contents (between
// the quotes, escapes left as they are) of each member of the JSON object
// meta whose value is a string, in one pass without allocating. It stops
// at anything that is not a well-formed object.
func memberStrings(meta []byte, found func(key, value []byte)) {
	i := skipSpace(meta, 0)
	if i >= len(meta) || meta[i] != '{' {
		return
	}
	i++
	for {
		i = skipSpace(meta, i)
		if i >= len(meta) || meta[i] != '"' {
			return // '}' or malformed
		}
		key, next := stringAt(meta, i)
		if next < 0 {
			return
		}
		i = skipSpace(meta, next)
		if i >= len(meta) || meta[i] != ':' {
			return
		}
		i = skipSpace(meta, i+1)
		if i >= len(meta) {
			return
		}
		if meta[i] == '"' {
			value, next := stringAt(meta, i)
			if next < 0 {
				return
			}
			found(key, value)
			i = next
		} else if i = skipValue(meta, i); i < 0 {
			return
		}
		i = skipSpace(meta, i)
		if i >= len(meta) || meta[i] != ',' {
			return
		}
		i++
	}
}

func skipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

// stringAt returns the contents of the JSON string starting at b[i] (a
// quote) and the index after it, or -1 if it does not end.
func stringAt(b []byte, i int) ([]byte, int) {
	for j := i + 1; j < len(b); j++ {
		switch b[j] {
		case '\\':
			j++
		case '"':
			return b[i+1 : j], j + 1
		}
	}
	return nil, -1
}

// skipValue returns the index after the JSON value (not a string) that
// starts at b[i], or -1.
func skipValue(b []byte, i int) int {
	depth := 0
	for ; i < len(b); i++ {
		switch b[i] {
		case '"':
			_, next := stringAt(b, i)
			if next < 0 {
				return -1
			}
			i = next - 1
		case '{', '[':
			depth++
		case '}', ']':
			if depth == 0 {
				return i
			}
			if depth--; depth == 0 {
				return i + 1
			}
		case ',':
			if depth == 0 {
				return i
			}
		}
	}
	if depth == 0 {
		return i
	}
	return -1
}

// BatchEnd ends the span of a handler call and counts it.
func (o *Observer) BatchEnd(ctx context.Context, data *meowmx.BatchEndData) {
	outcome := string(data.Outcome)
	opt := o.attrs(keySubscription, data.Subscription, keyOutcome, outcome)
	o.m.batchDuration.Record(ctx, data.Duration.Seconds(), opt)
	if data.Outcome == meowmx.BatchHandled {
		o.m.eventsHandled.Add(ctx, int64(len(data.Events)), o.attrs(keySubscription, data.Subscription, "", ""))
	}
	span := trace.SpanFromContext(ctx)
	if !span.IsRecording() {
		return
	}
	span.SetAttributes(keyOutcome.String(outcome))
	endSpan(span, outcome, data.Err)
}

// AppendGroupDone records the size of a group commit.
func (o *Observer) AppendGroupDone(_ context.Context, data *meowmx.AppendGroupData) {
	if data.Appends == 0 {
		return
	}
	// A group's sizes are the group's, not its leader's: recorded without
	// the leader's span, so with no exemplar pointing at it (and none of
	// the cost of taking one).
	ctx := context.Background()
	o.m.groupAppends.Record(ctx, int64(data.Appends))
	o.m.groupEvents.Record(ctx, int64(data.Events))
}

// EventParked counts a parked event, and adds an event to the current
// span (the worker's, if it has one).
func (o *Observer) EventParked(ctx context.Context, data *meowmx.EventParkedData) {
	o.m.eventsParked.Add(ctx, 1, o.attrs(keySubscription, data.Subscription, "", ""))
	if span := trace.SpanFromContext(ctx); span.IsRecording() {
		span.AddEvent("meowmx.event.parked", trace.WithAttributes(
			keySubscription.String(data.Subscription), keyPartition.Int(data.Partition),
			attribute.String("meowmx.event.id", data.Event.ID.String()), keyAttempt.Int(data.Attempts)))
	}
}

// NotificationFailed counts a failed notification.
func (o *Observer) NotificationFailed(ctx context.Context, data *meowmx.NotificationFailedData) {
	direction := "send"
	if data.Listen {
		direction = "listen"
	}
	o.m.notificationFailures.Add(ctx, 1, o.attrs(keyDirection, direction, "", ""))
}

// Source is what the gauges of ObserveStore read: a *meowmx.Store of any
// driver.
type Source interface {
	SubscriptionLags(ctx context.Context, limit int64) ([]meowmx.SubscriptionLag, error)
	Horizon(ctx context.Context) (*meowmx.Horizon, error)
	Schema() string
}

// ObserveTimeout bounds the queries of one collection of ObserveStore's
// gauges.
const ObserveTimeout = 10 * time.Second

// ObserveStore registers the gauges read from store when metrics are
// collected (on each scrape): each subscription partition's lag in events
// (counted up to Config.LagLimit) and in seconds, its parked events, and
// the horizon's age. One collection costs one query listing the
// subscriptions, one bounded count per partition and, on PostgreSQL, one
// look at pg_stat_activity. Unregister the registration before closing the
// store.
func (o *Observer) ObserveStore(store Source) (metric.Registration, error) {
	schema := attribute.String("meowmx.schema", store.Schema())
	return o.meter.RegisterCallback(func(ctx context.Context, obs metric.Observer) error {
		ctx, cancel := context.WithTimeout(ctx, ObserveTimeout)
		defer cancel()
		var errs []error
		lags, err := store.SubscriptionLags(ctx, o.lagLimit)
		errs = append(errs, err)
		for _, l := range lags {
			opt := metric.WithAttributes(schema, keySubscription.String(l.Name), keyPartition.Int(l.Partition))
			obs.ObserveInt64(o.m.lag, l.Events, opt)
			obs.ObserveInt64(o.m.parked, l.Parked, opt)
			obs.ObserveFloat64(o.m.timeBehind, l.TimeBehind.Seconds(), opt)
		}
		h, err := store.Horizon(ctx)
		errs = append(errs, err)
		if err == nil {
			age := 0.0
			if h != nil {
				age = h.Age.Seconds()
			}
			obs.ObserveFloat64(o.m.horizonAge, age, metric.WithAttributes(schema))
		}
		return errors.Join(errs...)
	}, o.m.lag, o.m.parked, o.m.timeBehind, o.m.horizonAge)
}

var (
	_ meowmx.Observer         = (*Observer)(nil)
	_ meowmx.MetadataInjector = (*Observer)(nil)
)
