package storetest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/google/uuid"

	"github.com/meowmx/meowmx"
	"github.com/meowmx/meowmx/internal/testdb"
	"github.com/meowmx/meowmx/internal/testsignal"
	"github.com/meowmx/meowmx/meowmxdriver"
)

func groupTests[TTx any]() map[string]func(t *testing.T, h *Harness[TTx]) {
	return map[string]func(t *testing.T, h *Harness[TTx]){
		"GroupedAppends":             testGroupedAppends[TTx],
		"GroupedConflictFailsAlone":  testGroupedConflict[TTx],
		"GroupedDuplicateFailsAlone": testGroupedDuplicate[TTx],
		"GroupedManyWriters":         testGroupedManyWriters[TTx],
		"GroupedSharedEventID":       testGroupedSharedEventID[TTx],
		"GroupedLaterDuplicate":      testGroupedLaterDuplicate[TTx],
	}
}

// GatedDriver wraps a driver so that a test can hold appends in flight, and
// records the groups the store hands to AppendGroup.
type GatedDriver[TTx any] struct {
	meowmxdriver.Driver[TTx]

	mu      sync.Mutex
	holding int           // Append calls still to hold
	held    chan struct{} // one per held Append as it is held
	release chan struct{} // a value lets one go
	groups  []int         // sizes of the groups recorded
	alone   int           // Append calls not held: appends made alone
}

// NewGatedDriver returns inner, gated.
func NewGatedDriver[TTx any](inner meowmxdriver.Driver[TTx]) *GatedDriver[TTx] {
	return &GatedDriver[TTx]{Driver: inner}
}

// Executor returns the inner driver's executor, gated.
func (d *GatedDriver[TTx]) Executor() meowmxdriver.Executor {
	return &gatedExecutor[TTx]{Executor: d.Driver.Executor(), d: d}
}

// Hold makes the next n Append calls wait for Release; it returns the
// channel that receives one value per call as it starts waiting.
func (d *GatedDriver[TTx]) Hold(n int) <-chan struct{} {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.holding, d.held, d.release = n, make(chan struct{}, n), make(chan struct{})
	return d.held
}

// Release lets one held call go on, waiting until one takes it.
func (d *GatedDriver[TTx]) Release() { d.release <- struct{}{} }

// Alone returns how many appends were made alone (with Append) so far,
// besides the held ones.
func (d *GatedDriver[TTx]) Alone() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.alone
}

// Groups returns the sizes of the groups recorded so far.
func (d *GatedDriver[TTx]) Groups() []int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]int(nil), d.groups...)
}

type gatedExecutor[TTx any] struct {
	meowmxdriver.Executor
	d *GatedDriver[TTx]
}

// SingleWriter is the inner executor's.
func (e *gatedExecutor[TTx]) SingleWriter() bool { return singleWriter(e.Executor) }

func singleWriter(exec meowmxdriver.Executor) bool {
	w, ok := exec.(meowmxdriver.SingleWriter)
	return ok && w.SingleWriter()
}

func (e *gatedExecutor[TTx]) Append(ctx context.Context, p *meowmxdriver.AppendParams) (*meowmxdriver.AppendResult, error) {
	e.d.mu.Lock()
	hold := e.d.holding > 0
	var held, release chan struct{}
	if hold {
		e.d.holding--
		held, release = e.d.held, e.d.release
	} else {
		e.d.alone++
	}
	e.d.mu.Unlock()
	if hold {
		held <- struct{}{}
		<-release
	}
	return e.Executor.Append(ctx, p)
}

func (e *gatedExecutor[TTx]) AppendGroup(ctx context.Context, group []*meowmxdriver.AppendParams) ([]*meowmxdriver.AppendResult, error) {
	e.d.mu.Lock()
	e.d.groups = append(e.d.groups, len(group))
	e.d.mu.Unlock()
	return e.Executor.AppendGroup(ctx, group)
}

// GroupedAppend is one append of a group, and what it returned.
type GroupedAppend struct {
	Stream   meowmx.Stream
	Expected meowmx.ExpectedVersion
	// Condition, when set, makes the append an AppendIf.
	Condition *meowmx.AppendCondition
	Events    []meowmx.Event
	Recorded  []meowmx.RecordedEvent
	Err       error
}

