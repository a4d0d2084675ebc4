package storetest

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/meowmx/meowmx"
	"github.com/meowmx/meowmx/internal/testdb"
)

func conditionTests[TTx any]() map[string]func(t *testing.T, h *Harness[TTx]) {
	return map[string]func(t *testing.T, h *Harness[TTx]){
		"Basics":         testConditionBasics[TTx],
		"BadInput":       testConditionBadInput[TTx],
		"InTransaction":  testConditionInTx[TTx],
		"CourseCapacity": testCourseCapacity[TTx],
		"UniqueName":     testUniqueName[TTx],
		"DisjointTags":   testDisjointTags[TTx],
		"LateCommit":     testLateCommit[TTx],
		"WithWriters":    testConditionWithWriters[TTx],
		"TaglessItems":   testTaglessItems[TTx],
		"Grouped":        testGroupedConditions[TTx],
	}
}

// tagQuery is a query of one item.
func tagQuery(types []string, tags ...string) meowmx.Query {
	return meowmx.Query{Items: []meowmx.QueryItem{{Types: types, Tags: tags}}}
}

// readDecision reads every event of q, as a decision would, and returns
// them and the condition to append on.
func readDecision[TTx any](t *testing.T, s *meowmx.Store[TTx], q meowmx.Query) ([]meowmx.RecordedEvent, meowmx.AppendCondition) {
	t.Helper()
	var events []meowmx.RecordedEvent
	cond := meowmx.AppendCondition{FailIfEventsMatch: q}
	for e, err := range s.QueryEvents(ctx(t), q, meowmx.Start, nil) {
		if err != nil {
			t.Error(err)
			return nil, cond
		}
		events = append(events, e)
		cond.After = e.Position
	}
	return events, cond
}

// conditionFailed returns the error's *AppendConditionFailedError, failing
// t if err is not one.
func conditionFailed(t *testing.T, what string, err error) *meowmx.AppendConditionFailedError {
	t.Helper()
	var failed *meowmx.AppendConditionFailedError
	if !errors.As(err, &failed) || !errors.Is(err, meowmx.ErrAppendConditionFailed) {
		t.Fatalf("%s: err = %v, want an *AppendConditionFailedError", what, err)
	}
	return failed
}

