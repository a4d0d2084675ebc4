package meowmxhttp_test

import (
	"encoding/json"
	"fmt"
	"math"
	"net/url"
	"slices"
	"sync"
	"testing"

	"github.com/meowmx/meowmx"
	"github.com/meowmx/meowmx/internal/testdb"
	"github.com/meowmx/meowmx/meowmxhttp"
)

func TestDCBPostgres(t *testing.T) {
	t.Parallel()
	testDCB(t, pgStore(t, &meowmx.Config{}))
}

func TestDCBSQLite(t *testing.T) {
	t.Parallel()
	testDCB(t, liteStore(t, &meowmx.Config{}))
}

// dcbEvent is an event as the DCB contract reads it.
type dcbEvent struct {
	Type     string   `json:"type"`
	Tags     []string `json:"tags"`
	Data     string   `json:"data"`
	Position int64    `json:"position"`
}

type dcbAppended struct {
	Duration        *int64 `json:"durationInMicroseconds"`
	ConditionFailed *bool  `json:"appendConditionFailed"`
}

// dcbRead reads through GET /dcb/read.
func (a *api[TTx]) dcbRead(query, options any) []dcbEvent {
	a.t.Helper()
	path := "/dcb/read?query=" + url.QueryEscape(mustJSON(a.t, query))
	if options != nil {
		path += "&options=" + url.QueryEscape(mustJSON(a.t, options))
	}
	var events []dcbEvent
	if got := a.do("GET", path, nil, nil, &events); got != 200 {
		a.t.Fatalf("GET %s: %d", path, got)
	}
	return events
}

