package storetest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/google/uuid"

	"github.com/meowmx/meowmx"
	"github.com/meowmx/meowmx/internal/testdb"
)

func tagged(typ string, tags ...string) meowmx.Event {
	e := ev(typ, `{}`)
	e.Tags = tags
	return e
}

// testTags: tags come back from the append and from every read, through
// every way an append is recorded; bad tags are refused, writing nothing.
func testTags[TTx any](t *testing.T, h *Harness[TTx]) {
	s := h.NewStore(t, nil, true)
	c := ctx(t)
	check := func(what string, recorded []meowmx.RecordedEvent, want ...[]string) {
		t.Helper()
		if len(recorded) != len(want) {
			t.Fatalf("%s: %d events, want %d", what, len(recorded), len(want))
		}
		for i := range want {
			if !slices.Equal(recorded[i].Tags, want[i]) || (want[i] == nil) != (recorded[i].Tags == nil) {
				t.Fatalf("%s: event %d has tags %q, want %q", what, i, recorded[i].Tags, want[i])
			}
		}
		read := must(s.ReadStream(c, recorded[0].Stream, &meowmx.ReadStreamOpts{From: recorded[0].Version, Limit: len(want)}))(t)
		for i := range want {
			if !slices.Equal(read[i].Tags, want[i]) || (want[i] == nil) != (read[i].Tags == nil) {
				t.Fatalf("%s: event %d read back with tags %q, want %q", what, i, read[i].Tags, want[i])
			}
		}
	}
	a, b := []string{"course:c1", "student:s1"}, []string{"ü-tag with spaces", "x"}
	check("one event, exact version", must(s.Append(c, meowmx.NewStream("t", "1"), meowmx.NoStream, tagged("A", a...)))(t), a)
	check("batch, exact version", must(s.Append(c, meowmx.NewStream("t", "1"), 0,
		tagged("B", b...), ev("C", `{}`), tagged("D", "solo")))(t), b, nil, []string{"solo"})
	check("batch, any version", must(s.Append(c, meowmx.NewStream("t", "1"), meowmx.Any, ev("E", `{}`), tagged("F", a...)))(t), nil, a)
	tx := begin(t, h, s)
	inTx := must(s.AppendTx(c, tx, meowmx.NewStream("t", "2"), meowmx.NoStream, tagged("G", b...)))(t)
	if err := h.Commit(c, tx); err != nil {
		t.Fatal(err)
	}
	check("in a transaction", inTx, b)
	group := []*GroupedAppend{
		{Stream: meowmx.NewStream("t", "g1"), Expected: meowmx.NoStream, Events: []meowmx.Event{tagged("H", "g", "one")}},
		{Stream: meowmx.NewStream("t", "g2"), Expected: meowmx.Any, Events: []meowmx.Event{ev("I", `{}`), tagged("J", "g")}},
	}
	AppendAsGroup(t, s, group, nil)
	for i, want := range [][][]string{{{"g", "one"}}, {nil, {"g"}}} {
		if group[i].Err != nil {
			t.Fatalf("grouped append %d: %v", i, group[i].Err)
		}
		check(fmt.Sprintf("grouped append %d", i), group[i].Recorded, want...)
	}
	// A batch large enough to be copied on PostgreSQL.
	big := make([]meowmx.Event, 5000)
	wantBig := make([][]string, len(big))
	for i := range big {
		big[i] = ev("K", `{}`)
		if i%2 == 0 {
			big[i].Tags, wantBig[i] = []string{"big", fmt.Sprint("n", i)}, []string{"big", fmt.Sprint("n", i)}
		}
	}
	check("large batch", must(s.Append(c, meowmx.NewStream("t", "big"), meowmx.NoStream, big...))(t), wantBig...)

	// Global reads return the tags too.
	all := readAllWait(t, s, "t", meowmx.Start, 5010)
	if !slices.Equal(all[0].Tags, a) || !slices.Equal(all[1].Tags, b) || all[2].Tags != nil {
		t.Fatalf("ReadCategory returned tags %q and %q", all[0].Tags, all[1].Tags)
	}

	// Every way of recording fills the tag index.
	for tag, want := range map[string]int{"course:c1": 2, "x": 2, "solo": 1, "g": 2, "one": 1, "big": 2500, "n4998": 1} {
		q := meowmx.Query{Items: []meowmx.QueryItem{{Tags: []string{tag}}}}
		testdb.Eventually(t, func() (bool, string) {
			n := 0
			for _, err := range s.QueryEvents(c, q, meowmx.Start, nil) {
				if err != nil {
					t.Fatal(err)
				}
				n++
			}
			return n == want, fmt.Sprintf("tag %q: %d events, want %d", tag, n, want)
		})
	}

	long := strings.Repeat("x", meowmx.MaxTagLength+1)
	many := make([]string, meowmx.MaxTags+1)
	for i := range many {
		many[i] = fmt.Sprint("t", i)
	}
	for name, tags := range map[string][]string{
		"empty tag": {"a", ""}, "repeated tag": {"a", "b", "a"}, "long tag": {long}, "too many": many,
		"invalid UTF-8": {"a\xff"}, "NUL": {"a\x00b"},
	} {
		stream := meowmx.NewStream("bad", strings.ReplaceAll(name, " ", "_"))
		_, err := s.Append(c, stream, meowmx.Any, ev("Ok", `{}`), tagged("Bad", tags...))
		if !errors.Is(err, meowmx.ErrInvalidInput) {
			t.Errorf("%s: err = %v, want ErrInvalidInput", name, err)
		}
		if v := must(s.StreamVersion(c, stream))(t); v != -1 {
			t.Errorf("%s: the refused append wrote to version %d", name, v)
		}
	}
}