// testConditionBasics: a condition holds or fails as the specification says,
// names the first matching event, writes nothing when it fails, and works
// on streams, on events without a stream, with retries and with every kind
// of query item.
func testConditionBasics[TTx any](t *testing.T, h *Harness[TTx]) {
	s := h.NewStore(t, nil, true)
	c := ctx(t)
	course := tagQuery([]string{"Subscribed"}, "course:c1")

	// No event matches: recorded, in a stream of its own.
	first := must(s.AppendEvents(c, &meowmx.AppendCondition{FailIfEventsMatch: course}, tagged("Subscribed", "course:c1", "student:s1")))(t)
	if got := first[0].Stream; got.Category != meowmx.EventsCategory || got.ID != first[0].ID.String() || first[0].Version != 0 {
		t.Fatalf("an event without a stream is recorded in %s at version %d, want %s-%s at 0", got, first[0].Version, meowmx.EventsCategory, first[0].ID)
	}
	// A match after Start: refused, naming it, writing nothing.
	second := tagged("Subscribed", "course:c1", "student:s2")
	second.ID = uuid.Must(uuid.NewV7())
	_, err := s.AppendEvents(c, &meowmx.AppendCondition{FailIfEventsMatch: course}, second)
	failed := conditionFailed(t, "a match after Start", err)
	if failed.Event.ID != first[0].ID || failed.Event.Position != first[0].Position || failed.Event.Type != "Subscribed" {
		t.Fatalf("the failed condition names %s at %s, want %s at %s", failed.Event.ID, failed.Event.Position, first[0].ID, first[0].Position)
	}
	if v := must(s.StreamVersion(c, meowmx.NewStream(meowmx.EventsCategory, second.ID.String())))(t); v != -1 {
		t.Fatalf("a failed condition wrote version %d", v)
	}
	// The match is at the condition's position: recorded; its positions
	// follow the covered event.
	got := must(s.AppendEvents(c, &meowmx.AppendCondition{FailIfEventsMatch: course, After: first[0].Position}, second))(t)
	if got[0].Position.Compare(first[0].Position) <= 0 {
		t.Fatalf("appended at %s, not after the covered event at %s", got[0].Position, first[0].Position)
	}
	// A retry of the same events returns the first result, though its own
	// events now match the condition.
	again := must(s.AppendEvents(c, &meowmx.AppendCondition{FailIfEventsMatch: course, After: first[0].Position}, second))(t)
	if again[0].Position != got[0].Position || again[0].ID != got[0].ID {
		t.Fatalf("retry returned %s at %s, want %s at %s", again[0].ID, again[0].Position, got[0].ID, got[0].Position)
	}

	// On a stream, with an expected version: both are checked.
	stream := meowmx.NewStream("course", "c1")
	must(s.AppendIf(c, stream, meowmx.NoStream, meowmx.AppendCondition{FailIfEventsMatch: tagQuery(nil, "course:c1", "closed")}, tagged("Opened", "course:c1")))(t)
	_, err = s.AppendIf(c, stream, meowmx.NoStream, meowmx.AppendCondition{FailIfEventsMatch: tagQuery(nil, "nothing")}, ev("X", `{}`))
	if !errors.Is(err, meowmx.ErrVersionConflict) {
		t.Fatalf("condition holds, version does not: err = %v, want a version conflict", err)
	}
	_, err = s.AppendIf(c, stream, 0, meowmx.AppendCondition{FailIfEventsMatch: tagQuery([]string{"Opened"}, "course:c1")}, ev("X", `{}`))
	conditionFailed(t, "version holds, condition does not", err)
	if v := must(s.StreamVersion(c, stream))(t); v != 0 {
		t.Fatalf("stream at version %d after refused appends, want 0", v)
	}

	// Every kind of item: types only, several tags, several items, a type
	// that differs, an item that matches everything, no items.
	for _, tc := range []struct {
		name  string
		query meowmx.Query
		fails bool
	}{
		{"types only", meowmx.Query{Items: []meowmx.QueryItem{{Types: []string{"Opened"}}}}, true},
		{"types only, none", meowmx.Query{Items: []meowmx.QueryItem{{Types: []string{"Closed"}}}}, false},
		{"two tags", tagQuery(nil, "student:s1", "course:c1"), true},
		{"two tags, none", tagQuery(nil, "student:s1", "course:c2"), false},
		{"other type", tagQuery([]string{"Left"}, "course:c1"), false},
		{"second item", meowmx.Query{Items: []meowmx.QueryItem{{Tags: []string{"none"}}, {Types: []string{"Opened", "Closed"}, Tags: []string{"course:c1"}}}}, true},
		{"everything", meowmx.Query{Items: []meowmx.QueryItem{{}}}, true},
		{"no items", meowmx.Query{}, false},
	} {
		_, err := s.AppendEvents(c, &meowmx.AppendCondition{FailIfEventsMatch: tc.query}, tagged("Probe", "probe"))
		switch {
		case tc.fails:
			conditionFailed(t, tc.name, err)
		case err != nil:
			t.Fatalf("%s: %v", tc.name, err)
		}
	}
}

