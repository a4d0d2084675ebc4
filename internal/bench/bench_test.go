package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"encoding/xml"
	"io"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/meowmx/meowmx/internal/testdb"
)

func TestMain(m *testing.M) { testdb.Main(m) }

// small runs every scenario in a fraction of a second per setting.
func small(out io.Writer) *Options {
	return &Options{
		Duration: 150 * time.Millisecond, Writers: []int{1, 4}, BatchWriters: []int{1, 2},
		CatchUpEvents: 3000, StreamLength: 50, LatencyRate: 200,
		GrowthSizes: []int{0, 2500}, GrowthWriters: 2,
		Out: out, Progress: out, ProgressPeriod: time.Nanosecond,
	}
}

func TestRunSQLite(t *testing.T) {
	t.Parallel()
	db, err := OpenSQLite(context.Background(), filepath.Join(t.TempDir(), "bench.db"), "bench")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	checkRun(t, db, false)
}

func TestRunPostgres(t *testing.T) {
	t.Parallel()
	pool := testdb.Pool(t) // reachable, or skip (fail under CI)
	schema := "bench_" + testdb.SchemaName(t)
	t.Cleanup(func() {
		if _, err := pool.Exec(context.Background(), `DROP SCHEMA IF EXISTS "`+schema+`" CASCADE`); err != nil {
			t.Error(err)
		}
	})
	db, err := OpenPostgres(context.Background(), testdb.URL(), schema, 12)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	checkRun(t, db, true)
}

// checkRun runs every scenario and checks what a reader of the results
// relies on: every scenario and setting has its figures, ratios go the
// right way, the JSON and the chart are well-formed.
func checkRun(t *testing.T, db *Database, notifications bool) {
	t.Helper()
	var out bytes.Buffer
	report, err := Run(context.Background(), db, small(&out))
	if err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	t.Log(out.String())

	want := map[string]int{"append-1": 2, "append-100": 2, "contention": 1, "dcb": 3, "read-stream": 1, "catch-up": 1, "latency": 1, "growth": 4}
	got := map[string]int{}
	for _, res := range report.Results {
		got[res.Scenario]++
		if res.Meowmx <= 0 {
			t.Errorf("%s %s: meowmx figure %v", res.Scenario, res.Setting, res.Meowmx)
		}
		hasBaseline := res.Scenario != "latency" || notifications
		if hasBaseline != (res.Baseline != nil) {
			t.Errorf("%s %s: baseline %v, want one: %v", res.Scenario, res.Setting, res.Baseline, hasBaseline)
		}
		if res.Baseline != nil {
			if res.Ratio == nil {
				t.Fatalf("%s %s: no ratio", res.Scenario, res.Setting)
			}
			want := res.Meowmx / *res.Baseline
			if res.lowerIsBetter {
				want = *res.Baseline / res.Meowmx
			}
			if *res.Ratio != want {
				t.Errorf("%s %s: ratio %v, want %v", res.Scenario, res.Setting, *res.Ratio, want)
			}
		}
		if !strings.Contains(out.String(), res.Setting) {
			t.Errorf("%s %s not printed", res.Scenario, res.Setting)
		}
	}
	for name, n := range want {
		if got[name] != n {
			t.Errorf("%s: %d results, want %d", name, got[name], n)
		}
	}
	if !strings.Contains(out.String(), "loading 3,000 events: 3,000 of 3,000 (100%)") {
		t.Errorf("no progress for the catch-up load in:\n%s", out.String())
	}

	var buf bytes.Buffer
	if err := report.WriteJSON(&buf); err != nil {
		t.Fatal(err)
	}
	var decoded struct {
		Results []map[string]any `json:"results"`
	}
	if err := json.Unmarshal(buf.Bytes(), &decoded); err != nil {
		t.Fatal(err)
	}
	if len(decoded.Results) != len(report.Results) {
		t.Fatalf("JSON holds %d results, want %d", len(decoded.Results), len(report.Results))
	}
	for _, r := range decoded.Results {
		for _, key := range []string{"scenario", "setting", "meowmx", "baseline", "ratio"} {
			if _, ok := r[key]; !ok {
				t.Errorf("JSON result %v lacks %q", r, key)
			}
		}
	}

	buf.Reset()
	if err := report.WriteChart(&buf); err != nil {
		t.Fatal(err)
	}
	checkSVG(t, buf.Bytes(), 4) // two panels, two lines each
}

// checkSVG parses the chart as XML and counts its lines.
func checkSVG(t *testing.T, svg []byte, lines int) {
	t.Helper()
	dec := xml.NewDecoder(bytes.NewReader(svg))
	polylines := 0
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("chart is not well-formed XML: %v\n%s", err, svg)
		}
		if el, ok := tok.(xml.StartElement); ok && el.Name.Local == "polyline" {
			polylines++
		}
	}
	if polylines != lines {
		t.Fatalf("chart has %d lines, want %d", polylines, lines)
	}
}

func TestChartWithoutAppends(t *testing.T) {
	r := &Report{Results: []Result{{Scenario: "read-stream", Meowmx: 1}}}
	if err := r.WriteChart(io.Discard); err == nil {
		t.Fatal("a chart of no append results was written")
	}
}