// AppendAsGroup makes appends in one group: appends to other streams are
// held in flight (two, or one on a database that writes one transaction at
// a time: every place a store gives appends at once), the appends queue
// behind them in their order, and once all have queued one held append goes
// and hands its place to the first of the queue, which takes the others
// with it; the second held append, if any, goes once they have returned. It
// fails the test unless the appends went to the database as one group. It
// returns how many of the appends were then made alone (an append the group
// recorded nothing of is made alone by its caller, to learn why).
//
// during, unless nil, runs while the group is in flight.
func AppendAsGroup[TTx any](t *testing.T, s *meowmx.Store[TTx], appends []*GroupedAppend, during func()) (alone int) {
	t.Helper()
	d := NewGatedDriver(s.Driver())
	gs, err := meowmx.New(d, &meowmx.Config{Schema: s.Schema()})
	if err != nil {
		t.Fatal(err)
	}
	defer gs.Close()
	queued := make(chan struct{}, len(appends)+2)
	c := testsignal.With(ctx(t), &testsignal.Hooks{Queued: func() { queued <- struct{}{} }})

	places := 2
	if singleWriter(s.Driver().Executor()) {
		places = 1
	}
	held := d.Hold(places)
	var holders, members sync.WaitGroup
	holderErrs := make(chan error, places)
	for i := range places {
		holders.Go(func() {
			_, err := gs.Append(c, meowmx.NewStream("holder", fmt.Sprint(i, uuid.NewString())), meowmx.Any, ev("Held", `{}`))
			holderErrs <- err
		})
	}
	for range places {
		testdb.Recv(t, held, "an append held in flight")
	}
	// One at a time, so that the queue, and the group, is in their order.
	for _, a := range appends {
		members.Go(func() {
			if a.Condition != nil {
				a.Recorded, a.Err = gs.AppendIf(c, a.Stream, a.Expected, *a.Condition, a.Events...)
				return
			}
			a.Recorded, a.Err = gs.Append(c, a.Stream, a.Expected, a.Events...)
		})
		testdb.Recv(t, queued, "an append queued behind the held ones")
	}
	d.Release()
	if during != nil {
		during()
	}
	members.Wait()
	if places == 2 {
		d.Release()
	}
	holders.Wait()
	for range places {
		if err := <-holderErrs; err != nil {
			t.Fatal(err)
		}
	}
	if groups := d.Groups(); len(groups) != 1 || groups[0] != len(appends) {
		t.Fatalf("the store recorded groups of %v appends, want one of %d", groups, len(appends))
	}
	return d.Alone()
}

func one(typ string) []meowmx.Event { return []meowmx.Event{ev(typ, `{"n":1}`)} }

// GroupedAppends: appends recorded as one group return what they would
// alone: their own versions, positions and events, each stream in order.
func testGroupedAppends[TTx any](t *testing.T, h *Harness[TTx]) {
	s := h.NewStore(t, nil, true)
	c := ctx(t)
	must(s.Append(c, meowmx.NewStream("acct", "2"), meowmx.NoStream, ev("Opened", `{}`)))(t)
	appends := []*GroupedAppend{
		{Stream: meowmx.NewStream("acct", "1"), Expected: meowmx.NoStream, Events: []meowmx.Event{ev("Opened", `{}`), ev("Paid", `{"a":1}`)}},
		{Stream: meowmx.NewStream("acct", "2"), Expected: 0, Events: one("Paid")},
		{Stream: meowmx.NewStream("acct", "3"), Expected: meowmx.Any, Events: one("Opened")},
		{Stream: meowmx.NewStream("acct", "4"), Expected: meowmx.NoStream, Events: []meowmx.Event{ev("A", `{}`), ev("B", `{}`), ev("C", `{"c":[1,2]}`)}},
	}
	AppendAsGroup(t, s, appends, nil)
	for _, a := range appends {
		if a.Err != nil {
			t.Fatalf("append to %s in a group: %v", a.Stream, a.Err)
		}
		stored := must(s.ReadStream(c, a.Stream, nil))(t)
		first := int64(len(stored) - len(a.Events))
		if len(a.Recorded) != len(a.Events) {
			t.Fatalf("append to %s returned %d events, want %d", a.Stream, len(a.Recorded), len(a.Events))
		}
		for i, r := range a.Recorded {
			want := stored[first+int64(i)]
			if r.ID != want.ID || r.Version != want.Version || r.Position != want.Position || r.Type != a.Events[i].Type || !sameJSON(t, r.Data, want.Data) {
				t.Fatalf("append to %s returned %+v at %d, stored %+v", a.Stream, r, i, want)
			}
		}
	}
	all := readAllWait(t, s, "acct", meowmx.Start, 8)
	last := map[meowmx.Stream]int64{}
	for _, e := range all {
		if v, ok := last[e.Stream]; ok && e.Version != v+1 {
			t.Fatalf("%s: version %d after %d in the global order", e.Stream, e.Version, v)
		}
		last[e.Stream] = e.Version
	}
}

