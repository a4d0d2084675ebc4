// Package storetest is the conformance suite every meowmx driver runs: each
// behaviour of the store, tested through the public API.
package storetest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/meowmx/meowmx"
	"github.com/meowmx/meowmx/internal/testdb"
	"github.com/meowmx/meowmx/meowmxdriver"
)

// Harness adapts the suite to one driver.
type Harness[TTx any] struct {
	// NewStore returns a store in a schema (or table prefix) of its own,
	// migrated unless migrate is false.
	NewStore func(t *testing.T, cfg *meowmx.Config, migrate bool) *meowmx.Store[TTx]
	// Begin starts a transaction; Commit and Rollback end it.
	Begin    func(ctx context.Context, s *meowmx.Store[TTx]) (TTx, error)
	Commit   func(ctx context.Context, tx TTx) error
	Rollback func(ctx context.Context, tx TTx) error
	// ReadModel creates a key/value table for the store's test and returns
	// functions to write a row in a transaction and to read a row.
	ReadModel func(t *testing.T, s *meowmx.Store[TTx]) (put func(ctx context.Context, tx TTx, key string, value int) error, get func(ctx context.Context, key string) (int, bool, error))
	// Table returns the qualified name of a test table of the store's.
	Table func(s *meowmx.Store[TTx], name string) string
	// Exec runs a statement (with ? placeholders) in tx and returns the
	// number of rows it affected.
	Exec func(ctx context.Context, tx TTx, query string, args ...any) (int64, error)
	// ExecDB runs a statement (with ? placeholders) outside transactions.
	ExecDB func(ctx context.Context, s *meowmx.Store[TTx], query string) error
	// QueryPairs runs a query of two text columns outside transactions.
	QueryPairs func(ctx context.Context, s *meowmx.Store[TTx], query string) ([][2]string, error)
	// ConcurrentWriters is true when a writer can commit while another
	// transaction that has written is still open (PostgreSQL), false when
	// writers are serialized (SQLite).
	ConcurrentWriters bool
	// Only, when set, keeps the cases it returns true for, by name (such
	// as "ReadStream" or "Subscription/Partitions").
	Only func(name string) bool
}

// AppendReadSubscribe keeps the cases that append, read and subscribe, for
// Harness.Only: those a pooler in front of the database must pass.
func AppendReadSubscribe(name string) bool {
	for _, prefix := range []string{"Append", "ExpectedVersions", "ConflictWritesNothing", "IdempotentRetry", "DuplicateEventID",
		"Read", "EventsIterator", "OutOfOrderCommit", "RaceOnOneStream", "ConcurrentStreamsOrder", "LargeBatch", "Grouped",
		"Condition/", "Subscription/"} {
		if strings.HasPrefix(name, prefix) {
			return true
		}
	}
	return false
}

// Exercise runs the suite.
func Exercise[TTx any](t *testing.T, h *Harness[TTx]) {
	t.Helper()
	tests := map[string]func(t *testing.T, h *Harness[TTx]){
		"MigrateIdempotent":       testMigrateIdempotent[TTx],
		"MigrateConcurrent":       testMigrateConcurrent[TTx],
		"SchemaMissing":           testSchemaMissing[TTx],
		"SchemasIsolated":         testSchemasIsolated[TTx],
		"AppendAndReadBack":       testAppendAndReadBack[TTx],
		"ExpectedVersions":        testExpectedVersions[TTx],
		"ConflictWritesNothing":   testConflictWritesNothing[TTx],
		"IdempotentRetry":         testIdempotentRetry[TTx],
		"DuplicateEventID":        testDuplicateEventID[TTx],
		"AppendTxCombined":        testAppendTxCombined[TTx],
		"AppendTxSeesOwnWrites":   testAppendTxSeesOwnWrites[TTx],
		"ReadStream":              testReadStream[TTx],
		"ReadCategory":            testReadCategory[TTx],
		"ReadAllPaging":           testReadAllPaging[TTx],
		"EventsIterator":          testEventsIterator[TTx],
		"Browse":                  testBrowse[TTx],
		"CategoryCounts":          testCategoryCounts[TTx],
		"Tags":                    testTags[TTx],
		"ReadQuery":               testReadQuery[TTx],
		"PositionNumbers":         testPositionNumbers[TTx],
		"LargeBatch":              testLargeBatch[TTx],
		"BadInput":                testBadInput[TTx],
		"ClosedStore":             testClosedStore[TTx],
		"CancelledContext":        testCancelledContext[TTx],
		"RaceOnOneStream":         testRaceOnOneStream[TTx],
		"OutOfOrderCommit":        testOutOfOrderCommit[TTx],
		"ConcurrentStreamsOrder":  testConcurrentStreamsOrder[TTx],
		"HorizonWithoutHolders":   testHorizon[TTx],
		"ArbitraryStreamIDs":      testArbitraryStreamIDs[TTx],
		"MetadataOptional":        testMetadataOptional[TTx],
		"ReadTxVariants":          testReadTxVariants[TTx],
		"PositionsIncreaseInPage": testPositionsIncrease[TTx],
	}
	for name, fn := range groupTests[TTx]() {
		tests[name] = fn
	}
	for name, fn := range aggregateTests[TTx]() {
		tests["Aggregate/"+name] = fn
	}
	for name, fn := range conditionTests[TTx]() {
		tests["Condition/"+name] = fn
	}
	for name, fn := range subscriptionTests[TTx]() {
		tests["Subscription/"+name] = fn
	}
	names := make([]string, 0, len(tests))
	for name := range tests {
		if h.Only == nil || h.Only(name) {
			names = append(names, name)
		}
	}
	slices.Sort(names)
	for _, name := range names {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			tests[name](t, h)
		})
	}
}

// ctx returns a context that ends with the test. It has no deadline: on a
// busy machine a test takes longer, and waits fail only when nothing
// progresses (testdb.Eventually), or at go test's -timeout.
func ctx(t *testing.T) context.Context { return t.Context() }

func ev(typ string, data string) meowmx.Event {
	return meowmx.Event{Type: typ, Data: json.RawMessage(data)}
}

// must(f())(t) returns f's value, failing t on f's error.
func must[T any](v T, err error) func(t *testing.T) T {
	return func(t *testing.T) T {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
}

// sameJSON reports whether a and b hold equivalent JSON.
func sameJSON(t *testing.T, a, b []byte) bool {
	t.Helper()
	var x, y any
	if err := json.Unmarshal(a, &x); err != nil {
		t.Fatalf("unmarshal %q: %v", a, err)
	}
	if err := json.Unmarshal(b, &y); err != nil {
		t.Fatalf("unmarshal %q: %v", b, err)
	}
	xs, _ := json.Marshal(x)
	ys, _ := json.Marshal(y)
	return string(xs) == string(ys)
}

// begin starts a transaction that is rolled back when the test ends, so
// that a failing check cannot leave it open, holding the schema's locks and
// the horizon. Rolling back a committed transaction does nothing.
func begin[TTx any](t *testing.T, h *Harness[TTx], s *meowmx.Store[TTx]) TTx {
	t.Helper()
	tx, err := h.Begin(ctx(t), s)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = h.Rollback(context.Background(), tx) })
	return tx
}

