package meowmx

import (
	"bytes"
	"context"
	"encoding/json"
	"time"
)

// Observer is told what a store and its subscriptions do, for traces and
// metrics, without the store depending on a telemetry library: package
// meowmxotel implements it with OpenTelemetry. Set it as Config.Observer.
//
// The Start methods return the context the operation goes on with, so that
// a span started there is the parent of what happens inside it (a
// subscription handler's own spans, for one); the matching End method is
// called with that context, once, whatever the outcome. Methods are called
// on the goroutine doing the work: they must be quick, safe for concurrent
// use, and must not call the store. The data they are given must not be
// kept or changed after they return.
//
// Embed NopObserver to implement only some of the methods.
type Observer interface {
	// AppendStart and AppendEnd surround every Append, AppendIf,
	// AppendEvents and their Tx forms, including the store's own retries.
	AppendStart(ctx context.Context, data *AppendStartData) context.Context
	AppendEnd(ctx context.Context, data *AppendEndData)
	// ReadStart and ReadEnd surround every ReadStream, ReadCategory,
	// ReadAll and ReadQuery (and each page an iterator reads).
	ReadStart(ctx context.Context, data *ReadStartData) context.Context
	ReadEnd(ctx context.Context, data *ReadEndData)
	// BatchStart and BatchEnd surround every call of a subscription's
	// handler, from before its transaction begins to after it commits or
	// rolls back. The handler runs with the context BatchStart returns.
	BatchStart(ctx context.Context, data *BatchStartData) context.Context
	BatchEnd(ctx context.Context, data *BatchEndData)
	// AppendGroupDone reports each trip of group commit to the database.
	AppendGroupDone(ctx context.Context, data *AppendGroupData)
	// EventParked reports an event a subscription parked.
	EventParked(ctx context.Context, data *EventParkedData)
	// NotificationFailed reports a notification that could not be sent,
	// or a lost listening session (see "Notifications" in the README).
	NotificationFailed(ctx context.Context, data *NotificationFailedData)
}

// MetadataInjector is an Observer that adds entries to the metadata of
// appended events, such as the W3C trace context of the append's span.
// MetadataEntries is called with the context AppendStart returned and
// appends the entries to dst as key, value, key, value... (a key without
// a value is ignored); the store adds them to each event's metadata object
// (creating one when an event has none), never replacing a key the event
// already has, and leaves metadata that is not a JSON object alone. The
// entries count toward Config.MaxEventSize.
type MetadataInjector interface {
	MetadataEntries(ctx context.Context, dst []string) []string
}

// AppendStartData describes an append about to be made.
type AppendStartData struct {
	// Stream is the stream appended to; for AppendEvents only its category
	// is known at the start (AppendEndData has the whole stream).
	Stream Stream
	// Expected is the expected version the append was given.
	Expected ExpectedVersion
	// Events is how many events it appends.
	Events int
	// Conditional says it has an AppendCondition.
	Conditional bool
	// InTx says it runs in the caller's transaction (AppendTx and kin).
	InTx bool
}

// AppendOutcome is how an append ended.
type AppendOutcome string

const (
	// AppendRecorded: the events were recorded.
	AppendRecorded AppendOutcome = "recorded"
	// AppendRetried: the events had been recorded by an earlier append with
	// the same event IDs, whose result was returned (an idempotent retry).
	AppendRetried AppendOutcome = "retried"
	// AppendConflict: a version conflict (ErrVersionConflict).
	AppendConflict AppendOutcome = "conflict"
	// AppendConditionFailed: the append's condition failed
	// (ErrAppendConditionFailed).
	AppendConditionFailed AppendOutcome = "condition_failed"
	// AppendDuplicate: an event ID was recorded elsewhere
	// (ErrDuplicateEventID).
	AppendDuplicate AppendOutcome = "duplicate"
	// AppendTooOld: the caller's transaction was too old
	// (ErrTransactionTooOld).
	AppendTooOld AppendOutcome = "too_old"
	// AppendInvalid: bad input (ErrInvalidInput); nothing was sent to the
	// database.
	AppendInvalid AppendOutcome = "invalid"
	// AppendFailed: any other error (the database, a cancelled context).
	AppendFailed AppendOutcome = "error"
)