// testConditionBadInput: a bad condition is refused before anything is
// written.
func testConditionBadInput[TTx any](t *testing.T, h *Harness[TTx]) {
	s := h.NewStore(t, nil, true)
	c := ctx(t)
	stream := meowmx.NewStream("bad", "1")
	for name, cond := range map[string]meowmx.AppendCondition{
		"empty tag":         {FailIfEventsMatch: tagQuery(nil, "")},
		"repeated tag":      {FailIfEventsMatch: tagQuery(nil, "a", "a")},
		"empty type":        {FailIfEventsMatch: tagQuery([]string{""}, "a")},
		"negative sequence": {FailIfEventsMatch: tagQuery(nil, "a"), After: meowmx.Position{Seq: -1}},
	} {
		if _, err := s.AppendIf(c, stream, meowmx.Any, cond, ev("Ok", `{}`)); !errors.Is(err, meowmx.ErrInvalidInput) {
			t.Errorf("%s: err = %v, want ErrInvalidInput", name, err)
		}
		if _, err := s.AppendEvents(c, &cond, ev("Ok", `{}`)); !errors.Is(err, meowmx.ErrInvalidInput) {
			t.Errorf("%s, without a stream: err = %v, want ErrInvalidInput", name, err)
		}
	}
	if _, err := s.AppendEvents(c, nil); !errors.Is(err, meowmx.ErrInvalidInput) {
		t.Errorf("no events: err = %v, want ErrInvalidInput", err)
	}
	if n := len(must(s.ReadAll(c, meowmx.Start, nil))(t)); n != 0 {
		t.Fatalf("refused appends wrote %d events", n)
	}
}