// readAllWait pages through ReadAll from after until it has returned want
// events, waiting while another test's transaction holds the horizon.
func readAllWait[TTx any](t *testing.T, s *meowmx.Store[TTx], category string, after meowmx.Position, want int) []meowmx.RecordedEvent {
	t.Helper()
	c := ctx(t)
	var got []meowmx.RecordedEvent
	testdb.Eventually(t, func() (bool, string) {
		for {
			var page []meowmx.RecordedEvent
			var err error
			if category == "" {
				page, err = s.ReadAll(c, after, &meowmx.ReadOpts{Limit: 100})
			} else {
				page, err = s.ReadCategory(c, category, after, &meowmx.ReadOpts{Limit: 100})
			}
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, page...)
			if len(page) == 0 {
				return len(got) >= want, fmt.Sprintf("read %d events, want %d", len(got), want)
			}
			after = page[len(page)-1].Position
		}
	})
	return got
}

func testMigrateIdempotent[TTx any](t *testing.T, h *Harness[TTx]) {
	s := h.NewStore(t, nil, true)
	c := ctx(t)
	must(s.Append(c, meowmx.NewStream("order", "1"), meowmx.NoStream, ev("Placed", `{}`)))(t)
	for range 2 {
		if err := s.Migrate(c); err != nil {
			t.Fatalf("migrating an up-to-date schema: %v", err)
		}
	}
	if v := must(s.StreamVersion(c, meowmx.NewStream("order", "1")))(t); v != 0 {
		t.Fatalf("version after re-migrating = %d, want 0", v)
	}
}

func testMigrateConcurrent[TTx any](t *testing.T, h *Harness[TTx]) {
	s := h.NewStore(t, nil, false)
	c := ctx(t)
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for range 8 {
		wg.Go(func() { errs <- s.Migrate(c) })
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatalf("concurrent migrate: %v", err)
		}
	}
	must(s.Append(c, meowmx.NewStream("order", "1"), meowmx.NoStream, ev("Placed", `{}`)))(t)
}

func testSchemaMissing[TTx any](t *testing.T, h *Harness[TTx]) {
	s := h.NewStore(t, nil, false)
	c := ctx(t)
	_, err := s.Append(c, meowmx.NewStream("order", "1"), meowmx.Any, ev("Placed", `{}`))
	if !errors.Is(err, meowmx.ErrSchemaMissing) {
		t.Fatalf("append to an unmigrated schema: err = %v, want ErrSchemaMissing", err)
	}
	if _, err := s.ReadAll(c, meowmx.Start, nil); !errors.Is(err, meowmx.ErrSchemaMissing) {
		t.Fatalf("read of an unmigrated schema: err = %v, want ErrSchemaMissing", err)
	}
	if _, err := s.ReadStream(c, meowmx.NewStream("order", "1"), nil); !errors.Is(err, meowmx.ErrSchemaMissing) {
		t.Fatalf("read stream of an unmigrated schema: err = %v, want ErrSchemaMissing", err)
	}
	// The message says it once, however many layers saw the error.
	for _, call := range []func() error{
		func() error {
			_, err := s.Append(c, meowmx.NewStream("order", "1"), meowmx.Any, ev("Placed", `{}`))
			return err
		},
		func() error { _, err := s.ReadAll(c, meowmx.Start, nil); return err },
		func() error { _, err := s.Streams(c, nil); return err },
		func() error { _, err := s.StreamVersion(c, meowmx.NewStream("order", "1")); return err },
	} {
		if err := call(); strings.Count(err.Error(), meowmx.ErrSchemaMissing.Error()) != 1 {
			t.Errorf("error %q does not say %q exactly once", err, meowmx.ErrSchemaMissing)
		}
	}
}

func testSchemasIsolated[TTx any](t *testing.T, h *Harness[TTx]) {
	a := h.NewStore(t, nil, true)
	b := h.NewStore(t, nil, true)
	c := ctx(t)
	stream := meowmx.NewStream("order", "1")
	must(a.Append(c, stream, meowmx.NoStream, ev("Placed", `{"n":1}`)))(t)
	must(b.Append(c, stream, meowmx.NoStream, ev("Placed", `{"n":2}`)))(t)
	for _, s := range []*meowmx.Store[TTx]{a, b} {
		events := must(s.ReadStream(c, stream, nil))(t)
		if len(events) != 1 {
			t.Fatalf("schema %s holds %d events, want 1", s.Schema(), len(events))
		}
	}
}

func testAppendAndReadBack[TTx any](t *testing.T, h *Harness[TTx]) {
	s := h.NewStore(t, nil, true)
	c := ctx(t)
	stream := meowmx.NewStream("order", "o-1")
	before := time.Now().Add(-time.Minute)
	in := []meowmx.Event{
		{Type: "Placed", Data: json.RawMessage(`{"total": 12.5, "items": ["a", "b"]}`), Metadata: json.RawMessage(`{"correlation_id": "c-1"}`)},
		{Type: "Paid", Data: json.RawMessage(`{"amount": 12.5}`)},
	}
	recorded := must(s.Append(c, stream, meowmx.NoStream, in...))(t)
	if len(recorded) != 2 {
		t.Fatalf("recorded %d events, want 2", len(recorded))
	}
	read := must(s.ReadStream(c, stream, nil))(t)
	if len(read) != 2 {
		t.Fatalf("read %d events, want 2", len(read))
	}
	for i := range in {
		r, got := recorded[i], read[i]
		if r.Version != int64(i) || got.Version != int64(i) {
			t.Errorf("event %d: versions %d (append) and %d (read), want %d", i, r.Version, got.Version, i)
		}
		if r.ID == uuid.Nil || r.ID != got.ID {
			t.Errorf("event %d: IDs %s (append) and %s (read)", i, r.ID, got.ID)
		}
		if r.ID.Version() != 7 {
			t.Errorf("event %d: generated ID %s is UUID version %d, want 7", i, r.ID, r.ID.Version())
		}
		if r.Position != got.Position {
			t.Errorf("event %d: positions %s (append) and %s (read)", i, r.Position, got.Position)
		}
		if got.Stream != stream || got.Type != in[i].Type {
			t.Errorf("event %d: read %s %q", i, got.Stream, got.Type)
		}
		if !sameJSON(t, got.Data, in[i].Data) {
			t.Errorf("event %d: data %s, want %s", i, got.Data, in[i].Data)
		}
		if !r.RecordedAt.Equal(got.RecordedAt) || got.RecordedAt.Before(before) || got.RecordedAt.After(time.Now().Add(time.Minute)) {
			t.Errorf("event %d: recorded at %v (append) and %v (read)", i, r.RecordedAt, got.RecordedAt)
		}
	}
	if !sameJSON(t, read[0].Metadata, in[0].Metadata) {
		t.Errorf("metadata %s, want %s", read[0].Metadata, in[0].Metadata)
	}
	if read[1].Metadata != nil {
		t.Errorf("metadata of an event without = %q, want nil", read[1].Metadata)
	}
	if read[0].Position.Compare(read[1].Position) >= 0 {
		t.Errorf("positions %s and %s do not increase", read[0].Position, read[1].Position)
	}
	// A given event ID is kept.
	id := uuid.New()
	got := must(s.Append(c, stream, 1, meowmx.Event{ID: id, Type: "Shipped", Data: json.RawMessage(`{}`)}))(t)
	if got[0].ID != id || got[0].Version != 2 {
		t.Fatalf("append with ID %s: got %s at version %d", id, got[0].ID, got[0].Version)
	}
}