// testReadQuery: ReadQuery returns, in global order, exactly the events
// that Query.Matches selects from the whole log, for queries of every
// shape, in pages of any size.
func testReadQuery[TTx any](t *testing.T, h *Harness[TTx]) {
	s := h.NewStore(t, nil, true)
	c := ctx(t)
	types := []string{"CourseDefined", "StudentSubscribed", "StudentLeft"}
	total := 0
	for i := range 120 {
		var tags []string
		if i%4 != 3 {
			tags = append(tags, fmt.Sprint("course:c", i%3))
		}
		if i%5 != 0 {
			tags = append(tags, fmt.Sprint("student:s", i%7))
		}
		if i%11 == 0 {
			tags = append(tags, "flagged")
		}
		stream := meowmx.NewStream("enrol", fmt.Sprint(i%9))
		must(s.Append(c, stream, meowmx.Any, tagged(types[i%3], tags...)))(t)
		total++
	}
	all := readAllWait(t, s, "", meowmx.Start, total)
	queries := map[string]meowmx.Query{
		"one tag":             {Items: []meowmx.QueryItem{{Tags: []string{"course:c1"}}}},
		"two tags":            {Items: []meowmx.QueryItem{{Tags: []string{"course:c1", "student:s3"}}}},
		"tag and types":       {Items: []meowmx.QueryItem{{Types: []string{"StudentSubscribed", "StudentLeft"}, Tags: []string{"course:c2"}}}},
		"types only":          {Items: []meowmx.QueryItem{{Types: []string{"CourseDefined"}}}},
		"everything":          {Items: []meowmx.QueryItem{{}}},
		"two items, overlaps": {Items: []meowmx.QueryItem{{Tags: []string{"course:c0"}}, {Tags: []string{"flagged"}, Types: []string{"CourseDefined"}}, {Tags: []string{"student:s1", "course:c0"}}}},
		"no match":            {Items: []meowmx.QueryItem{{Tags: []string{"course:c9"}}}},
		"no items":            {},
	}
	for name, q := range queries {
		var want []meowmx.RecordedEvent
		for _, e := range all {
			if q.Matches(e.Type, e.Tags) {
				want = append(want, e)
			}
		}
		var got []meowmx.RecordedEvent
		testdb.Eventually(t, func() (bool, string) {
			got = must(s.ReadQuery(c, q, meowmx.Start, nil))(t)
			return len(got) >= len(want), fmt.Sprintf("%s: %d events, want %d", name, len(got), len(want))
		})
		samePositions(t, name, got, want)
		// In pages of 3, through the iterator.
		got = got[:0]
		for e, err := range s.QueryEvents(c, q, meowmx.Start, &meowmx.ReadQueryOpts{Limit: 3}) {
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, e)
		}
		samePositions(t, name+" in pages of 3", got, want)
		// Backward from the end, whole and in pages of 3.
		reversed := slices.Clone(want)
		slices.Reverse(reversed)
		samePositions(t, name+" backward", must(s.ReadQuery(c, q, meowmx.End, &meowmx.ReadQueryOpts{Backward: true}))(t), reversed)
		got = got[:0]
		for e, err := range s.QueryEvents(c, q, meowmx.End, &meowmx.ReadQueryOpts{Limit: 3, Backward: true}) {
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, e)
		}
		samePositions(t, name+" backward in pages of 3", got, reversed)
		if len(want) > 2 {
			before := must(s.ReadQuery(c, q, want[2].Position, &meowmx.ReadQueryOpts{Limit: 1, Backward: true}))(t)
			if len(before) != 1 || before[0].Position != want[1].Position {
				t.Fatalf("%s: backward before %s got %v, want the event at %s", name, want[2].Position, before, want[1].Position)
			}
			if got := must(s.ReadQuery(c, q, want[0].Position, &meowmx.ReadQueryOpts{Backward: true}))(t); len(got) != 0 {
				t.Fatalf("%s: backward before the first match got %d events", name, len(got))
			}
		}
		// After a position.
		if len(want) > 2 {
			after := must(s.ReadQuery(c, q, want[1].Position, &meowmx.ReadQueryOpts{Limit: 1}))(t)
			if len(after) != 1 || after[0].Position != want[2].Position {
				t.Fatalf("%s: after %s got %v, want the event at %s", name, want[1].Position, after, want[2].Position)
			}
		}
	}
	// A position after every event (on SQLite, any with a transaction id).
	beyond := meowmx.Position{TransactionID: 1 << 62}
	if got := must(s.ReadQuery(c, queries["everything"], beyond, nil))(t); len(got) != 0 {
		t.Fatalf("ReadQuery after %s returned %d events", beyond, len(got))
	}
	manyTypes := make([]string, meowmx.MaxQueryTypes+1)
	for i := range manyTypes {
		manyTypes[i] = fmt.Sprint("T", i)
	}
	for name, q := range map[string]meowmx.Query{
		"too many types": {Items: []meowmx.QueryItem{{Types: manyTypes}}},
		"repeated tag":   {Items: []meowmx.QueryItem{{Tags: []string{"a", "a"}}}},
		"empty tag":      {Items: []meowmx.QueryItem{{Tags: []string{""}}}},
		"empty type":     {Items: []meowmx.QueryItem{{Types: []string{""}}}},
	} {
		if _, err := s.ReadQuery(c, q, meowmx.Start, nil); !errors.Is(err, meowmx.ErrInvalidInput) {
			t.Errorf("%s: err = %v, want ErrInvalidInput", name, err)
		}
	}
}