// testConditionInTx: a conditional append in the caller's transaction
// commits or rolls back with it; on PostgreSQL it needs READ COMMITTED, and
// a transaction that took its id before the condition's position is told
// to retry, as is a tagged append that waited for a later one.
func testConditionInTx[TTx any](t *testing.T, h *Harness[TTx]) {
	s := h.NewStore(t, nil, true)
	c := ctx(t)
	q := tagQuery(nil, "name:alice")
	claim := tagged("Claimed", "name:alice")

	tx := begin(t, h, s)
	must(s.AppendEventsTx(c, tx, &meowmx.AppendCondition{FailIfEventsMatch: q}, claim))(t)
	if err := h.Rollback(c, tx); err != nil {
		t.Fatal(err)
	}
	tx = begin(t, h, s)
	recorded := must(s.AppendIfTx(c, tx, meowmx.NewStream("user", "1"), meowmx.NoStream, meowmx.AppendCondition{FailIfEventsMatch: q}, claim))(t)
	// In the same transaction, its own event counts.
	_, err := s.AppendEventsTx(c, tx, &meowmx.AppendCondition{FailIfEventsMatch: q}, claim)
	if failed := conditionFailed(t, "in the transaction that recorded the match", err); failed.Event.ID != recorded[0].ID {
		t.Fatalf("the condition names %s, want %s", failed.Event.ID, recorded[0].ID)
	}
	if err := h.Rollback(c, tx); err != nil {
		t.Fatal(err)
	}
	tx = begin(t, h, s)
	recorded = must(s.AppendIfTx(c, tx, meowmx.NewStream("user", "1"), meowmx.NoStream, meowmx.AppendCondition{FailIfEventsMatch: q}, claim))(t)
	// A condition with an item without tags (which locks the table on
	// PostgreSQL), then more appends, in the same transaction.
	must(s.AppendEventsTx(c, tx, &meowmx.AppendCondition{FailIfEventsMatch: meowmx.Query{Items: []meowmx.QueryItem{{Types: []string{"Unseen"}}}}}, ev("Seen", `{}`)))(t)
	must(s.AppendTx(c, tx, meowmx.NewStream("user", "2"), meowmx.NoStream, ev("After", `{}`)))(t)
	if err := h.Commit(c, tx); err != nil {
		t.Fatal(err)
	}
	_, err = s.AppendEvents(c, &meowmx.AppendCondition{FailIfEventsMatch: q}, tagged("Claimed", "name:alice"))
	if failed := conditionFailed(t, "after the commit", err); failed.Event.ID != recorded[0].ID {
		t.Fatalf("the condition names %s, want %s", failed.Event.ID, recorded[0].ID)
	}

	if !h.ConcurrentWriters {
		return
	}
	// PostgreSQL: REPEATABLE READ is refused.
	tx = begin(t, h, s)
	if _, err := h.Exec(c, tx, "SET TRANSACTION ISOLATION LEVEL REPEATABLE READ"); err != nil {
		t.Fatal(err)
	}
	_, err = s.AppendEventsTx(c, tx, &meowmx.AppendCondition{FailIfEventsMatch: tagQuery(nil, "name:bob")}, tagged("Claimed", "name:bob"))
	if !errors.Is(err, meowmx.ErrInvalidInput) || !strings.Contains(err.Error(), "READ COMMITTED") {
		t.Fatalf("in REPEATABLE READ: err = %v, want ErrInvalidInput naming READ COMMITTED", err)
	}
	_ = h.Rollback(c, tx)

	// A transaction that wrote (took its id) before another one recorded
	// the event its condition read up to: its events would come before it.
	tx = begin(t, h, s)
	must(s.AppendTx(c, tx, meowmx.NewStream("other", "1"), meowmx.NoStream, ev("Early", `{}`)))(t)
	later := must(s.AppendEvents(c, nil, tagged("Claimed", "name:carol", "x")))(t)
	_, err = s.AppendEventsTx(c, tx, &meowmx.AppendCondition{FailIfEventsMatch: tagQuery(nil, "name:carol", "y"), After: later[0].Position}, tagged("Claimed", "name:carol", "y"))
	if !errors.Is(err, meowmx.ErrTransactionTooOld) {
		t.Fatalf("condition after a later transaction's event: err = %v, want ErrTransactionTooOld", err)
	}
	_ = h.Rollback(c, tx)

	// A tagged append in a transaction that took its id before another
	// one recorded an event of the same tag: refused, so that a condition
	// that covered the tag keeps its events after it.
	tx = begin(t, h, s)
	must(s.AppendTx(c, tx, meowmx.NewStream("other", "2"), meowmx.NoStream, ev("Early", `{}`)))(t)
	must(s.AppendEvents(c, &meowmx.AppendCondition{FailIfEventsMatch: tagQuery(nil, "name:dave")}, tagged("Claimed", "name:dave")))(t)
	_, err = s.AppendTx(c, tx, meowmx.NewStream("user", "dave"), meowmx.NoStream, tagged("Claimed", "name:dave"))
	if !errors.Is(err, meowmx.ErrTransactionTooOld) {
		t.Fatalf("tagged append older than the tag's last event: err = %v, want ErrTransactionTooOld", err)
	}
	_ = h.Rollback(c, tx)

	// The same for any append, after a conditional append with an item
	// without tags (which locks the table, and names no tag): a
	// transaction that took its id elsewhere before it must not record
	// events before its.
	put, _ := h.ReadModel(t, s)
	tx = begin(t, h, s)
	if err := put(c, tx, "k", 1); err != nil {
		t.Fatal(err)
	}
	must(s.AppendEvents(c, &meowmx.AppendCondition{FailIfEventsMatch: meowmx.Query{Items: []meowmx.QueryItem{{Types: []string{"Nothing"}}}}}, ev("Untagged", `{}`)))(t)
	_, err = s.AppendTx(c, tx, meowmx.NewStream("other", "3"), meowmx.NoStream, ev("Late", `{}`))
	if !errors.Is(err, meowmx.ErrTransactionTooOld) {
		t.Fatalf("append older than a table-locked conditional append: err = %v, want ErrTransactionTooOld", err)
	}
	_ = h.Rollback(c, tx)
	tx = begin(t, h, s)
	must(s.AppendTx(c, tx, meowmx.NewStream("other", "3"), meowmx.NoStream, ev("OnTime", `{}`)))(t)
	if err := h.Commit(c, tx); err != nil {
		t.Fatal(err)
	}
}

// decideAgain pauses a decider whose condition failed, up to a
// millisecond, before it reads again: while another test's transaction holds
// the horizon back, its reads cannot see what failed it, and 50 deciders
// retrying at once would only load the machine.
func decideAgain() {
	time.Sleep(time.Duration(rand.IntN(1000)) * time.Microsecond)
}

// decideUntilRecorded reads the events of q and appends e on the condition
// that none came after what it read, reading and appending again while the
// condition fails, and adds the decision to made. It reports false when t
// failed.
func decideUntilRecorded[TTx any](t *testing.T, s *meowmx.Store[TTx], q meowmx.Query, e meowmx.Event, made *decisions) bool {
	for {
		_, cond := readDecision(t, s, q)
		if t.Failed() {
			return false
		}
		recorded, err := s.AppendEvents(ctx(t), &cond, e)
		if errors.Is(err, meowmx.ErrAppendConditionFailed) {
			decideAgain()
			continue
		}
		if err != nil {
			t.Error(err)
			return false
		}
		made.add(cond, recorded[0])
		return true
	}
}