func testExpectedVersions[TTx any](t *testing.T, h *Harness[TTx]) {
	s := h.NewStore(t, nil, true)
	c := ctx(t)
	stream := meowmx.NewStream("account", "42")

	conflict := func(expected meowmx.ExpectedVersion, actual int64) {
		t.Helper()
		_, err := s.Append(c, stream, expected, ev("Deposited", `{"amount":1}`))
		if !errors.Is(err, meowmx.ErrVersionConflict) {
			t.Fatalf("append expecting %s: err = %v, want ErrVersionConflict", expected, err)
		}
		var vc *meowmx.VersionConflictError
		if !errors.As(err, &vc) {
			t.Fatalf("err %T is not a *VersionConflictError", err)
		}
		if vc.Stream != stream || vc.Expected != expected || vc.Actual != actual {
			t.Fatalf("conflict = %+v, want stream %s, expected %s, actual %d", vc, stream, expected, actual)
		}
	}
	ok := func(expected meowmx.ExpectedVersion, wantVersion int64) {
		t.Helper()
		got, err := s.Append(c, stream, expected, ev("Deposited", `{"amount":1}`))
		if err != nil {
			t.Fatalf("append expecting %s: %v", expected, err)
		}
		if got[0].Version != wantVersion {
			t.Fatalf("append expecting %s recorded version %d, want %d", expected, got[0].Version, wantVersion)
		}
	}

	conflict(meowmx.StreamExists, -1)
	conflict(0, -1)
	ok(meowmx.NoStream, 0)
	conflict(meowmx.NoStream, 0)
	ok(meowmx.StreamExists, 1)
	ok(meowmx.Any, 2)
	conflict(1, 2)
	conflict(3, 2)
	ok(2, 3)
	ok(meowmx.Any, 4)

	// Any on a new stream creates it.
	got := must(s.Append(c, meowmx.NewStream("account", "new"), meowmx.Any, ev("Opened", `{}`)))(t)
	if got[0].Version != 0 {
		t.Fatalf("Any on a new stream recorded version %d, want 0", got[0].Version)
	}
}

func testConflictWritesNothing[TTx any](t *testing.T, h *Harness[TTx]) {
	s := h.NewStore(t, nil, true)
	c := ctx(t)
	stream := meowmx.NewStream("order", "1")
	must(s.Append(c, stream, meowmx.NoStream, ev("Placed", `{}`)))(t)
	batch := []meowmx.Event{ev("Paid", `{}`), ev("Shipped", `{}`), ev("Delivered", `{}`)}
	if _, err := s.Append(c, stream, 5, batch...); !errors.Is(err, meowmx.ErrVersionConflict) {
		t.Fatalf("err = %v, want conflict", err)
	}
	if v := must(s.StreamVersion(c, stream))(t); v != 0 {
		t.Fatalf("version after a conflicting batch = %d, want 0", v)
	}
	all := readAllWait(t, s, "", meowmx.Start, 1)
	if len(all) != 1 {
		t.Fatalf("store holds %d events, want 1", len(all))
	}
}

func testIdempotentRetry[TTx any](t *testing.T, h *Harness[TTx]) {
	s := h.NewStore(t, nil, true)
	c := ctx(t)
	stream := meowmx.NewStream("order", "1")
	batch := []meowmx.Event{
		{ID: uuid.New(), Type: "Placed", Data: json.RawMessage(`{"n":1}`)},
		{ID: uuid.New(), Type: "Paid", Data: json.RawMessage(`{"n":2}`), Metadata: json.RawMessage(`{"m":1}`)},
	}
	first := must(s.Append(c, stream, meowmx.NoStream, batch...))(t)
	again, err := s.Append(c, stream, meowmx.NoStream, batch...)
	if err != nil {
		t.Fatalf("retrying the same append: %v", err)
	}
	if len(again) != len(first) {
		t.Fatalf("retry returned %d events, want %d", len(again), len(first))
	}
	for i := range first {
		if again[i].ID != first[i].ID || again[i].Version != first[i].Version || again[i].Position != first[i].Position || again[i].Type != first[i].Type {
			t.Fatalf("retry returned %+v, first time %+v", again[i], first[i])
		}
		if !sameJSON(t, again[i].Data, batch[i].Data) {
			t.Fatalf("retry returned data %s, want %s", again[i].Data, batch[i].Data)
		}
	}
	if v := must(s.StreamVersion(c, stream))(t); v != 1 {
		t.Fatalf("version after a retried append = %d, want 1", v)
	}

	// More events after, then the same retry again: still recognised.
	must(s.Append(c, stream, 1, ev("Shipped", `{}`)))(t)
	if _, err := s.Append(c, stream, meowmx.NoStream, batch...); err != nil {
		t.Fatalf("retry after later appends: %v", err)
	}

	// With Any, and with an exact version.
	third := meowmx.Event{ID: uuid.New(), Type: "Delivered", Data: json.RawMessage(`{}`)}
	must(s.Append(c, stream, meowmx.Any, third))(t)
	if got, err := s.Append(c, stream, meowmx.Any, third); err != nil || got[0].Version != 3 {
		t.Fatalf("retry with Any: %v, %+v", err, got)
	}
	fourth := meowmx.Event{ID: uuid.New(), Type: "Returned", Data: json.RawMessage(`{}`)}
	must(s.Append(c, stream, 3, fourth))(t)
	if got, err := s.Append(c, stream, 3, fourth); err != nil || got[0].Version != 4 {
		t.Fatalf("retry with exact version: %v, %+v", err, got)
	}
	if v := must(s.StreamVersion(c, stream))(t); v != 4 {
		t.Fatalf("version = %d, want 4", v)
	}

	// The same ID at another place in the stream is not a retry.
	if _, err := s.Append(c, stream, 1, fourth); !errors.Is(err, meowmx.ErrDuplicateEventID) {
		t.Fatalf("same ID at another place: err = %v, want ErrDuplicateEventID", err)
	}
	// Nor is a batch that only starts the same.
	if _, err := s.Append(c, stream, meowmx.NoStream, batch[0], ev("Other", `{}`)); !errors.Is(err, meowmx.ErrDuplicateEventID) {
		t.Fatalf("partly repeated batch: err = %v, want ErrDuplicateEventID", err)
	}
	if v := must(s.StreamVersion(c, stream))(t); v != 4 {
		t.Fatalf("version after rejected retries = %d, want 4", v)
	}
}

func testDuplicateEventID[TTx any](t *testing.T, h *Harness[TTx]) {
	s := h.NewStore(t, nil, true)
	c := ctx(t)
	id := uuid.New()
	must(s.Append(c, meowmx.NewStream("order", "1"), meowmx.NoStream, meowmx.Event{ID: id, Type: "Placed", Data: json.RawMessage(`{}`)}))(t)

	// Used in another stream.
	_, err := s.Append(c, meowmx.NewStream("order", "2"), meowmx.NoStream, meowmx.Event{ID: id, Type: "Placed", Data: json.RawMessage(`{}`)})
	if !errors.Is(err, meowmx.ErrDuplicateEventID) || !strings.Contains(err.Error(), "order-1") {
		t.Fatalf("ID used in another stream: err = %v, want ErrDuplicateEventID naming order-1", err)
	}
	// As a later event of a batch: the whole batch is refused.
	_, err = s.Append(c, meowmx.NewStream("order", "3"), meowmx.NoStream,
		ev("Placed", `{}`), meowmx.Event{ID: id, Type: "Paid", Data: json.RawMessage(`{}`)})
	if !errors.Is(err, meowmx.ErrDuplicateEventID) {
		t.Fatalf("ID used later in a batch: err = %v, want ErrDuplicateEventID", err)
	}
	for _, sid := range []string{"2", "3"} {
		if v := must(s.StreamVersion(c, meowmx.NewStream("order", sid)))(t); v != -1 {
			t.Fatalf("stream order-%s has version %d after a refused append, want -1", sid, v)
		}
	}
	// Twice in one batch.
	dup := meowmx.Event{ID: uuid.New(), Type: "Placed", Data: json.RawMessage(`{}`)}
	if _, err := s.Append(c, meowmx.NewStream("order", "4"), meowmx.NoStream, dup, dup); !errors.Is(err, meowmx.ErrInvalidInput) {
		t.Fatalf("same ID twice in a batch: err = %v, want ErrInvalidInput", err)
	}
}

