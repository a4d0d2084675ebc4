package storetest

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"testing"

	"github.com/meowmx/meowmx"
	"github.com/meowmx/meowmx/internal/testdb"
)

// testBrowse checks Streams and Categories: every stream and category once
// across pages, in a stable order, with their counts and last events.
func testBrowse[TTx any](t *testing.T, h *Harness[TTx]) {
	s := h.NewStore(t, nil, true)
	c := ctx(t)
	if got := must(s.Streams(c, nil))(t); len(got) != 0 {
		t.Fatalf("Streams of an empty store = %v", got)
	}
	if got := must(s.Categories(c, nil))(t); len(got) != 0 {
		t.Fatalf("Categories of an empty store = %v", got)
	}
	sizes := map[meowmx.Stream]int{
		meowmx.NewStream("acc", "1"): 3, meowmx.NewStream("acc", "10"): 1, meowmx.NewStream("acc", "2"): 2,
		meowmx.NewStream("acc", "two words"): 1, meowmx.NewStream("acc", "ü-1"): 2,
		meowmx.NewStream("bill", "9"): 4, meowmx.NewStream("cart", "x"): 1,
	}
	last := map[meowmx.Stream]meowmx.RecordedEvent{}
	// Two rounds, so that a category's last event is not its last stream's.
	for round := range 2 {
		for stream, n := range sizes {
			k := n / 2
			if round == 1 {
				k = n - n/2
			}
			for range k {
				rec := must(s.Append(c, stream, meowmx.Any, ev("Happened", `{}`)))(t)
				last[stream] = rec[0]
			}
		}
	}

	all := must(s.Streams(c, &meowmx.StreamsOpts{Limit: 100}))(t)
	if len(all) != len(sizes) {
		t.Fatalf("Streams returned %d streams, want %d: %v", len(all), len(sizes), all)
	}
	for i, in := range all {
		want, ok := last[in.Stream]
		if !ok || in.Version != int64(sizes[in.Stream]-1) || in.LastPosition != want.Position ||
			!in.LastRecordedAt.Equal(want.RecordedAt) {
			t.Fatalf("stream %d: %+v, want version %d, last event %s at %s", i, in, sizes[in.Stream]-1,
				want.Position, want.RecordedAt)
		}
		if i > 0 && all[i-1].Stream.Category > in.Stream.Category {
			t.Fatalf("stream %s listed after %s: categories out of order", in.Stream, all[i-1].Stream)
		}
	}
	// Pages of 2 give the same list.
	var paged []meowmx.StreamInfo
	opts := &meowmx.StreamsOpts{Limit: 2}
	for {
		page := must(s.Streams(c, opts))(t)
		paged = append(paged, page...)
		if len(page) < opts.Limit {
			break
		}
		opts.After = page[len(page)-1].Stream
	}
	if !slices.Equal(paged, all) {
		t.Fatalf("pages of 2 gave %v, want %v", paged, all)
	}
	// One category, paged.
	var acc []meowmx.StreamInfo
	opts = &meowmx.StreamsOpts{Category: "acc", Limit: 3}
	for {
		page := must(s.Streams(c, opts))(t)
		acc = append(acc, page...)
		if len(page) < opts.Limit {
			break
		}
		opts.After = page[len(page)-1].Stream
	}
	var wantAcc []meowmx.StreamInfo
	for _, in := range all {
		if in.Stream.Category == "acc" {
			wantAcc = append(wantAcc, in)
		}
	}
	if !slices.Equal(acc, wantAcc) {
		t.Fatalf("streams of acc in pages of 3 = %v, want %v", acc, wantAcc)
	}
	if got := must(s.Streams(c, &meowmx.StreamsOpts{Category: "none"}))(t); len(got) != 0 {
		t.Fatalf("streams of a category without events = %v", got)
	}

	cats := must(s.Categories(c, nil))(t)
	wantCats := []string{"acc", "bill", "cart"}
	if len(cats) != len(wantCats) {
		t.Fatalf("Categories = %v, want %v", cats, wantCats)
	}
	for i, in := range cats {
		var events, streams int64
		var lastEv meowmx.RecordedEvent
		for stream, n := range sizes {
			if stream.Category != in.Category {
				continue
			}
			events += int64(n)
			streams++
			if l := last[stream]; l.Position.Compare(lastEv.Position) > 0 {
				lastEv = l
			}
		}
		if in.Category != wantCats[i] || in.Events != events || in.Streams != streams ||
			in.LastPosition != lastEv.Position || !in.LastRecordedAt.Equal(lastEv.RecordedAt) {
			t.Fatalf("category %d: %+v, want %s with %d events in %d streams, last %s", i, in, wantCats[i], events, streams, lastEv.Position)
		}
	}
	page := must(s.Categories(c, &meowmx.CategoriesOpts{After: "acc", Limit: 1}))(t)
	if len(page) != 1 || page[0] != cats[1] {
		t.Fatalf("categories after acc, limit 1 = %v, want %v", page, cats[1:2])
	}

	for _, bad := range []struct {
		name string
		call func() error
	}{
		{"negative limit", func() error { _, err := s.Streams(c, &meowmx.StreamsOpts{Limit: -1}); return err }},
		{"bad category", func() error { _, err := s.Streams(c, &meowmx.StreamsOpts{Category: "a-b"}); return err }},
		{"after in another category", func() error {
			_, err := s.Streams(c, &meowmx.StreamsOpts{Category: "acc", After: meowmx.NewStream("bill", "9")})
			return err
		}},
		{"categories negative limit", func() error { _, err := s.Categories(c, &meowmx.CategoriesOpts{Limit: -1}); return err }},
	} {
		if err := bad.call(); !errors.Is(err, meowmx.ErrInvalidInput) {
			t.Errorf("%s: err = %v, want ErrInvalidInput", bad.name, err)
		}
	}
}