// decisions records the successful conditional appends of a race, to check
// the log afterwards: no event matching a decision's query lies between its
// condition's position and its own events.
type decisions struct {
	mu   sync.Mutex
	list []decision
}

type decision struct {
	cond     meowmx.AppendCondition
	recorded meowmx.RecordedEvent
}

func (d *decisions) add(cond meowmx.AppendCondition, recorded meowmx.RecordedEvent) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.list = append(d.list, decision{cond, recorded})
}

// checkLog waits until the events of q read up to every decision of d's own
// event (the horizon may hold them back a while), checks them, and returns
// them.
func checkLog[TTx any](t *testing.T, s *meowmx.Store[TTx], q meowmx.Query, d *decisions) []meowmx.RecordedEvent {
	t.Helper()
	var log []meowmx.RecordedEvent
	testdb.Eventually(t, func() (bool, string) {
		log, _ = readDecision(t, s, q)
		for _, dec := range d.list {
			if len(log) == 0 || dec.recorded.Position.Compare(log[len(log)-1].Position) > 0 {
				return false, fmt.Sprintf("%d events in the log, not every decision's yet", len(log))
			}
		}
		return true, ""
	})
	d.check(t, log)
	return log
}

// check fails t if any decision's condition is broken in log: a matching
// event after its position and before its own event.
func (d *decisions) check(t *testing.T, log []meowmx.RecordedEvent) {
	t.Helper()
	for _, dec := range d.list {
		for _, e := range log {
			if e.Position.Compare(dec.cond.After) > 0 && e.Position.Compare(dec.recorded.Position) < 0 &&
				dec.cond.FailIfEventsMatch.Matches(e.Type, e.Tags) {
				t.Fatalf("event %s at %s matches the condition of the append at %s, which read up to %s",
					e.ID, e.Position, dec.recorded.Position, dec.cond.After)
			}
		}
	}
}

// testCourseCapacity: 50 deciders race to subscribe to a course of 30
// places, each reading the course's subscriptions, deciding, and appending
// on the condition that nothing changed since, reading and deciding again
// when it did: exactly 30 subscribe and 20 find the course full, over 20
// courses.
func testCourseCapacity[TTx any](t *testing.T, h *Harness[TTx]) {
	s := h.NewStore(t, nil, true)
	c := ctx(t)
	const deciders, capacity, courses = 50, 30, 20
	for n := range courses {
		tag := fmt.Sprint("course:c", n)
		q := tagQuery([]string{"StudentSubscribed"}, tag)
		var subscribed, full, retries atomic.Int64
		var made decisions
		var wg sync.WaitGroup
		for i := range deciders {
			wg.Go(func() {
				for {
					events, cond := readDecision(t, s, q)
					if t.Failed() {
						return
					}
					if len(events) >= capacity {
						full.Add(1)
						return
					}
					recorded, err := s.AppendEvents(c, &cond, tagged("StudentSubscribed", tag, fmt.Sprint("student:s", i)))
					if errors.Is(err, meowmx.ErrAppendConditionFailed) {
						retries.Add(1)
						decideAgain()
						continue
					}
					if err != nil {
						t.Error(err)
						return
					}
					made.add(cond, recorded[0])
					subscribed.Add(1)
					return
				}
			})
		}
		wg.Wait()
		if t.Failed() {
			return
		}
		if subscribed.Load() != capacity || full.Load() != deciders-capacity {
			t.Fatalf("course %d: %d subscribed and %d found it full, want %d and %d", n, subscribed.Load(), full.Load(), capacity, deciders-capacity)
		}
		if log := checkLog(t, s, q, &made); len(log) != capacity {
			t.Fatalf("course %d: %d subscriptions in the log, want %d", n, len(log), capacity)
		}
		t.Logf("course %d: %d conditions failed and were decided again", n, retries.Load())
	}
}