func testAppendTxCombined[TTx any](t *testing.T, h *Harness[TTx]) {
	s := h.NewStore(t, nil, true)
	put, get := h.ReadModel(t, s)
	c := ctx(t)

	// Rolled back: neither the events nor the row.
	tx := begin(t, h, s)
	must(s.AppendTx(c, tx, meowmx.NewStream("order", "1"), meowmx.NoStream, ev("Placed", `{}`), ev("Paid", `{}`)))(t)
	if err := put(c, tx, "order-1", 2); err != nil {
		t.Fatal(err)
	}
	if err := h.Rollback(c, tx); err != nil {
		t.Fatal(err)
	}
	if v := must(s.StreamVersion(c, meowmx.NewStream("order", "1")))(t); v != -1 {
		t.Fatalf("version after rollback = %d, want -1", v)
	}
	if _, found, err := get(c, "order-1"); err != nil || found {
		t.Fatalf("read-model row after rollback: found=%v err=%v", found, err)
	}

	// Committed: both.
	tx = begin(t, h, s)
	must(s.AppendTx(c, tx, meowmx.NewStream("order", "1"), meowmx.NoStream, ev("Placed", `{}`), ev("Paid", `{}`)))(t)
	if err := put(c, tx, "order-1", 2); err != nil {
		t.Fatal(err)
	}
	if err := h.Commit(c, tx); err != nil {
		t.Fatal(err)
	}
	if v := must(s.StreamVersion(c, meowmx.NewStream("order", "1")))(t); v != 1 {
		t.Fatalf("version after commit = %d, want 1", v)
	}
	if value, found, err := get(c, "order-1"); err != nil || !found || value != 2 {
		t.Fatalf("read-model row after commit: %d found=%v err=%v", value, found, err)
	}

	// A conflict inside the transaction writes nothing of the batch.
	tx = begin(t, h, s)
	if _, err := s.AppendTx(c, tx, meowmx.NewStream("order", "1"), 0, ev("Shipped", `{}`)); !errors.Is(err, meowmx.ErrVersionConflict) {
		t.Fatalf("conflict in a transaction: err = %v", err)
	}
	if err := h.Rollback(c, tx); err != nil {
		t.Fatal(err)
	}
	if v := must(s.StreamVersion(c, meowmx.NewStream("order", "1")))(t); v != 1 {
		t.Fatalf("version after a conflict = %d, want 1", v)
	}
}

func testAppendTxSeesOwnWrites[TTx any](t *testing.T, h *Harness[TTx]) {
	s := h.NewStore(t, nil, true)
	c := ctx(t)
	stream := meowmx.NewStream("cart", "9")
	tx := begin(t, h, s)
	must(s.AppendTx(c, tx, stream, meowmx.NoStream, ev("Opened", `{}`)))(t)
	must(s.AppendTx(c, tx, stream, 0, ev("ItemAdded", `{"sku":"x"}`)))(t)
	if v := must(s.StreamVersionTx(c, tx, stream))(t); v != 1 {
		t.Fatalf("version in the transaction = %d, want 1", v)
	}
	if events := must(s.ReadStreamTx(c, tx, stream, nil))(t); len(events) != 2 {
		t.Fatalf("read %d events in the transaction, want 2", len(events))
	}
	if err := h.Commit(c, tx); err != nil {
		t.Fatal(err)
	}
	if v := must(s.StreamVersion(c, stream))(t); v != 1 {
		t.Fatalf("version after commit = %d, want 1", v)
	}
}

func testReadStream[TTx any](t *testing.T, h *Harness[TTx]) {
	s := h.NewStore(t, nil, true)
	c := ctx(t)
	stream := meowmx.NewStream("order", "1")
	var batch []meowmx.Event
	for i := range 10 {
		batch = append(batch, ev("Step", fmt.Sprintf(`{"i":%d}`, i)))
	}
	must(s.Append(c, stream, meowmx.NoStream, batch...))(t)
	must(s.Append(c, meowmx.NewStream("order", "2"), meowmx.NoStream, ev("Other", `{}`)))(t)

	versions := func(events []meowmx.RecordedEvent) []int64 {
		var out []int64
		for _, e := range events {
			out = append(out, e.Version)
		}
		return out
	}
	cases := []struct {
		opts *meowmx.ReadStreamOpts
		want []int64
	}{
		{nil, []int64{0, 1, 2, 3, 4, 5, 6, 7, 8, 9}},
		{&meowmx.ReadStreamOpts{From: 7}, []int64{7, 8, 9}},
		{&meowmx.ReadStreamOpts{From: 2, Limit: 3}, []int64{2, 3, 4}},
		{&meowmx.ReadStreamOpts{From: 10}, nil},
		{&meowmx.ReadStreamOpts{From: meowmx.StreamEnd, Backward: true, Limit: 3}, []int64{9, 8, 7}},
		{&meowmx.ReadStreamOpts{From: 4, Backward: true}, []int64{4, 3, 2, 1, 0}},
		{&meowmx.ReadStreamOpts{From: 0, Backward: true}, []int64{0}},
		{&meowmx.ReadStreamOpts{From: 100, Backward: true, Limit: 2}, []int64{9, 8}},
	}
	for _, tc := range cases {
		got := versions(must(s.ReadStream(c, stream, tc.opts))(t))
		if !slices.Equal(got, tc.want) {
			t.Errorf("ReadStream(%+v) versions = %v, want %v", tc.opts, got, tc.want)
		}
	}
	last := must(s.LastEvent(c, stream))(t)
	if last.Version != 9 || !sameJSON(t, last.Data, []byte(`{"i":9}`)) {
		t.Fatalf("last event = version %d %s", last.Version, last.Data)
	}
	if _, err := s.LastEvent(c, meowmx.NewStream("order", "none")); !errors.Is(err, meowmx.ErrStreamNotFound) {
		t.Fatalf("last event of an empty stream: err = %v, want ErrStreamNotFound", err)
	}
	if events := must(s.ReadStream(c, meowmx.NewStream("order", "none"), nil))(t); len(events) != 0 {
		t.Fatalf("empty stream read %d events", len(events))
	}
	if v := must(s.StreamVersion(c, stream))(t); v != 9 {
		t.Fatalf("version = %d, want 9", v)
	}
	if v := must(s.StreamVersion(c, meowmx.NewStream("order", "none")))(t); v != -1 {
		t.Fatalf("version of an empty stream = %d, want -1", v)
	}
}