// TestRunOtel runs --otel's scenarios on both databases: each result
// compares the instrumented store with the plain one (otelCost fails if the
// instrumentation made no spans or metrics).
func TestRunOtel(t *testing.T) {
	t.Parallel()
	lite, err := OpenSQLite(context.Background(), filepath.Join(t.TempDir(), "bench.db"), "bench")
	if err != nil {
		t.Fatal(err)
	}
	defer lite.Close()
	pool := testdb.Pool(t)
	schema := "bench_" + testdb.SchemaName(t)
	t.Cleanup(func() {
		if _, err := pool.Exec(context.Background(), `DROP SCHEMA IF EXISTS "`+schema+`" CASCADE`); err != nil {
			t.Error(err)
		}
	})
	pg, err := OpenPostgres(context.Background(), testdb.URL(), schema, 12)
	if err != nil {
		t.Fatal(err)
	}
	defer pg.Close()
	for _, db := range []*Database{lite, pg} {
		var out bytes.Buffer
		o := small(&out)
		o.Otel, o.Scenarios = true, OtelScenarios
		report, err := Run(context.Background(), db, o)
		if err != nil {
			t.Fatalf("%s: %v\n%s", db.Name(), err, out.String())
		}
		if len(report.Results) != 5 {
			t.Fatalf("%s: %d results, want 5 (append-1 at 2 writer counts, with spans and with spans that need a parent; catch-up)\n%s", db.Name(), len(report.Results), out.String())
		}
		for _, res := range report.Results {
			if !strings.Contains(res.Setting, "otel on/off") || res.Ratio == nil || res.Met == nil {
				t.Errorf("%s: result %+v", db.Name(), res)
			}
		}
		if !strings.Contains(out.String(), "spans exported") {
			t.Errorf("%s: no count of spans in\n%s", db.Name(), out.String())
		}
	}
}

func TestValidate(t *testing.T) {
	for _, o := range []Options{
		{Scenarios: []string{"append-2"}},
		{Writers: []int{0}},
		{GrowthSizes: []int{0, 5, 5}},
		{GrowthSizes: []int{-1}},
		{Otel: true, Scenarios: []string{"append-100"}},
		{Otel: true}, // all: append-100 and the rest cannot be measured on and off
	} {
		if err := o.Validate(); err == nil {
			t.Errorf("%+v: no error", o)
		}
	}
	if err := (&Options{}).Validate(); err != nil {
		t.Error(err)
	}
}

func TestPercentileAndFormat(t *testing.T) {
	var d []time.Duration
	for i := 1; i <= 100; i++ {
		d = append(d, time.Duration(i)*time.Millisecond)
	}
	slices.Reverse(d)
	p50, p95, p99 := latencyPercentiles(d)
	if p50 != 50 || p95 != 95 || p99 != 99 {
		t.Errorf("percentiles of 1..100 ms: %v %v %v", p50, p95, p99)
	}
	for v, want := range map[float64]string{1234567: "1,234,567 events/s", 999.6: "1,000 events/s", 2.345: "2.35 events/s"} {
		if got := formatFigure(v, "events/s"); got != want {
			t.Errorf("formatFigure(%v) = %q, want %q", v, got, want)
		}
	}
	for v, want := range map[float64]float64{0: 1, 7: 10, 13: 20, 4100: 5000, 15000: 20000} {
		if got := niceCeil(v); got != want {
			t.Errorf("niceCeil(%v) = %v, want %v", v, got, want)
		}
	}
}

// TestCompareRoundsAlternates: the side that goes first alternates from
// round to round (baseline, meowmx, meowmx, baseline...), after a warm-up
// of each.
func TestCompareRoundsAlternates(t *testing.T) {
	var mu sync.Mutex
	var order []string
	var last context.Context // each run gives its ops a context of its own
	side := func(name string) []op {
		return []op{func(ctx context.Context) (int, error) {
			mu.Lock()
			defer mu.Unlock()
			if ctx != last {
				order, last = append(order, name), ctx
			}
			return 1, nil
		}}
	}
	m, b, err := compareRounds(context.Background(), 4*time.Millisecond, 4, side("m"), side("b"))
	if err != nil {
		t.Fatal(err)
	}
	// The warm-up's baseline and meowmx, then four rounds.
	if got, want := strings.Join(order, " "), "b m b m m b b m m b"; got != want {
		t.Errorf("order of the sides: %q, want %q", got, want)
	}
	if m.events == 0 || b.events == 0 {
		t.Errorf("events counted: meowmx %d, baseline %d", m.events, b.events)
	}
}

// TestCatchUpFromStandby runs catch-up on a cluster of its own with a hot
// standby: the subscription reading from the standby is measured against
// the one reading from the primary.
func TestCatchUpFromStandby(t *testing.T) {
	t.Parallel()
	primary := testdb.NewCluster(t)
	standby := testdb.NewStandby(t, primary)
	db, err := OpenPostgres(context.Background(), primary.URL(), "meowmx_bench", 12)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := db.AddReplica(context.Background(), primary.URL()); err == nil || !strings.Contains(err.Error(), "not a standby") {
		t.Fatalf("AddReplica of the primary itself: %v, want an error saying it is not a standby", err)
	}
	if err := db.AddReplica(context.Background(), standby.URL()); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	o := small(&out)
	o.Scenarios = []string{"catch-up"}
	report, err := Run(context.Background(), db, o)
	if err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	if len(report.Results) != 2 || !strings.Contains(report.Results[1].Setting, "from the standby") || report.Results[1].Ratio == nil {
		t.Fatalf("results %+v, want catch-up and catch-up from the standby\n%s", report.Results, out.String())
	}
}