// testUniqueName: 16 writers race to claim one user name: exactly one
// wins, and every other is told which event won.
func testUniqueName[TTx any](t *testing.T, h *Harness[TTx]) {
	s := h.NewStore(t, nil, true)
	c := ctx(t)
	for round := range 10 {
		tag := fmt.Sprint("username:alice", round)
		q := tagQuery([]string{"UserRegistered"}, tag)
		var winners atomic.Int64
		var winner atomic.Value
		var losers sync.Map
		var wg sync.WaitGroup
		for i := range 16 {
			wg.Go(func() {
				recorded, err := s.AppendIf(c, meowmx.NewStream("user", fmt.Sprint(round, "-", i)), meowmx.NoStream,
					meowmx.AppendCondition{FailIfEventsMatch: q}, tagged("UserRegistered", tag))
				var failed *meowmx.AppendConditionFailedError
				switch {
				case err == nil:
					winners.Add(1)
					winner.Store(recorded[0].ID)
				case errors.As(err, &failed):
					losers.Store(i, failed.Event.ID)
				default:
					t.Error(err)
				}
			})
		}
		wg.Wait()
		if t.Failed() {
			return
		}
		if winners.Load() != 1 {
			t.Fatalf("round %d: %d writers claimed the name", round, winners.Load())
		}
		losers.Range(func(k, v any) bool {
			if v != winner.Load() {
				t.Fatalf("round %d: writer %v was refused by event %v, not by the winner's %v", round, k, v, winner.Load())
			}
			return true
		})
	}
}