func testReadCategory[TTx any](t *testing.T, h *Harness[TTx]) {
	s := h.NewStore(t, nil, true)
	c := ctx(t)
	must(s.Append(c, meowmx.NewStream("order", "1"), meowmx.NoStream, ev("Placed", `{}`), ev("Paid", `{}`)))(t)
	must(s.Append(c, meowmx.NewStream("invoice", "1"), meowmx.NoStream, ev("Issued", `{}`)))(t)
	must(s.Append(c, meowmx.NewStream("order", "2"), meowmx.NoStream, ev("Placed", `{}`)))(t)
	must(s.Append(c, meowmx.NewStream("orders", "3"), meowmx.NoStream, ev("Placed", `{}`)))(t)

	orders := readAllWait(t, s, "order", meowmx.Start, 3)
	var got []string
	for _, e := range orders {
		got = append(got, e.Stream.String()+":"+e.Type)
	}
	want := []string{"order-1:Placed", "order-1:Paid", "order-2:Placed"}
	if !slices.Equal(got, want) {
		t.Fatalf("category order = %v, want %v", got, want)
	}
	// After a position, with a limit.
	page := must(s.ReadCategory(c, "order", orders[0].Position, &meowmx.ReadOpts{Limit: 1}))(t)
	if len(page) != 1 || page[0].Type != "Paid" {
		t.Fatalf("page after the first event = %+v", page)
	}
	// Filtered on types.
	placed := must(s.ReadCategory(c, "order", meowmx.Start, &meowmx.ReadOpts{Types: []string{"Placed", "Shipped"}}))(t)
	if len(placed) != 2 || placed[0].Stream.ID != "1" || placed[1].Stream.ID != "2" {
		t.Fatalf("Placed events = %+v", placed)
	}
	all := must(s.ReadAll(c, meowmx.Start, &meowmx.ReadOpts{Types: []string{"Issued"}}))(t)
	if len(all) != 1 || all[0].Stream.Category != "invoice" {
		t.Fatalf("ReadAll of Issued = %+v", all)
	}
	if _, err := s.ReadCategory(c, "", meowmx.Start, nil); !errors.Is(err, meowmx.ErrInvalidInput) {
		t.Fatalf("empty category: err = %v", err)
	}
}

// EventsIterator: Events and CategoryEvents yield every event in global
// order across pages, stop when the loop breaks, and yield an error.
func testEventsIterator[TTx any](t *testing.T, h *Harness[TTx]) {
	s := h.NewStore(t, nil, true)
	c := ctx(t)
	appendN(t, s, "it", 3, 25)
	appendN(t, s, "other", 1, 5)
	want := readAllWait(t, s, "", meowmx.Start, 30)
	var got []meowmx.RecordedEvent
	for event, err := range s.Events(c, meowmx.Start, &meowmx.ReadOpts{Limit: 7}) {
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, event)
	}
	if len(got) != len(want) {
		t.Fatalf("Events yielded %d events, want %d", len(got), len(want))
	}
	for i := range got {
		if got[i].Position != want[i].Position {
			t.Fatalf("event %d at %s, want %s", i, got[i].Position, want[i].Position)
		}
	}
	n := 0
	for event, err := range s.CategoryEvents(c, "it", want[3].Position, &meowmx.ReadOpts{Limit: 4}) {
		if err != nil || event.Stream.Category != "it" {
			t.Fatalf("CategoryEvents yielded %+v, %v", event, err)
		}
		if n++; n == 10 {
			break
		}
	}
	if n != 10 {
		t.Fatalf("CategoryEvents yielded %d events before the break, want 10", n)
	}
	yielded := 0
	for _, err := range s.CategoryEvents(c, "bad-category", meowmx.Start, nil) {
		yielded++
		if !errors.Is(err, meowmx.ErrInvalidInput) {
			t.Fatalf("CategoryEvents of a bad category: %v, want ErrInvalidInput", err)
		}
	}
	if yielded != 1 {
		t.Fatalf("CategoryEvents of a bad category yielded %d times, want one error", yielded)
	}
}

func testReadAllPaging[TTx any](t *testing.T, h *Harness[TTx]) {
	s := h.NewStore(t, nil, true)
	c := ctx(t)
	var appended []meowmx.RecordedEvent
	for i := range 25 {
		stream := meowmx.NewStream("item", fmt.Sprint(i%4))
		appended = append(appended, must(s.Append(c, stream, meowmx.Any, ev("Touched", fmt.Sprintf(`{"i":%d}`, i))))(t)...)
	}
	all := readAllWait(t, s, "", meowmx.Start, 25)
	if len(all) != 25 {
		t.Fatalf("read %d events, want 25", len(all))
	}
	for i := range all {
		if all[i].ID != appended[i].ID {
			t.Fatalf("event %d of the global order is %s, appended %s", i, all[i].ID, appended[i].ID)
		}
	}
	// Pages of 7 give the same sequence.
	var paged []meowmx.RecordedEvent
	after := meowmx.Start
	for {
		page := must(s.ReadAll(c, after, &meowmx.ReadOpts{Limit: 7}))(t)
		if len(page) > 7 {
			t.Fatalf("page of %d events, limit 7", len(page))
		}
		if len(page) == 0 {
			break
		}
		paged = append(paged, page...)
		after = page[len(page)-1].Position
		// The position's string form resumes at the same place.
		parsed, err := meowmx.ParsePosition(after.String())
		if err != nil || parsed != after {
			t.Fatalf("position %s parsed back as %s, %v", after, parsed, err)
		}
		after = parsed
	}
	if len(paged) != 25 {
		t.Fatalf("paging read %d events, want 25", len(paged))
	}
	if rest := must(s.ReadAll(c, all[24].Position, nil))(t); len(rest) != 0 {
		t.Fatalf("read %d events after the last one", len(rest))
	}
}

func testLargeBatch[TTx any](t *testing.T, h *Harness[TTx]) {
	s := h.NewStore(t, nil, true)
	c := ctx(t)
	stream := meowmx.NewStream("import", "big")
	batch := make([]meowmx.Event, 1000)
	for i := range batch {
		batch[i] = ev("Row", fmt.Sprintf(`{"row":%d,"payload":"%s"}`, i, strings.Repeat("x", 100)))
	}
	recorded := must(s.Append(c, stream, meowmx.NoStream, batch...))(t)
	if len(recorded) != 1000 || recorded[999].Version != 999 {
		t.Fatalf("recorded %d events", len(recorded))
	}
	for i := 1; i < len(recorded); i++ {
		if recorded[i].Position.Compare(recorded[i-1].Position) <= 0 || recorded[i].Version != int64(i) {
			t.Fatalf("event %d: position %s after %s, version %d", i, recorded[i].Position, recorded[i-1].Position, recorded[i].Version)
		}
	}
	read := readAllWait(t, s, "import", meowmx.Start, 1000)
	for i := range read {
		if read[i].Version != int64(i) {
			t.Fatalf("global order puts version %d at %d", read[i].Version, i)
		}
		// The positions and IDs Append returned are the stored ones.
		if read[i].Position != recorded[i].Position || read[i].ID != recorded[i].ID {
			t.Fatalf("event %d: recorded at %s with ID %s, stored at %s with ID %s",
				i, recorded[i].Position, recorded[i].ID, read[i].Position, read[i].ID)
		}
	}
}