func samePositions(t *testing.T, what string, got, want []meowmx.RecordedEvent) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d events, want %d", what, len(got), len(want))
	}
	for i := range want {
		if got[i].Position != want[i].Position || !slices.Equal(got[i].Tags, want[i].Tags) || got[i].Type != want[i].Type {
			t.Fatalf("%s: event %d at %s (%s %q), want %s (%s %q)", what, i, got[i].Position, got[i].Type, got[i].Tags,
				want[i].Position, want[i].Type, want[i].Tags)
		}
	}
}

// testSubTags: a subscription with Tags handles exactly the events that
// carry all of them, counts only those in its lag, and keeps its tags.
func testSubTags[TTx any](t *testing.T, h *Harness[TTx]) {
	s := h.NewStore(t, nil, true)
	c := ctx(t)
	want := map[uuid.UUID]bool{}
	appendSome := func(round int) {
		for i := range 30 {
			var tags []string
			if i%2 == 0 {
				tags = append(tags, "course:c1")
			}
			if i%3 == 0 {
				tags = append(tags, "student:s1")
			}
			if i%5 == 0 {
				tags = append(tags, "other")
			}
			rec := must(s.Append(c, meowmx.NewStream("enrol", fmt.Sprint(i%7)), meowmx.Any,
				tagged(fmt.Sprint("T", round), tags...)))(t)
			if slices.Contains(tags, "course:c1") && slices.Contains(tags, "student:s1") {
				want[rec[0].ID] = true
			}
		}
	}
	appendSome(0)
	var mu sync.Mutex
	got := map[uuid.UUID]int{}
	cfg := fast("tagged", meowmx.HandleEach(func(_ context.Context, _ TTx, e meowmx.RecordedEvent) error {
		mu.Lock()
		defer mu.Unlock()
		got[e.ID]++
		return nil
	}))
	cfg.Tags = []string{"student:s1", "course:c1"}
	cfg.Partitions = 2
	cfg.BatchSize = 4
	start(t, s, cfg)
	appendSome(1)
	if err := s.WaitCaughtUp(c, "tagged"); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	if len(got) != len(want) {
		t.Errorf("handled %d events, want the %d that carry both tags", len(got), len(want))
	}
	for id, n := range got {
		if !want[id] || n != 1 {
			t.Errorf("event %s handled %d times (carries both tags: %t)", id, n, want[id])
		}
	}
	mu.Unlock()
	for _, st := range must(s.SubscriptionStatuses(c, "tagged"))(t) {
		if st.Lag != 0 {
			t.Errorf("partition %d: lag %d after WaitCaughtUp", st.Partition, st.Lag)
		}
	}
	again := fast("tagged", meowmx.HandleEach(func(context.Context, TTx, meowmx.RecordedEvent) error { return nil }))
	again.Tags = []string{"course:c1"}
	sub, err := s.Subscribe(again)
	if err == nil {
		if err = sub.Start(c); err == nil {
			t.Cleanup(func() { stop(t, sub) })
		}
	}
	if !errors.Is(err, meowmx.ErrInvalidInput) {
		t.Errorf("the subscription started again with other tags: err = %v, want ErrInvalidInput", err)
	}
	bad := fast("bad", meowmx.HandleEach(func(context.Context, TTx, meowmx.RecordedEvent) error { return nil }))
	bad.Tags = []string{"x", "x"}
	if _, err := s.Subscribe(bad); !errors.Is(err, meowmx.ErrInvalidInput) {
		t.Errorf("Subscribe with a repeated tag: err = %v, want ErrInvalidInput", err)
	}
}