// AppendEndData describes an append that ended.
type AppendEndData struct {
	AppendStartData
	Outcome AppendOutcome
	// Recorded holds the events as recorded (or as recorded before, for
	// AppendRetried); nil otherwise.
	Recorded []RecordedEvent
	// Retries counts the store's own retries of the append (a lost race
	// for a version, an aborted transaction).
	Retries  int
	Duration time.Duration
	// Err is the error Append returned, nil when it succeeded.
	Err error
}

// ReadKind names a kind of read.
type ReadKind string

const (
	ReadKindStream   ReadKind = "stream"
	ReadKindCategory ReadKind = "category"
	ReadKindAll      ReadKind = "all"
	ReadKindQuery    ReadKind = "query"
)

// ReadStartData describes a read about to be made.
type ReadStartData struct {
	Kind ReadKind
	// Stream is the stream a ReadKindStream read reads.
	Stream Stream
	// Category is the category a ReadKindCategory read reads.
	Category string
	// After is the position a global read (category, all, query) reads
	// after.
	After Position
	// Limit is the most events the read returns.
	Limit int
}

// ReadEndData describes a read that ended.
type ReadEndData struct {
	ReadStartData
	// Events is how many events it returned.
	Events   int
	Duration time.Duration
	Err      error
}

// BatchStartData describes a call of a subscription's handler.
type BatchStartData struct {
	Subscription string
	Partition    int
	// Events are the events handed to the handler, in order.
	Events []RecordedEvent
	// Attempt counts the calls of the handler with these events, from 1
	// (an event of a batch that failed is at attempt 2 when handled alone).
	Attempt int
	// Replay says the events are parked events being replayed.
	Replay bool
}

// BatchOutcome is how a call of a handler ended.
type BatchOutcome string

const (
	// BatchHandled: the handler succeeded and the checkpoint moved past
	// the events, in one committed transaction.
	BatchHandled BatchOutcome = "handled"
	// BatchFailed: the handler returned an error or panicked; the batch
	// is retried, split, parked or stops the subscription, as configured.
	BatchFailed BatchOutcome = "failed"
	// BatchAborted: the handler was not the cause: the transaction could
	// not begin or commit, the lease was lost, or the worker stopped. The
	// batch is handled again later.
	BatchAborted BatchOutcome = "aborted"
)

// BatchEndData describes a call of a handler that ended.
type BatchEndData struct {
	BatchStartData
	Outcome  BatchOutcome
	Duration time.Duration
	Err      error
}

// AppendGroupData describes one trip of group commit to the database.
type AppendGroupData struct {
	// Appends counts the appends the trip decided (recorded, or answered
	// with a verdict such as a conflict): 1 when an append found no
	// company. Members it could not decide, which are then made alone,
	// are not counted, and a trip that failed counts none.
	Appends int
	// Events counts the events of those appends.
	Events   int
	Duration time.Duration
}

// EventParkedData describes an event a subscription parked.
type EventParkedData struct {
	Subscription string
	Partition    int
	Event        RecordedEvent
	Attempts     int
	Err          string
}

// NotificationFailedData describes a failure of notifications.
type NotificationFailedData struct {
	// Listen is true when the listening session was lost (this process's
	// subscriptions poll meanwhile), false when an append's notification
	// to other processes could not be sent (theirs poll).
	Listen bool
	Err    error
}

// NopObserver implements every Observer method by doing nothing. Embed it
// in an Observer that implements only some of them.
type NopObserver struct{}