func testBadInput[TTx any](t *testing.T, h *Harness[TTx]) {
	s := h.NewStore(t, &meowmx.Config{MaxEventSize: 3000}, true)
	c := ctx(t)
	good := meowmx.NewStream("order", "1")
	cases := []struct {
		name     string
		stream   meowmx.Stream
		expected meowmx.ExpectedVersion
		events   []meowmx.Event
		want     string
	}{
		{"empty category", meowmx.NewStream("", "1"), meowmx.Any, []meowmx.Event{ev("A", `{}`)}, "empty category"},
		{"empty ID", meowmx.NewStream("order", ""), meowmx.Any, []meowmx.Event{ev("A", `{}`)}, "empty ID"},
		{"separator in category", meowmx.NewStream("or-der", "1"), meowmx.Any, []meowmx.Event{ev("A", `{}`)}, "separator"},
		{"invalid UTF-8 ID", meowmx.NewStream("order", "\xff"), meowmx.Any, []meowmx.Event{ev("A", `{}`)}, "UTF-8"},
		{"NUL in ID", meowmx.NewStream("order", "a\x00b"), meowmx.Any, []meowmx.Event{ev("A", `{}`)}, "NUL"},
		{"no events", good, meowmx.Any, nil, "no events"},
		{"empty type", good, meowmx.Any, []meowmx.Event{ev("", `{}`)}, "empty event type"},
		{"invalid JSON data", good, meowmx.Any, []meowmx.Event{ev("A", `{"a":`)}, "data is not valid JSON"},
		{"missing data", good, meowmx.Any, []meowmx.Event{{Type: "A"}}, "no data"},
		{"invalid JSON metadata", good, meowmx.Any, []meowmx.Event{{Type: "A", Data: json.RawMessage(`{}`), Metadata: json.RawMessage(`nope`)}}, "metadata is not valid JSON"},
		{"too large", good, meowmx.Any, []meowmx.Event{ev("A", `{"x":"`+strings.Repeat("y", 3000)+`"}`)}, "over the limit"},
		{"bad expected version", good, meowmx.ExpectedVersion(-7), []meowmx.Event{ev("A", `{}`)}, "expected version"},
		{"bad event in a batch", good, meowmx.Any, []meowmx.Event{ev("A", `{}`), ev("B", `[1,`)}, "event 1"},
		// What SQLite would store and PostgreSQL's jsonb, text and indexes
		// refuse is refused by both, before anything is written.
		{"NUL escape in data", good, meowmx.Any, []meowmx.Event{ev("A", `{"a":"x\u0000y"}`)}, `\u0000`},
		{"NUL escape in a key", good, meowmx.Any, []meowmx.Event{ev("A", `{"\u0000":1}`)}, `\u0000`},
		{"NUL escape in metadata", good, meowmx.Any, []meowmx.Event{{Type: "A", Data: json.RawMessage(`{}`), Metadata: json.RawMessage(`{"m":"\u0000"}`)}}, "metadata"},
		{"lone high surrogate", good, meowmx.Any, []meowmx.Event{ev("A", `["\ud800"]`)}, "surrogate"},
		{"lone low surrogate in metadata", good, meowmx.Any, []meowmx.Event{{Type: "A", Data: json.RawMessage(`{}`), Metadata: json.RawMessage(`"\udc00"`)}}, "surrogate"},
		{"invalid UTF-8 in a JSON string", good, meowmx.Any, []meowmx.Event{ev("A", "{\"a\":\"\xff\xfe\"}")}, "UTF-8"},
		{"invalid UTF-8 in a JSON key", good, meowmx.Any, []meowmx.Event{ev("A", "{\"\xc3\":1}")}, "UTF-8"},
		{"number out of numeric's range", good, meowmx.Any, []meowmx.Event{ev("A", `{"n":1e1000000}`)}, "out of range"},
		{"JSON nested too deeply", good, meowmx.Any, []meowmx.Event{ev("A", strings.Repeat("[", 1001)+strings.Repeat("]", 1001))}, "nested"},
		{"category too long", meowmx.NewStream(strings.Repeat("c", meowmx.MaxCategoryLength+1), "1"), meowmx.Any, []meowmx.Event{ev("A", `{}`)}, "over the limit"},
		{"stream ID too long", meowmx.NewStream("order", strings.Repeat("i", meowmx.MaxStreamIDLength+1)), meowmx.Any, []meowmx.Event{ev("A", `{}`)}, "over the limit"},
		{"stream ID of 3 KB", meowmx.NewStream("order", strings.Repeat("é", 1500)), meowmx.Any, []meowmx.Event{ev("A", `{}`)}, "over the limit"},
		{"event type too long", good, meowmx.Any, []meowmx.Event{ev(strings.Repeat("T", meowmx.MaxTypeLength+1), `{}`)}, "over the limit"},
		{"NUL in event type", good, meowmx.Any, []meowmx.Event{ev("A\x00", `{}`)}, "NUL"},
	}
	for _, tc := range cases {
		_, err := s.Append(c, tc.stream, tc.expected, tc.events...)
		if !errors.Is(err, meowmx.ErrInvalidInput) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err = %v, want ErrInvalidInput mentioning %q", tc.name, err, tc.want)
		}
		if tooLarge := errors.Is(err, meowmx.ErrEventTooLarge); tooLarge != (tc.name == "too large") {
			t.Errorf("%s: errors.Is(err, ErrEventTooLarge) = %v", tc.name, tooLarge)
		}
		tx := begin(t, h, s)
		_, err = s.AppendTx(c, tx, tc.stream, tc.expected, tc.events...)
		if !errors.Is(err, meowmx.ErrInvalidInput) {
			t.Errorf("%s in a transaction: err = %v, want ErrInvalidInput", tc.name, err)
		}
		if err := h.Commit(c, tx); err != nil {
			t.Fatalf("%s: the transaction is unusable after invalid input: %v", tc.name, err)
		}
	}
	if _, err := meowmx.ParsePosition("12"); !errors.Is(err, meowmx.ErrInvalidInput) {
		t.Errorf("malformed position: err = %v", err)
	}
	// Text filters and names: refused, not "nothing found" on one driver
	// and a database error on the other.
	for _, bad := range []string{"", "a\x00b", "\xff", strings.Repeat("n", 256)} {
		if _, err := s.ReadAll(c, meowmx.Start, &meowmx.ReadOpts{Types: []string{bad}}); !errors.Is(err, meowmx.ErrInvalidInput) {
			t.Errorf("ReadAll with type %.20q: err = %v, want ErrInvalidInput", bad, err)
		}
		if _, err := s.ReadCategory(c, "order", meowmx.Start, &meowmx.ReadOpts{Types: []string{bad}}); !errors.Is(err, meowmx.ErrInvalidInput) {
			t.Errorf("ReadCategory with type %.20q: err = %v, want ErrInvalidInput", bad, err)
		}
		if _, err := s.ReadCategory(c, bad, meowmx.Start, nil); !errors.Is(err, meowmx.ErrInvalidInput) {
			t.Errorf("ReadCategory of %.20q: err = %v, want ErrInvalidInput", bad, err)
		}
		if bad != "" { // "" lists every subscription
			if _, err := s.SubscriptionStatuses(c, bad); !errors.Is(err, meowmx.ErrInvalidInput) {
				t.Errorf("SubscriptionStatuses(%.20q): err = %v, want ErrInvalidInput", bad, err)
			}
		}
		if err := s.ResetSubscription(c, bad, meowmx.FromStart); !errors.Is(err, meowmx.ErrInvalidInput) {
			t.Errorf("ResetSubscription(%.20q): err = %v, want ErrInvalidInput", bad, err)
		}
		if _, err := s.ParkedEvents(c, bad); !errors.Is(err, meowmx.ErrInvalidInput) {
			t.Errorf("ParkedEvents(%.20q): err = %v, want ErrInvalidInput", bad, err)
		}
		if _, err := s.ReplayParked(c, bad); !errors.Is(err, meowmx.ErrInvalidInput) {
			t.Errorf("ReplayParked(%.20q): err = %v, want ErrInvalidInput", bad, err)
		}
	}
	// An expected version no stream can have is a conflict on every driver.
	for _, expected := range []meowmx.ExpectedVersion{math.MaxInt64, math.MaxInt64 - 1} {
		var vc *meowmx.VersionConflictError
		if _, err := s.Append(c, good, expected, ev("A", `{}`), ev("B", `{}`)); !errors.As(err, &vc) || vc.Actual != -1 || vc.Expected != expected {
			t.Errorf("append expecting version %d: err = %v, want a conflict with the stream at -1", int64(expected), err)
		}
		tx := begin(t, h, s)
		if _, err := s.AppendTx(c, tx, good, expected, ev("A", `{}`)); !errors.As(err, &vc) {
			t.Errorf("AppendTx expecting version %d: err = %v, want a conflict", int64(expected), err)
		}
		if err := h.Rollback(c, tx); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.ReadAll(c, meowmx.Start, &meowmx.ReadOpts{Limit: -1}); !errors.Is(err, meowmx.ErrInvalidInput) {
		t.Errorf("negative limit: err = %v", err)
	}
	if _, err := s.ReadStream(c, good, &meowmx.ReadStreamOpts{From: -5}); !errors.Is(err, meowmx.ErrInvalidInput) {
		t.Errorf("negative version: err = %v", err)
	}
	// Nothing was written by any of it.
	if all := must(s.ReadAll(c, meowmx.Start, nil))(t); len(all) != 0 {
		t.Fatalf("bad input wrote %d events", len(all))
	}
	if v := must(s.StreamVersion(c, good))(t); v != -1 {
		t.Fatalf("bad input left version %d", v)
	}
	// The longest category and ID are stored, indexed and read back.
	longest := meowmx.NewStream(strings.Repeat("c", meowmx.MaxCategoryLength), strings.Repeat("é", meowmx.MaxStreamIDLength/2))
	must(s.Append(c, longest, meowmx.NoStream, ev(strings.Repeat("T", meowmx.MaxTypeLength), `{"a":"\ud83d\ude00"}`)))(t)
	if got := must(s.ReadStream(c, longest, nil))(t); len(got) != 1 || got[0].Stream != longest {
		t.Fatalf("the longest stream read back as %d events", len(got))
	}
	// Just under the limit is fine (data + metadata).
	data := `{"x":"` + strings.Repeat("y", 2980) + `"}`
	if _, err := s.Append(c, good, meowmx.NoStream, meowmx.Event{Type: "A", Data: json.RawMessage(data), Metadata: json.RawMessage(`{"m":1}`)}); err != nil {
		t.Fatalf("event under the limit: %v", err)
	}
}