// testDisjointTags: conditional appends on pairwise disjoint tags never
// fail each other.
func testDisjointTags[TTx any](t *testing.T, h *Harness[TTx]) {
	s := h.NewStore(t, nil, true)
	c := ctx(t)
	const writers, each = 8, 125
	var failed atomic.Int64
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			for i := range each {
				tag := fmt.Sprintf("item:%d-%d", w, i)
				_, err := s.AppendEvents(c, &meowmx.AppendCondition{FailIfEventsMatch: tagQuery([]string{"Reserved"}, tag)},
					tagged("Reserved", tag, "shared:all"))
				if errors.Is(err, meowmx.ErrAppendConditionFailed) {
					failed.Add(1)
				} else if err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	if n := failed.Load(); n != 0 {
		t.Fatalf("%d of %d conditions on disjoint tags failed", n, writers*each)
	}
	readAllWait(t, s, meowmx.EventsCategory, meowmx.Start, writers*each)
}

// testLateCommit: an event matching a condition, written by a transaction
// that started before the conditional append and commits after the reader
// read, makes the condition fail: the check sees it even while it is below
// the horizon, and a conditional append that comes while it is in progress
// waits for it.
func testLateCommit[TTx any](t *testing.T, h *Harness[TTx]) {
	s := h.NewStore(t, nil, true)
	c := ctx(t)
	q := tagQuery([]string{"Seat"}, "flight:f1", "seat:1A")
	var written []meowmx.RecordedEvent // the late events, round by round
	for round, wait := range []bool{false, true} {
		late := begin(t, h, s)
		written = append(written, must(s.AppendEventsTx(c, late, nil, tagged("Seat", "flight:f1", "seat:1A", fmt.Sprint("round:", round))))(t)...)
		// The reader sees nothing of it (and, while another test's
		// transaction holds the horizon, maybe not the earlier round's).
		events, cond := readDecision(t, s, q)
		if len(events) > round {
			t.Fatalf("round %d: read %d events, want at most %d", round, len(events), round)
		}
		done := make(chan error, 1)
		if wait {
			// The conditional append comes while the writer is open.
			go func() {
				_, err := s.AppendEvents(c, &cond, tagged("Seat", "flight:f1", "seat:1A"))
				done <- err
			}()
			if h.ConcurrentWriters {
				waitForLockWaiter(t, h, s)
			}
		}
		if err := h.Commit(c, late); err != nil {
			t.Fatal(err)
		}
		if !wait {
			// The writer committed after the read: its event is after the
			// condition's position.
			_, err := s.AppendEvents(c, &cond, tagged("Seat", "flight:f1", "seat:1A"))
			done <- err
		}
		// The first event after what the reader read.
		failed := conditionFailed(t, fmt.Sprintf("round %d", round), <-done)
		if want := written[len(events)]; failed.Event.ID != want.ID {
			t.Fatalf("round %d: the condition names %s, want %s", round, failed.Event.ID, want.ID)
		}
	}
}

// waitForLockWaiter waits until a statement of s's schema waits for a lock
// (PostgreSQL).
func waitForLockWaiter[TTx any](t *testing.T, h *Harness[TTx], s *meowmx.Store[TTx]) {
	t.Helper()
	schema := strings.TrimSuffix(h.Table(s, "x"), ".x")
	schema = strings.TrimSuffix(schema, `."x"`)
	query := fmt.Sprintf(`SELECT count(*)::text, '' FROM pg_stat_activity
 WHERE wait_event_type = 'Lock' AND strpos(query, '%s.current_position_txid') > 0`, strings.ReplaceAll(schema, "'", "''"))
	testdb.Eventually(t, func() (bool, string) {
		pairs, err := h.QueryPairs(context.Background(), s, query)
		if err != nil {
			t.Fatal(err)
		}
		return len(pairs) == 1 && pairs[0][0] != "0", "no conditional append waits for its lock"
	})
}

// testConditionWithWriters: conditional appends race with unconditional
// appends of covered events, made every way an append is recorded (one
// event, a batch, grouped, in the caller's transaction): in the log, no
// covered event ever lands between a condition's position and the events
// appended on it.
func testConditionWithWriters[TTx any](t *testing.T, h *Harness[TTx]) {
	s := h.NewStore(t, nil, true)
	c := ctx(t)
	q := tagQuery([]string{"Booked"}, "room:r1")
	const deciders, writers, rounds, writes = 4, 4, 20, 60
	var made decisions
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			for i := range writes {
				booked := tagged("Booked", "room:r1", fmt.Sprint("writer:", w))
				stream := meowmx.NewStream("room", fmt.Sprint(w, "-", i))
				var err error
				switch i % 4 {
				case 0:
					_, err = s.Append(c, stream, meowmx.NoStream, booked)
				case 1:
					_, err = s.Append(c, stream, meowmx.Any, ev("Other", `{}`), booked, booked)
				case 2:
					_, err = s.AppendEvents(c, nil, booked)
				case 3:
					tx, berr := h.Begin(c, s)
					if berr != nil {
						t.Error(berr)
						return
					}
					if _, err = s.AppendTx(c, tx, stream, meowmx.NoStream, booked); err == nil {
						err = h.Commit(c, tx)
					} else {
						_ = h.Rollback(c, tx)
					}
				}
				if err != nil && !meowmx.IsRetryable(err) {
					t.Error(err)
					return
				}
			}
		})
	}
	for range deciders {
		wg.Go(func() {
			for range rounds {
				if !decideUntilRecorded(t, s, q, tagged("Booked", "room:r1", "decider"), &made) {
					return
				}
			}
		})
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	checkLog(t, s, q, &made)
}