func (NopObserver) AppendStart(ctx context.Context, _ *AppendStartData) context.Context { return ctx }
func (NopObserver) AppendEnd(context.Context, *AppendEndData)                           {}
func (NopObserver) ReadStart(ctx context.Context, _ *ReadStartData) context.Context     { return ctx }
func (NopObserver) ReadEnd(context.Context, *ReadEndData)                               {}
func (NopObserver) BatchStart(ctx context.Context, _ *BatchStartData) context.Context   { return ctx }
func (NopObserver) BatchEnd(context.Context, *BatchEndData)                             {}
func (NopObserver) AppendGroupDone(context.Context, *AppendGroupData)                   {}
func (NopObserver) EventParked(context.Context, *EventParkedData)                       {}
func (NopObserver) NotificationFailed(context.Context, *NotificationFailedData)         {}

// observedRead runs read, told to the store's observer if it has one.
func observedRead(ctx context.Context, obs Observer, start ReadStartData, read func(ctx context.Context) ([]RecordedEvent, error)) ([]RecordedEvent, error) {
	if obs == nil {
		return read(ctx)
	}
	began := time.Now()
	ctx = obs.ReadStart(ctx, &start)
	events, err := read(ctx)
	obs.ReadEnd(ctx, &ReadEndData{ReadStartData: start, Events: len(events), Duration: time.Since(began), Err: err})
	return events, err
}

// metadataEntries collects the entries a MetadataInjector adds under ctx.
func metadataEntries(ctx context.Context, obs Observer) []string {
	if inj, ok := obs.(MetadataInjector); ok {
		kv := inj.MetadataEntries(ctx, nil)
		return kv[:len(kv)&^1]
	}
	return nil
}

// withMetadata returns events with the entries kv (key, value, key,
// value...) added to each one's metadata object, keys it has already
// excepted. events is not changed: a copy is returned when any changes.
func withMetadata(events []Event, kv []string) []Event {
	if len(kv) == 0 {
		return events
	}
	out := make([]Event, len(events))
	copy(out, events)
	for i := range out {
		out[i].Metadata = addEntries(out[i].Metadata, kv)
	}
	return out
}

// addEntries adds the entries kv to the JSON object meta (nil or empty:
// a new object), skipping keys it already has; anything but an object is
// returned as is.
func addEntries(meta json.RawMessage, kv []string) json.RawMessage {
	trimmed := bytes.TrimSpace(meta)
	if len(trimmed) == 0 || bytes.Equal(trimmed, []byte("null")) {
		trimmed = []byte("{}")
	}
	if trimmed[0] != '{' || trimmed[len(trimmed)-1] != '}' {
		return meta // not an object: left for validation to judge
	}
	var present map[string]json.RawMessage
	for i := 0; i < len(kv); i += 2 {
		// Look at the keys only when one of ours may be among them.
		if bytes.Contains(trimmed, []byte(kv[i])) {
			if err := json.Unmarshal(trimmed, &present); err != nil {
				return meta
			}
			break
		}
	}
	body := bytes.TrimSpace(trimmed[1 : len(trimmed)-1])
	out := make([]byte, 0, len(trimmed)+64*len(kv)/2)
	out = append(out, '{')
	wrote := false
	for i := 0; i < len(kv); i += 2 {
		if _, ok := present[kv[i]]; ok {
			continue
		}
		if wrote {
			out = append(out, ',')
		}
		out = appendJSONString(append(appendJSONString(out, kv[i]), ':'), kv[i+1])
		wrote = true
	}
	if len(body) > 0 {
		if wrote {
			out = append(out, ',')
		}
		out = append(out, body...)
	}
	return append(out, '}')
}

// appendJSONString appends s as a JSON string: as it is between quotes when
// it is printable ASCII without quotes or backslashes (a trace context is),
// escaped by encoding/json otherwise, without its HTML escapes (a stored
// \u0026 would read back as such on SQLite, which keeps JSON text as is).
func appendJSONString(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c >= 0x7f || c == '"' || c == '\\' {
			var buf bytes.Buffer
			enc := json.NewEncoder(&buf)
			enc.SetEscapeHTML(false)
			_ = enc.Encode(s)
			return append(b, bytes.TrimSuffix(buf.Bytes(), []byte("\n"))...)
		}
	}
	return append(append(append(b, '"'), s...), '"')
}

var _ Observer = NopObserver{}