func testClosedStore[TTx any](t *testing.T, h *Harness[TTx]) {
	s := h.NewStore(t, nil, true)
	c := ctx(t)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	stream := meowmx.NewStream("order", "1")
	if _, err := s.Append(c, stream, meowmx.Any, ev("A", `{}`)); !errors.Is(err, meowmx.ErrClosed) {
		t.Fatalf("append on a closed store: err = %v", err)
	}
	if _, err := s.ReadStream(c, stream, nil); !errors.Is(err, meowmx.ErrClosed) {
		t.Fatalf("read on a closed store: err = %v", err)
	}
	if _, err := s.ReadAll(c, meowmx.Start, nil); !errors.Is(err, meowmx.ErrClosed) {
		t.Fatalf("read all on a closed store: err = %v", err)
	}
	if err := s.Migrate(c); !errors.Is(err, meowmx.ErrClosed) {
		t.Fatalf("migrate on a closed store: err = %v", err)
	}
}

func testCancelledContext[TTx any](t *testing.T, h *Harness[TTx]) {
	s := h.NewStore(t, nil, true)
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	stream := meowmx.NewStream("order", "1")
	if _, err := s.Append(cancelled, stream, meowmx.Any, ev("A", `{}`)); !errors.Is(err, context.Canceled) {
		t.Fatalf("append with a cancelled context: err = %v", err)
	}
	if _, err := s.ReadStream(cancelled, stream, nil); !errors.Is(err, context.Canceled) {
		t.Fatalf("read with a cancelled context: err = %v", err)
	}
	if v := must(s.StreamVersion(ctx(t), stream))(t); v != -1 {
		t.Fatalf("a cancelled append wrote: version %d", v)
	}
}

// testRaceOnOneStream: 16 goroutines append to one stream, each expecting
// the version it last saw. Exactly one wins each version.
func testRaceOnOneStream[TTx any](t *testing.T, h *Harness[TTx]) {
	s := h.NewStore(t, nil, true)
	c := ctx(t)
	stream := meowmx.NewStream("counter", "hot")
	const writers, total = 16, 200
	var (
		mu      sync.Mutex
		winners = map[int64]uuid.UUID{} // version -> event ID
	)
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			seen := int64(-1)
			for {
				mu.Lock()
				done := len(winners) >= total
				mu.Unlock()
				if done {
					return
				}
				id := uuid.New()
				got, err := s.Append(c, stream, meowmx.ExpectedVersion(seen), meowmx.Event{ID: id, Type: "Incremented", Data: json.RawMessage(fmt.Sprintf(`{"writer":%d}`, w))})
				var vc *meowmx.VersionConflictError
				switch {
				case errors.As(err, &vc):
					if vc.Actual <= seen {
						t.Errorf("conflict reports version %d, not past the %d expected", vc.Actual, seen)
						return
					}
					seen = vc.Actual
				case err != nil:
					t.Errorf("writer %d: %v", w, err)
					return
				default:
					if got[0].Version != seen+1 {
						t.Errorf("writer %d expected %d and recorded version %d", w, seen, got[0].Version)
					}
					mu.Lock()
					if prev, dup := winners[got[0].Version]; dup {
						t.Errorf("version %d won twice: %s and %s", got[0].Version, prev, id)
					}
					winners[got[0].Version] = id
					mu.Unlock()
					seen = got[0].Version
				}
			}
		})
	}
	wg.Wait()
	events := must(s.ReadStream(c, stream, nil))(t)
	if len(events) != len(winners) || len(events) < total {
		t.Fatalf("stream holds %d events, %d appends won, want at least %d", len(events), len(winners), total)
	}
	for i, e := range events {
		if e.Version != int64(i) {
			t.Fatalf("event %d has version %d: a gap or duplicate", i, e.Version)
		}
		if winners[e.Version] != e.ID {
			t.Fatalf("version %d holds %s, its winner recorded %s", e.Version, e.ID, winners[e.Version])
		}
	}
}

// testOutOfOrderCommit: a transaction that took a lower id (or, on SQLite,
// the write lock) first commits after a later one; a paging reader that has
// read in between still sees both.
func testOutOfOrderCommit[TTx any](t *testing.T, h *Harness[TTx]) {
	s := h.NewStore(t, nil, true)
	c := ctx(t)
	must(s.Append(c, meowmx.NewStream("seed", "0"), meowmx.NoStream, ev("Seeded", `{}`)))(t)
	seen := readAllWait(t, s, "", meowmx.Start, 1)
	after := seen[len(seen)-1].Position

	slow := begin(t, h, s)
	must(s.AppendTx(c, slow, meowmx.NewStream("slow", "1"), meowmx.NoStream, ev("Slow", `{}`)))(t)

	fastDone := make(chan error, 1)
	go func() {
		_, err := s.Append(c, meowmx.NewStream("fast", "1"), meowmx.NoStream, ev("Fast", `{}`))
		fastDone <- err
	}()
	if h.ConcurrentWriters {
		// The later transaction commits while the earlier one is open, and
		// the reader pages in between: it must not move past the slow one.
		if err := <-fastDone; err != nil {
			t.Fatal(err)
		}
		page := must(s.ReadAll(c, after, nil))(t)
		if len(page) != 0 {
			t.Fatalf("read %s while an older transaction is open: it would skip it", page[0].Type)
		}
		for _, e := range page {
			after = e.Position
		}
	}
	if err := h.Commit(c, slow); err != nil {
		t.Fatal(err)
	}
	if !h.ConcurrentWriters {
		if err := <-fastDone; err != nil {
			t.Fatal(err)
		}
	}
	rest := readAllWait(t, s, "", after, 2)
	var types []string
	for _, e := range rest {
		types = append(types, e.Type)
	}
	slices.Sort(types)
	if !slices.Equal(types, []string{"Fast", "Slow"}) {
		t.Fatalf("after the out-of-order commit the reader saw %v, want both", types)
	}
}