// testTaglessItems: conditional appends with an item without tags (which
// lock the events table on PostgreSQL) race with conditional appends on
// tags, whose events they cover: every append ends in a record or a failed
// condition, none in a deadlock, and the log check holds.
func testTaglessItems[TTx any](t *testing.T, h *Harness[TTx]) {
	s := h.NewStore(t, nil, true)
	const rounds = 15
	tagless := meowmx.Query{Items: []meowmx.QueryItem{{Types: []string{"Counted"}}}}
	byTag := tagQuery([]string{"Counted"}, "counter:c1")
	var made decisions
	var wg sync.WaitGroup
	for w := range 6 {
		wg.Go(func() {
			q := tagless
			if w%2 == 1 {
				q = byTag
			}
			for range rounds {
				// Every event matches both queries.
				if !decideUntilRecorded(t, s, q, tagged("Counted", "counter:c1", fmt.Sprint("writer:", w)), &made) {
					return
				}
			}
		})
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	if log := checkLog(t, s, tagless, &made); len(log) != 6*rounds {
		t.Fatalf("%d events in the log, want %d", len(log), 6*rounds)
	}
}

// testGroupedConditions: conditional appends recorded in one group check
// their conditions as they would alone. An item matches an event that has
// one of its types and all of its tags: an event with one of two tags (either
// one), or with both tags and another type, does not fail it; one with both tags and
// the type does, and that append alone fails, naming the event.
func testGroupedConditions[TTx any](t *testing.T, h *Harness[TTx]) {
	s := h.NewStore(t, nil, true)
	c := ctx(t)
	tagged := func(typ string, tags ...string) meowmx.Event {
		e := ev(typ, `{}`)
		e.Tags = tags
		return e
	}
	oneTag := must(s.Append(c, meowmx.NewStream("course", "c1"), meowmx.NoStream, tagged("Enrolled", "course:c1")))(t)[0]
	otherCourse := must(s.Append(c, meowmx.NewStream("course", "c3"), meowmx.NoStream, tagged("Enrolled", "student:s1", "course:c3")))(t)[0]
	otherType := must(s.Append(c, meowmx.NewStream("course", "c2"), meowmx.NoStream, tagged("Dropped", "course:c2", "student:s1")))(t)[0]
	cond := func(typ, course string) *meowmx.AppendCondition {
		return &meowmx.AppendCondition{FailIfEventsMatch: tagQuery([]string{typ}, course, "student:s1")}
	}
	appends := []*GroupedAppend{
		// Neither course:c1 without student:s1, nor student:s1 with
		// another course, is both tags (the check may start from either).
		{Stream: meowmx.NewStream("enrol", "1"), Expected: meowmx.NoStream, Condition: cond("Enrolled", "course:c1"), Events: []meowmx.Event{tagged("Enrolled", "seat:1")}},
		// Both tags, of another type.
		{Stream: meowmx.NewStream("enrol", "2"), Expected: meowmx.NoStream, Condition: cond("Enrolled", "course:c2"), Events: []meowmx.Event{tagged("Enrolled", "seat:2")}},
		// Both tags and the type: fails.
		{Stream: meowmx.NewStream("enrol", "3"), Expected: meowmx.NoStream, Condition: cond("Dropped", "course:c2"), Events: []meowmx.Event{tagged("Enrolled", "seat:3")}},
		{Stream: meowmx.NewStream("enrol", "4"), Expected: meowmx.NoStream, Events: []meowmx.Event{tagged("Enrolled", "seat:4")}},
	}
	alone := AppendAsGroup(t, s, appends, nil)
	// Only the append whose condition failed may go again alone: a check
	// that failed the others in the group would pass unseen otherwise, as
	// alone they record.
	if alone > 1 {
		t.Fatalf("%d of the appends were made again alone, want at most the one whose condition failed", alone)
	}
	for i, a := range appends {
		if i == 2 {
			var failed *meowmx.AppendConditionFailedError
			if !errors.As(a.Err, &failed) {
				t.Fatalf("append to %s on a condition that an event matches: %v, want an *AppendConditionFailedError", a.Stream, a.Err)
			}
			if failed.Event.ID != otherType.ID {
				t.Fatalf("the failed condition names event %s, want %s", failed.Event.ID, otherType.ID)
			}
			if got := must(s.ReadStream(c, a.Stream, nil))(t); len(got) != 0 {
				t.Fatalf("a failed condition recorded %d events", len(got))
			}
			continue
		}
		if a.Err != nil {
			t.Fatalf("append to %s in a group (the events before: %s, %s, %s): %v", a.Stream, oneTag.ID, otherCourse.ID, otherType.ID, a.Err)
		}
		if len(a.Recorded) != 1 {
			t.Fatalf("append to %s recorded %d events", a.Stream, len(a.Recorded))
		}
	}
}