// GroupedConflictFailsAlone: an append whose expected version does not
// match fails with its conflict, and the others of its group are recorded.
func testGroupedConflict[TTx any](t *testing.T, h *Harness[TTx]) {
	s := h.NewStore(t, nil, true)
	c := ctx(t)
	must(s.Append(c, meowmx.NewStream("acct", "x"), meowmx.NoStream, ev("Opened", `{}`), ev("Paid", `{}`)))(t)
	appends := []*GroupedAppend{
		{Stream: meowmx.NewStream("acct", "1"), Expected: meowmx.NoStream, Events: one("Opened")},
		{Stream: meowmx.NewStream("acct", "x"), Expected: 0, Events: one("Paid")}, // stale
		{Stream: meowmx.NewStream("acct", "2"), Expected: meowmx.NoStream, Events: one("Opened")},
	}
	AppendAsGroup(t, s, appends, nil)
	var conflict *meowmx.VersionConflictError
	if !errors.As(appends[1].Err, &conflict) || conflict.Actual != 1 || conflict.Expected != 0 {
		t.Fatalf("stale append in a group: err = %v, want a version conflict at version 1", appends[1].Err)
	}
	for _, i := range []int{0, 2} {
		if appends[i].Err != nil {
			t.Fatalf("append to %s grouped with a conflict: %v", appends[i].Stream, appends[i].Err)
		}
	}
	if v := must(s.StreamVersion(c, meowmx.NewStream("acct", "x")))(t); v != 1 {
		t.Fatalf("conflicting stream at version %d, want 1", v)
	}
}

// GroupedDuplicateFailsAlone: an append reusing a recorded event ID fails
// with ErrDuplicateEventID, writing nothing, and the others are recorded;
// an append repeated as a retry returns what was recorded the first time.
func testGroupedDuplicate[TTx any](t *testing.T, h *Harness[TTx]) {
	s := h.NewStore(t, nil, true)
	c := ctx(t)
	used := uuid.New()
	must(s.Append(c, meowmx.NewStream("acct", "x"), meowmx.NoStream, meowmx.Event{ID: used, Type: "Opened", Data: json.RawMessage(`{}`)}))(t)
	retried := meowmx.Event{ID: uuid.New(), Type: "Opened", Data: json.RawMessage(`{}`)}
	first := must(s.Append(c, meowmx.NewStream("acct", "r"), meowmx.NoStream, retried))(t)
	appends := []*GroupedAppend{
		{Stream: meowmx.NewStream("acct", "1"), Expected: meowmx.NoStream, Events: one("Opened")},
		{Stream: meowmx.NewStream("acct", "2"), Expected: meowmx.NoStream, Events: []meowmx.Event{ev("Opened", `{}`), {ID: used, Type: "Paid", Data: json.RawMessage(`{}`)}}},
		{Stream: meowmx.NewStream("acct", "r"), Expected: meowmx.NoStream, Events: []meowmx.Event{retried}},
		{Stream: meowmx.NewStream("acct", "3"), Expected: meowmx.NoStream, Events: one("Opened")},
	}
	AppendAsGroup(t, s, appends, nil)
	if !errors.Is(appends[1].Err, meowmx.ErrDuplicateEventID) {
		t.Fatalf("append reusing an event ID in a group: err = %v, want ErrDuplicateEventID", appends[1].Err)
	}
	if v := must(s.StreamVersion(c, meowmx.NewStream("acct", "2")))(t); v != -1 {
		t.Fatalf("the refused append left its stream at version %d, want -1", v)
	}
	if appends[2].Err != nil || len(appends[2].Recorded) != 1 || appends[2].Recorded[0].Position != first[0].Position {
		t.Fatalf("retry in a group: %v %+v, want the first recording %+v", appends[2].Err, appends[2].Recorded, first)
	}
	for _, i := range []int{0, 3} {
		if appends[i].Err != nil {
			t.Fatalf("append to %s grouped with a duplicate: %v", appends[i].Stream, appends[i].Err)
		}
	}
}