// testPositionNumbers: numbers increase in global order, also across
// transactions whose events interleave in sequence numbers, and
// NumberPosition turns each back into the bounds of the events around it.
func testPositionNumbers[TTx any](t *testing.T, h *Harness[TTx]) {
	s := h.NewStore(t, nil, true)
	c := ctx(t)
	total := 9
	if h.ConcurrentWriters {
		total += 6
		// Two transactions drawing sequence numbers in turns: the later
		// one's first event has a lower sequence number than the earlier
		// one's last.
		a := must(h.Begin(c, s))(t)
		b := must(h.Begin(c, s))(t)
		for i := range 3 {
			must(s.AppendTx(c, a, meowmx.NewStream("num", "a"), meowmx.Any, meowmx.Event{Type: "A", Data: []byte(fmt.Sprint(i))}))(t)
			must(s.AppendTx(c, b, meowmx.NewStream("num", "b"), meowmx.Any, meowmx.Event{Type: "B", Data: []byte(fmt.Sprint(i))}))(t)
		}
		if err := h.Commit(c, b); err != nil {
			t.Fatal(err)
		}
		if err := h.Commit(c, a); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 5 {
		events := make([]meowmx.Event, 1+i%3)
		for j := range events {
			events[j] = meowmx.Event{Type: "C", Data: []byte(fmt.Sprint(j))}
		}
		must(s.Append(c, meowmx.NewStream("num", fmt.Sprint("c", i)), meowmx.Any, events...))(t)
	}
	all := readAllWait(t, s, "", meowmx.Start, total)
	positions := make([]meowmx.Position, len(all)+1)
	for i, e := range all {
		positions[i+1] = e.Position
	}
	numbers := must(s.PositionNumbers(c, positions...))(t)
	if numbers[0] != 0 {
		t.Fatalf("Start's number is %d, want 0", numbers[0])
	}
	for i := 1; i < len(numbers); i++ {
		if numbers[i] <= numbers[i-1] || numbers[i] >= 1<<53 {
			t.Fatalf("numbers %v: %d is not above %d and below 2^53", numbers, numbers[i], numbers[i-1])
		}
	}
	for i, n := range numbers {
		at := must(s.NumberPosition(c, n))(t)
		if at != positions[i] {
			t.Fatalf("number %d: position %s, want %s", n, at, positions[i])
		}
		// One less: the event itself comes after it, and nothing before.
		if i == 0 {
			continue
		}
		before := must(s.NumberPosition(c, n-1))(t)
		next := must(s.ReadAll(c, before, &meowmx.ReadOpts{Limit: 1}))(t)
		if len(next) != 1 || next[0].Position != positions[i] {
			t.Fatalf("number %d: after the position of %d (%s) comes %v, want %s", n, n-1, before, next, positions[i])
		}
	}
	// Positions that are no event's have no number.
	last := positions[len(positions)-1]
	if _, err := s.PositionNumbers(c, meowmx.Position{TransactionID: last.TransactionID + 1000, Seq: 1}); !errors.Is(err, meowmx.ErrInvalidInput) {
		t.Errorf("PositionNumbers of no event's position: err = %v, want ErrInvalidInput", err)
	}
	if _, err := s.PositionNumbers(c, meowmx.Position{TransactionID: 1 << 40, Seq: 1}); !errors.Is(err, meowmx.ErrInvalidInput) && !errors.Is(err, errors.ErrUnsupported) {
		t.Errorf("PositionNumbers of a transaction ID of 2^40: err = %v", err)
	}
}