// testCategoryCounts: a listing stores a category's counts once it has
// counted enough events after the stored ones, and later listings add what
// followed; on PostgreSQL, events of a transaction still open when counts
// are stored are counted once it commits, though they come before events
// counted and stored meanwhile.
func testCategoryCounts[TTx any](t *testing.T, h *Harness[TTx]) {
	s := h.NewStore(t, nil, true)
	c := ctx(t)
	counts := func(want int64, wantStreams int64) {
		t.Helper()
		got := must(s.Categories(c, nil))(t)
		if len(got) != 1 || got[0].Category != "big" || got[0].Events != want || got[0].Streams != wantStreams {
			t.Fatalf("categories %+v, want big with %d events in %d streams", got, want, wantStreams)
		}
	}
	stored := func() int64 {
		t.Helper()
		rows := must(h.QueryPairs(c, s, "SELECT category, CAST(events AS text) FROM "+h.Table(s, "category_counts")))(t)
		if len(rows) == 0 {
			return 0
		}
		n, err := strconv.ParseInt(rows[0][1], 10, 64)
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	appendMany := func(from, streams, each int) {
		t.Helper()
		for i := from; i < from+streams; i++ {
			events := make([]meowmx.Event, each)
			for j := range events {
				events[j] = meowmx.Event{Type: "E", Data: []byte("{}")}
			}
			must(s.Append(c, meowmx.NewStream("big", fmt.Sprint(i)), meowmx.Any, events...))(t)
		}
	}
	// Counts are stored once below the horizon, which other transactions
	// of the cluster may hold for a while.
	storedAfterListing := func(want int64, wantStreams int64) {
		t.Helper()
		testdb.Eventually(t, func() (bool, string) {
			counts(want, wantStreams)
			got := stored()
			return got == want, fmt.Sprintf("stored counts: %d events, want %d", got, want)
		})
	}
	appendMany(0, 110, 10)
	readAllWait(t, s, "big", meowmx.Start, 1100)
	storedAfterListing(1100, 110)
	appendMany(110, 1, 5)
	readAllWait(t, s, "big", meowmx.Start, 1105)
	counts(1105, 111)
	if got := stored(); got != 1100 {
		t.Fatalf("stored counts after 5 more events: %d, want 1100 still", got)
	}
	if !h.ConcurrentWriters {
		return
	}
	// A transaction appends and stays open, holding the horizon; 1200
	// events commit after it. A listing counts those, and must not store
	// counts past the open transaction's events.
	tx := must(h.Begin(c, s))(t)
	must(s.AppendTx(c, tx, meowmx.NewStream("big", "open"), meowmx.Any,
		meowmx.Event{Type: "E", Data: []byte("{}")}, meowmx.Event{Type: "E", Data: []byte("{}")}, meowmx.Event{Type: "E", Data: []byte("{}")}))(t)
	appendMany(200, 120, 10)
	counts(2305, 231)
	if err := h.Commit(c, tx); err != nil {
		t.Fatal(err)
	}
	readAllWait(t, s, "big", meowmx.Start, 2308)
	storedAfterListing(2308, 232)
	counts(2308, 232)
}