// GroupedSharedEventID: two appends of one group with the same event ID,
// the second expecting a version its stream does not have: the first is
// recorded, the second fails and writes nothing.
func testGroupedSharedEventID[TTx any](t *testing.T, h *Harness[TTx]) {
	s := h.NewStore(t, nil, true)
	c := ctx(t)
	shared := meowmx.Event{ID: uuid.New(), Type: "Opened", Data: json.RawMessage(`{}`)}
	appends := []*GroupedAppend{
		{Stream: meowmx.NewStream("acct", "a"), Expected: meowmx.Any, Events: []meowmx.Event{shared}},
		{Stream: meowmx.NewStream("acct", "b"), Expected: 5, Events: []meowmx.Event{shared}},
	}
	AppendAsGroup(t, s, appends, nil)
	if appends[0].Err != nil || len(appends[0].Recorded) != 1 || appends[0].Recorded[0].Stream != appends[0].Stream {
		t.Fatalf("first append sharing an ID in a group: %v %+v", appends[0].Err, appends[0].Recorded)
	}
	if appends[1].Err == nil {
		t.Fatalf("second append sharing an ID, with a stale version, succeeded: %+v", appends[1].Recorded)
	}
	if v := must(s.StreamVersion(c, appends[1].Stream))(t); v != -1 {
		t.Fatalf("%s at version %d, want -1", appends[1].Stream, v)
	}
}

// GroupedLaterDuplicate: in a group of new appends, one whose second event
// reuses a recorded ID fails alone with ErrDuplicateEventID and writes
// nothing; the others are recorded.
func testGroupedLaterDuplicate[TTx any](t *testing.T, h *Harness[TTx]) {
	s := h.NewStore(t, nil, true)
	c := ctx(t)
	used := uuid.New()
	must(s.Append(c, meowmx.NewStream("acct", "x"), meowmx.NoStream, meowmx.Event{ID: used, Type: "Opened", Data: json.RawMessage(`{}`)}))(t)
	appends := []*GroupedAppend{
		{Stream: meowmx.NewStream("acct", "1"), Expected: meowmx.NoStream, Events: one("Opened")},
		{Stream: meowmx.NewStream("acct", "2"), Expected: meowmx.NoStream, Events: []meowmx.Event{ev("Opened", `{}`), {ID: used, Type: "Paid", Data: json.RawMessage(`{}`)}}},
		{Stream: meowmx.NewStream("acct", "3"), Expected: meowmx.Any, Events: []meowmx.Event{ev("Opened", `{}`), ev("Paid", `{}`)}},
	}
	AppendAsGroup(t, s, appends, nil)
	if !errors.Is(appends[1].Err, meowmx.ErrDuplicateEventID) {
		t.Fatalf("append reusing an ID as its second event: %v, want ErrDuplicateEventID", appends[1].Err)
	}
	for _, i := range []int{0, 2} {
		if appends[i].Err != nil || len(appends[i].Recorded) != len(appends[i].Events) {
			t.Fatalf("append to %s grouped with a duplicate: %v", appends[i].Stream, appends[i].Err)
		}
	}
	for stream, want := range map[string]int64{"1": 0, "2": -1, "3": 1} {
		if v := must(s.StreamVersion(c, meowmx.NewStream("acct", stream)))(t); v != want {
			t.Fatalf("acct-%s at version %d, want %d", stream, v, want)
		}
	}
}

// GroupedManyWriters: 32 goroutines appending to 16 streams, each expecting
// the version it last saw and reloading on a conflict, leave every stream
// gapless, with each event recorded once, and per-stream order equal to
// version order in the global log.
func testGroupedManyWriters[TTx any](t *testing.T, h *Harness[TTx]) {
	s := h.NewStore(t, nil, true)
	c := ctx(t)
	const writers, streams, each = 32, 16, 10
	var wg sync.WaitGroup
	errs := make(chan error, writers)
	for w := range writers {
		wg.Go(func() {
			stream := meowmx.NewStream("many", fmt.Sprint(w%streams))
			for i := 0; i < each; {
				version, err := s.StreamVersion(c, stream)
				if err != nil {
					errs <- err
					return
				}
				_, err = s.Append(c, stream, meowmx.ExpectedVersion(version), ev("E", fmt.Sprintf(`{"w":%d,"i":%d}`, w, i)))
				switch {
				case errors.Is(err, meowmx.ErrVersionConflict):
				case err != nil:
					errs <- err
					return
				default:
					i++
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	all := readAllWait(t, s, "many", meowmx.Start, writers*each)
	next := map[meowmx.Stream]int64{}
	seen := map[string]bool{}
	for _, e := range all {
		if e.Version != next[e.Stream] {
			t.Fatalf("%s: version %d where %d comes next in the global order", e.Stream, e.Version, next[e.Stream])
		}
		next[e.Stream]++
		if key := string(e.Data); seen[key] {
			t.Fatalf("event %s recorded twice", key)
		} else {
			seen[key] = true
		}
	}
	if len(next) != streams {
		t.Fatalf("%d streams written, want %d", len(next), streams)
	}
}