// dcbAppend appends through POST /dcb/append and reports whether the
// condition failed.
func (a *api[TTx]) dcbAppend(events []map[string]any, condition map[string]any) bool {
	a.t.Helper()
	body := map[string]any{"events": events}
	if condition != nil {
		body["condition"] = condition
	}
	var out dcbAppended
	if got := a.do("POST", "/dcb/append", body, nil, &out); got != 200 || out.Duration == nil || out.ConditionFailed == nil || *out.Duration < 0 {
		a.t.Fatalf("POST /dcb/append: %d %+v", got, out)
	}
	return *out.ConditionFailed
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func dcbEv(typ, data string, tags ...string) map[string]any {
	return map[string]any{"type": typ, "data": data, "tags": tags}
}

func items(items ...map[string]any) map[string]any {
	if items == nil {
		items = []map[string]any{}
	}
	return map[string]any{"items": items}
}

func tagItem(types []string, tags ...string) map[string]any {
	return map[string]any{"types": types, "tags": tags}
}

func testDCB[TTx any](t *testing.T, store *meowmx.Store[TTx]) {
	if err := store.Migrate(t.Context()); err != nil {
		t.Fatal(err)
	}
	// Pages of 3 events, so that reads of more cross pages.
	a := serve(t, store, &meowmxhttp.Config{ReadLimitMax: 3})
	all := func(want int) []dcbEvent {
		t.Helper()
		var got []dcbEvent
		testdb.Eventually(t, func() (bool, string) {
			got = a.dcbRead(items(), nil)
			return len(got) >= want, fmt.Sprintf("%d events read, want %d", len(got), want)
		})
		return got
	}

	// Appends of strings, which read back exactly.
	datas := []string{"", `{"not":"parsed"}`, "quote \" and \\ and é and \u2028", "plain"}
	for i, d := range datas {
		if a.dcbAppend([]map[string]any{dcbEv("CourseDefined", d, fmt.Sprint("course:c", i%2))}, nil) {
			t.Fatal("an append without a condition failed its condition")
		}
	}
	if a.dcbAppend([]map[string]any{
		dcbEv("StudentSubscribed", "s1", "course:c0", "student:s1"),
		dcbEv("StudentSubscribed", "s2", "course:c1", "student:s2"),
		dcbEv("StudentSubscribed", "s3", "course:c0", "student:s3"),
	}, nil) {
		t.Fatal("an append without a condition failed its condition")
	}
	// An event appended through the rest of the API reads as its JSON text.
	if got := a.do("POST", "/events", body(nil, event("Note", `{"a": [1, 2]}`, "note")), nil, nil); got != 201 {
		t.Fatalf("POST /events: %d", got)
	}
	log := all(8)
	if len(log) != 8 {
		t.Fatalf("%d events, want 8", len(log))
	}
	for i, d := range datas {
		if log[i].Data != d || log[i].Type != "CourseDefined" || !slices.Equal(log[i].Tags, []string{fmt.Sprint("course:c", i%2)}) {
			t.Fatalf("event %d: %+v, want data %q", i, log[i], d)
		}
	}
	if log[7].Data != `{"a": [1, 2]}` && log[7].Data != `{"a":[1,2]}` {
		t.Fatalf("an event of the API's reads with data %q", log[7].Data)
	}
	for i := 1; i < len(log); i++ {
		if log[i].Position <= log[i-1].Position || log[i].Position >= 1<<53 {
			t.Fatalf("positions %d then %d", log[i-1].Position, log[i].Position)
		}
	}
	if log[0].Position <= 0 {
		t.Fatalf("first position %d", log[0].Position)
	}
	reversed := slices.Clone(log)
	slices.Reverse(reversed)

	// Queries, options and their bounds.
	c0 := func(events []dcbEvent) []dcbEvent {
		var out []dcbEvent
		for _, e := range events {
			if slices.Contains(e.Tags, "course:c0") && (e.Type == "StudentSubscribed") {
				out = append(out, e)
			}
		}
		return out
	}
	checks := []struct {
		name           string
		query, options any
		want           []dcbEvent
	}{
		{"everything", items(), nil, log},
		{"limit", items(), map[string]any{"limit": 5}, log[:5]},
		{"from, inclusive", items(), map[string]any{"from": log[3].Position}, log[3:]},
		{"from and limit", items(), map[string]any{"from": log[2].Position, "limit": 4}, log[2:6]},
		{"backwards", items(), map[string]any{"backwards": true}, reversed},
		{"last one", items(), map[string]any{"backwards": true, "limit": 1}, reversed[:1]},
		{"backwards from, inclusive", items(), map[string]any{"backwards": true, "from": log[5].Position}, reversed[2:]},
		{"backwards from and limit", items(), map[string]any{"backwards": true, "from": log[5].Position, "limit": 4}, reversed[2:6]},
		{"tag and type", items(tagItem([]string{"StudentSubscribed"}, "course:c0")), nil, c0(log)},
		{"two items", items(tagItem(nil, "student:s2"), tagItem([]string{"Note"})), nil, []dcbEvent{log[5], log[7]}},
		{"no match", items(tagItem(nil, "course:c9")), nil, nil},
		{"after the end", items(), map[string]any{"from": log[7].Position + 1}, nil},
		{"from the lowest number", items(), map[string]any{"from": math.MinInt64}, log},
		{"backwards from the highest number", items(), map[string]any{"backwards": true, "from": math.MaxInt64}, reversed},
		{"backwards from before the first", items(), map[string]any{"backwards": true, "from": 0}, nil},
	}
	for _, c := range checks {
		got := a.dcbRead(c.query, c.options)
		if len(got) != len(c.want) {
			t.Fatalf("%s: %d events, want %d", c.name, len(got), len(c.want))
		}
		for i := range got {
			if got[i].Position != c.want[i].Position || got[i].Data != c.want[i].Data {
				t.Fatalf("%s: event %d %+v, want %+v", c.name, i, got[i], c.want[i])
			}
		}
	}

	// Conditions: nothing matching after the position read appends;
	// something matching fails and writes nothing, as a 200.
	last := c0(log)[len(c0(log))-1]
	cond := func(after *int64) map[string]any {
		m := map[string]any{"failIfEventsMatch": items(tagItem([]string{"StudentSubscribed"}, "course:c0"))}
		if after != nil {
			m["after"] = *after
		}
		return m
	}
	if a.dcbAppend([]map[string]any{dcbEv("StudentSubscribed", "s4", "course:c0", "student:s4")}, cond(&last.Position)) {
		t.Fatal("the condition failed with nothing matching after the last match")
	}
	earlier := log[0].Position
	if !a.dcbAppend([]map[string]any{dcbEv("StudentSubscribed", "s5", "course:c0", "student:s5")}, cond(&earlier)) {
		t.Fatal("the condition passed with matches after its position")
	}
	if !a.dcbAppend([]map[string]any{dcbEv("StudentSubscribed", "s5", "course:c0", "student:s5")}, cond(nil)) {
		t.Fatal("the condition without a position passed with matches")
	}
	if !a.dcbAppend([]map[string]any{dcbEv("X", "x")}, map[string]any{"failIfEventsMatch": items()}) {
		t.Fatal("a condition without items passed (it matches every event)")
	}
	if a.dcbAppend([]map[string]any{dcbEv("X", "x", "fresh")}, map[string]any{"failIfEventsMatch": items(tagItem(nil, "fresh"))}) {
		t.Fatal("the condition on a tag no event has failed")
	}
	log = all(10)
	if len(log) != 10 || log[8].Data != "s4" || log[9].Tags[0] != "fresh" {
		t.Fatalf("after the conditional appends: %+v", log[8:])
	}

	// Bad input is a 400 with the API's error, and writes nothing.
	bad := []struct {
		method, path string
		body         any
	}{
		{"GET", "/dcb/read", nil},
		{"GET", "/dcb/read?query=" + url.QueryEscape(`{"items":[{"tags":[""]}]}`), nil},
		{"GET", "/dcb/read?query=" + url.QueryEscape(`{"itemz":[]}`), nil},
		{"GET", "/dcb/read?query=" + url.QueryEscape(`{"items":[]}`) + "&options=" + url.QueryEscape(`{"limit":-1}`), nil},
		{"GET", "/dcb/read?query=" + url.QueryEscape(`{"items":[]}`) + "&options=" + url.QueryEscape(`{"from":"1"}`), nil},
		{"POST", "/dcb/append", map[string]any{"events": []any{}}},
		{"POST", "/dcb/append", map[string]any{"events": []any{map[string]any{"type": "A", "data": 7}}}},
		{"POST", "/dcb/append", map[string]any{"events": []any{map[string]any{"type": "A"}}}},
		{"POST", "/dcb/append", map[string]any{"events": []any{dcbEv("", "x")}}},
		{"POST", "/dcb/append", map[string]any{"events": []any{dcbEv("A", "x", "")}}},
		{"POST", "/dcb/append", map[string]any{"events": []any{dcbEv("A", "x")}, "condition": map[string]any{"after": 1}}},
	}
	for _, b := range bad {
		a.wantError(b.method, b.path, b.body, nil, 400, "invalid_input")
	}
	if got := all(10); len(got) != 10 {
		t.Fatalf("bad input wrote: %d events", len(got))
	}
}

// TestDCBRaces: writers that each read the last event of a query and
// append on the condition that nothing matched after it never both record
// a decision made on the same state.
func TestDCBRacesPostgres(t *testing.T) {
	t.Parallel()
	testDCBRaces(t, pgStore(t, &meowmx.Config{}))
}

func TestDCBRacesSQLite(t *testing.T) {
	t.Parallel()
	testDCBRaces(t, liteStore(t, &meowmx.Config{}))
}

func testDCBRaces[TTx any](t *testing.T, store *meowmx.Store[TTx]) {
	if err := store.Migrate(t.Context()); err != nil {
		t.Fatal(err)
	}
	a := serve(t, store, nil)
	query := items(tagItem(nil, "seat:1"))
	const writers, attempts = 4, 15
	type decision struct {
		after    int64
		recorded bool
	}
	var mu sync.Mutex
	var made []decision
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			for i := range attempts {
				var cond map[string]any
				after := int64(0)
				if last := a.dcbRead(query, map[string]any{"backwards": true, "limit": 1}); len(last) == 1 {
					after = last[0].Position
				}
				cond = map[string]any{"failIfEventsMatch": query, "after": after}
				failed := a.dcbAppend([]map[string]any{dcbEv("Taken", fmt.Sprint(w, "/", i), "seat:1")}, cond)
				mu.Lock()
				made = append(made, decision{after, !failed})
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	recorded := map[int64]int{}
	n := 0
	for _, d := range made {
		if d.recorded {
			recorded[d.after]++
			n++
		}
	}
	for after, count := range recorded {
		if count > 1 {
			t.Fatalf("%d appends recorded on the same state (after %d)", count, after)
		}
	}
	var log []dcbEvent
	testdb.Eventually(t, func() (bool, string) {
		log = a.dcbRead(query, nil)
		return len(log) >= n, fmt.Sprintf("%d events read, %d recorded", len(log), n)
	})
	if len(log) != n || n == 0 {
		t.Fatalf("%d events, %d recorded", len(log), n)
	}
	// Each recorded decision was made on the event before it.
	if recorded[0] != 1 {
		t.Fatalf("%d decisions on the empty state recorded", recorded[0])
	}
	for i := 1; i < len(log); i++ {
		if recorded[log[i-1].Position] != 1 {
			t.Fatalf("event %d was not decided after event %d (%d)", i, i-1, log[i-1].Position)
		}
	}
}