// testConcurrentStreamsOrder: concurrent writers on several streams; every
// stream's events appear in the global order in version order, and paging
// readers running meanwhile see every event exactly once.
func testConcurrentStreamsOrder[TTx any](t *testing.T, h *Harness[TTx]) {
	s := h.NewStore(t, nil, true)
	c := ctx(t)
	const writers, perWriter = 8, 25
	stop := make(chan struct{})
	readerDone := make(chan []meowmx.RecordedEvent)
	go func() {
		var got []meowmx.RecordedEvent
		after := meowmx.Start
		for {
			page, err := s.ReadAll(c, after, &meowmx.ReadOpts{Limit: 10})
			if err != nil {
				t.Error(err)
				readerDone <- got
				return
			}
			got = append(got, page...)
			if len(page) > 0 {
				after = page[len(page)-1].Position
				continue
			}
			select {
			case <-stop:
				readerDone <- got
				return
			default:
				time.Sleep(time.Millisecond)
			}
		}
	}()
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			for i := range perWriter {
				stream := meowmx.NewStream("shared", fmt.Sprint((w+i)%3))
				if _, err := s.Append(c, stream, meowmx.Any, ev("E", fmt.Sprintf(`{"w":%d,"i":%d}`, w, i))); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	// Let the reader finish what is visible, then stop it.
	final := readAllWait(t, s, "", meowmx.Start, writers*perWriter)
	close(stop)
	live := <-readerDone
	live = append(live, must(s.ReadAll(c, lastPosition(live), &meowmx.ReadOpts{Limit: 10000}))(t)...)
	for name, got := range map[string][]meowmx.RecordedEvent{"live reader": live, "final read": final} {
		if len(got) != writers*perWriter {
			t.Fatalf("%s saw %d events, want %d", name, len(got), writers*perWriter)
		}
		ids := map[uuid.UUID]bool{}
		next := map[meowmx.Stream]int64{}
		for _, e := range got {
			if ids[e.ID] {
				t.Fatalf("%s saw %s twice", name, e.ID)
			}
			ids[e.ID] = true
			if e.Version != next[e.Stream] {
				t.Fatalf("%s saw %s version %d where %d was next", name, e.Stream, e.Version, next[e.Stream])
			}
			next[e.Stream]++
		}
	}
}

func lastPosition(events []meowmx.RecordedEvent) meowmx.Position {
	if len(events) == 0 {
		return meowmx.Start
	}
	return events[len(events)-1].Position
}

func testHorizon[TTx any](t *testing.T, h *Harness[TTx]) {
	s := h.NewStore(t, nil, true)
	held, err := s.Horizon(ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	if !h.ConcurrentWriters && held != nil {
		t.Fatalf("SQLite reported a horizon holder: %+v", held)
	}
}

func testArbitraryStreamIDs[TTx any](t *testing.T, h *Harness[TTx]) {
	s := h.NewStore(t, nil, true)
	c := ctx(t)
	for _, id := range []string{"42", uuid.NewString(), "user@example.com", "a-b-c", "with space", "ünïcödé/🐈", "x"} {
		stream := meowmx.NewStream("thing", id)
		must(s.Append(c, stream, meowmx.NoStream, ev("Made", `{}`)))(t)
		events := must(s.ReadStream(c, stream, nil))(t)
		if len(events) != 1 || events[0].Stream != stream {
			t.Fatalf("stream %q read back as %+v", id, events)
		}
		parsed, err := meowmx.ParseStream(stream.String())
		if err != nil || parsed != stream {
			t.Fatalf("ParseStream(%q) = %+v, %v", stream.String(), parsed, err)
		}
	}
}

func testMetadataOptional[TTx any](t *testing.T, h *Harness[TTx]) {
	s := h.NewStore(t, nil, true)
	c := ctx(t)
	stream := meowmx.NewStream("doc", "1")
	must(s.Append(c, stream, meowmx.NoStream,
		meowmx.Event{Type: "A", Data: json.RawMessage(`null`)},
		meowmx.Event{Type: "B", Data: json.RawMessage(`[1,2,3]`), Metadata: json.RawMessage(`{"causation_id":"x"}`)},
		meowmx.Event{Type: "C", Data: json.RawMessage(`"text"`), Metadata: json.RawMessage(`null`)},
	))(t)
	events := must(s.ReadStream(c, stream, nil))(t)
	if events[0].Metadata != nil || !sameJSON(t, events[0].Data, []byte(`null`)) {
		t.Fatalf("event A: data %s metadata %s", events[0].Data, events[0].Metadata)
	}
	if !sameJSON(t, events[1].Metadata, []byte(`{"causation_id":"x"}`)) || !sameJSON(t, events[1].Data, []byte(`[1,2,3]`)) {
		t.Fatalf("event B: data %s metadata %s", events[1].Data, events[1].Metadata)
	}
	if !sameJSON(t, events[2].Data, []byte(`"text"`)) {
		t.Fatalf("event C: data %s", events[2].Data)
	}
}

func testReadTxVariants[TTx any](t *testing.T, h *Harness[TTx]) {
	s := h.NewStore(t, nil, true)
	c := ctx(t)
	must(s.Append(c, meowmx.NewStream("order", "1"), meowmx.NoStream, ev("Placed", `{}`)))(t)
	readAllWait(t, s, "", meowmx.Start, 1)
	tx := begin(t, h, s)
	if last := must(s.LastEventTx(c, tx, meowmx.NewStream("order", "1")))(t); last.Type != "Placed" {
		t.Fatalf("LastEventTx = %+v", last)
	}
	testdb.Eventually(t, func() (bool, string) {
		all := must(s.ReadAllTx(c, tx, meowmx.Start, nil))(t)
		cat := must(s.ReadCategoryTx(c, tx, "order", meowmx.Start, nil))(t)
		return len(all) == 1 && len(cat) == 1, fmt.Sprintf("ReadAllTx %d events, ReadCategoryTx %d, want 1 each", len(all), len(cat))
	})
}

func testPositionsIncrease[TTx any](t *testing.T, h *Harness[TTx]) {
	s := h.NewStore(t, nil, true)
	c := ctx(t)
	var last meowmx.Position
	for i := range 20 {
		got := must(s.Append(c, meowmx.NewStream("seq", fmt.Sprint(i%2)), meowmx.Any, ev("E", `{}`), ev("F", `{}`)))(t)
		for _, e := range got {
			if e.Position.Compare(last) <= 0 {
				t.Fatalf("position %s after %s", e.Position, last)
			}
			last = e.Position
		}
	}
}

// OpenStore is what Harness.NewStore does on every driver: a quiet store of
// driver with cfg (nil for the defaults) in schema, closed when the test
// ends, migrated if migrate.
func OpenStore[TTx any](t *testing.T, driver meowmxdriver.Driver[TTx], cfg *meowmx.Config, schema string, migrate bool) *meowmx.Store[TTx] {
	t.Helper()
	c := meowmx.Config{}
	if cfg != nil {
		c = *cfg
	}
	c.Schema = schema
	c.Logger = slog.New(slog.DiscardHandler)
	store, err := meowmx.New(driver, &c)
	if err != nil {
		t.Fatal(err)
	}
	// Closed before what the test opened before it: nothing of it runs on
	// a closed database.
	t.Cleanup(func() { store.Close() })
	if migrate {
		if err := store.Migrate(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	return store
}
