// Package bench runs meowmx's benchmark scenarios, each against a baseline
// of raw SQL on the same database, with the same connections and payloads,
// in the same run: the figures that carry across machines are the ratios.
package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"runtime"
	"slices"
	"strings"
	"time"
)

// Scenarios are the scenario names, in the order "all" runs them.
var Scenarios = []string{"append-1", "append-100", "contention", "dcb", "read-stream", "catch-up", "latency", "growth"}

// Options configures a run. Zero values take the defaults.
type Options struct {
	Scenarios     []string      // default all
	Duration      time.Duration // per measured setting and side; default 10s
	Writers       []int         // append-1: default 1, 8, 32, 64
	BatchWriters  []int         // append-100: default 1, 8
	CatchUpEvents int           // default 1,000,000
	StreamLength  int           // read-stream: default 1,000
	LatencyRate   int           // events per second: default 1,000
	GrowthSizes   []int         // default 0, 1,000,000, 5,000,000
	GrowthWriters int           // growth's append-1: default 8
	// Otel measures the cost of instrumentation: the scenarios (of
	// OtelScenarios) compare a store observed by meowmxotel with in-memory
	// exporters against the same store without it, instead of raw SQL.
	Otel           bool
	Out            io.Writer     // the results table
	Progress       io.Writer     // set-up progress
	ProgressPeriod time.Duration // default 2s
}

func (o *Options) withDefaults() *Options {
	out := *o
	if len(out.Scenarios) == 0 {
		out.Scenarios = Scenarios
	}
	if out.Duration <= 0 {
		out.Duration = 10 * time.Second
	}
	if len(out.Writers) == 0 {
		out.Writers = []int{1, 8, 32, 64}
	}
	if len(out.BatchWriters) == 0 {
		out.BatchWriters = []int{1, 8}
	}
	if out.CatchUpEvents <= 0 {
		out.CatchUpEvents = 1_000_000
	}
	if out.StreamLength <= 0 {
		out.StreamLength = 1000
	}
	if out.LatencyRate <= 0 {
		out.LatencyRate = 1000
	}
	if len(out.GrowthSizes) == 0 {
		out.GrowthSizes = []int{0, 1_000_000, 5_000_000}
	}
	if out.GrowthWriters <= 0 {
		out.GrowthWriters = 8
	}
	if out.Out == nil {
		out.Out = io.Discard
	}
	if out.Progress == nil {
		out.Progress = io.Discard
	}
	if out.ProgressPeriod <= 0 {
		out.ProgressPeriod = 2 * time.Second
	}
	return &out
}

// MaxWriters is the most connections a run with these options uses at once
// for its writers.
func (o *Options) MaxWriters() int {
	o = o.withDefaults()
	return max(slices.Max(o.Writers), slices.Max(o.BatchWriters), o.GrowthWriters, 8)
}

// Validate reports options that cannot run.
func (o *Options) Validate() error {
	for _, s := range o.Scenarios {
		if !slices.Contains(Scenarios, s) {
			return fmt.Errorf("unknown scenario %q (one of %s, or all)", s, strings.Join(Scenarios, ", "))
		}
	}
	for _, w := range append(slices.Clone(o.Writers), o.BatchWriters...) {
		if w < 1 {
			return fmt.Errorf("writer counts must be at least 1, got %d", w)
		}
	}
	if o.Otel {
		for _, s := range o.withDefaults().Scenarios {
			if !slices.Contains(OtelScenarios, s) {
				return fmt.Errorf("--otel measures the scenarios %s, not %s", strings.Join(OtelScenarios, " and "), s)
			}
		}
	}
	for i, n := range o.GrowthSizes {
		if n < 0 || (i > 0 && n <= o.GrowthSizes[i-1]) {
			return fmt.Errorf("growth sizes must be increasing and not negative, got %v", o.GrowthSizes)
		}
	}
	return nil
}

// Result is one scenario at one setting. Ratio is meowmx relative to the
// baseline, the higher the better for meowmx: meowmx/baseline for rates,
// baseline/meowmx for times.
type Result struct {
	Scenario string             `json:"scenario"`
	Setting  string             `json:"setting"`
	Writers  int                `json:"writers,omitempty"`
	Stored   *int               `json:"events_stored,omitempty"`
	Metric   string             `json:"metric"`
	Meowmx   float64            `json:"meowmx"`
	Baseline *float64           `json:"baseline"`
	Ratio    *float64           `json:"ratio"`
	Target   string             `json:"target,omitempty"`
	Met      *bool              `json:"met,omitempty"`
	Extra    map[string]float64 `json:"extra,omitempty"`
	// lowerIsBetter marks times (for the ratio's direction and printing).
	lowerIsBetter bool
}

// Report is a run's results with what they ran on.
type Report struct {
	Started  time.Time `json:"started"`
	Database string    `json:"database"`
	Go       string    `json:"go"`
	OS       string    `json:"os"`
	CPUs     int       `json:"cpus"`
	Host     string    `json:"host,omitempty"`
	Duration string    `json:"duration"`
	Results  []Result  `json:"results"`
}

// WriteJSON writes the report as indented JSON.
func (r *Report) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

// Missed lists the results below their targets.
func (r *Report) Missed() []Result {
	var missed []Result
	for _, res := range r.Results {
		if res.Met != nil && !*res.Met {
			missed = append(missed, res)
		}
	}
	return missed
}

// Run runs the scenarios on db and prints each result as it comes.
func Run(ctx context.Context, db *Database, opts *Options) (*Report, error) {
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	o := opts.withDefaults()
	host, _ := os.Hostname()
	report := &Report{
		Started: time.Now().UTC().Truncate(time.Second), Database: db.name,
		Go: runtime.Version(), OS: runtime.GOOS + "/" + runtime.GOARCH, CPUs: runtime.NumCPU(),
		Host: host, Duration: o.Duration.String(),
	}
	r := &runner{db: db, o: o, report: report}
	fmt.Fprintf(o.Out, "meowmx bench on %s, %d CPUs, %s per setting and side\n\n", db.name, report.CPUs, o.Duration)
	fmt.Fprintf(o.Out, "%-12s %-30s %22s %22s %8s  %s\n", "scenario", "setting", "meowmx", "baseline", "ratio", "target")
	for _, name := range Scenarios {
		if !slices.Contains(o.Scenarios, name) {
			continue
		}
		if err := db.reset(ctx); err != nil {
			return report, fmt.Errorf("%s: reset: %w", name, err)
		}
		store, err := db.store()
		if err != nil {
			return report, err
		}
		r.store = store
		run := r.scenario
		if o.Otel {
			run = r.otelCost
		}
		if err := run(ctx, name); err != nil {
			return report, fmt.Errorf("%s: %w", name, err)
		}
	}
	return report, nil
}

type runner struct {
	db     *Database
	o      *Options
	store  *side
	report *Report
}

// appendTarget is append-1's target ratio at a number of writers: a lone
// writer cannot be grouped with others, so it is only expected to come
// close to a bare INSERT; concurrent writers are grouped, and expected to
// beat one INSERT per append.
func (r *runner) appendTarget(writers int) float64 {
	switch {
	case r.db.driver == "sqlite" && writers == 1:
		return 0.9
	case r.db.driver == "sqlite":
		return 3
	case writers == 1:
		return 0.95
	}
	return 1.5
}

func (r *runner) scenario(ctx context.Context, name string) error {
	switch name {
	case "append-1":
		return r.appendN(ctx, "append-1", 1, r.o.Writers, r.appendTarget)
	case "append-100":
		return r.appendN(ctx, "append-100", 100, r.o.BatchWriters, func(int) float64 { return 1.0 })
	case "contention":
		return r.contention(ctx)
	case "dcb":
		return r.dcb(ctx)
	case "read-stream":
		return r.readStream(ctx)
	case "catch-up":
		return r.catchUp(ctx)
	case "latency":
		return r.latency(ctx)
	case "growth":
		return r.growth(ctx)
	}
	return fmt.Errorf("unknown scenario %q", name)
}

// add records a result and prints it.
func (r *runner) add(res Result) {
	if res.Baseline != nil && *res.Baseline > 0 && res.Meowmx > 0 {
		ratio := res.Meowmx / *res.Baseline
		if res.lowerIsBetter {
			ratio = *res.Baseline / res.Meowmx
		}
		res.Ratio = &ratio
	}
	r.report.Results = append(r.report.Results, res)
	baseline, ratio, target := "-", "-", res.Target
	if res.Baseline != nil {
		baseline = formatFigure(*res.Baseline, res.Metric)
	}
	if res.Ratio != nil {
		ratio = fmt.Sprintf("%.2f×", *res.Ratio)
	}
	if res.Met != nil {
		if *res.Met {
			target += " met"
		} else {
			target += " MISSED"
		}
	}
	if vs, ok := res.Extra["meowmx_vs_first"]; ok {
		target = fmt.Sprintf("%.2f of first (baseline %.2f); %s", vs, res.Extra["baseline_vs_first"], target)
	}
	if m50, ok := res.Extra["meowmx_p50_ms"]; ok {
		target += fmt.Sprintf("; p50 %.2f/%.2f ms, p99 %.2f/%.2f ms", m50, res.Extra["baseline_p50_ms"], res.Extra["meowmx_p99_ms"], res.Extra["baseline_p99_ms"])
	}
	fmt.Fprintf(r.o.Out, "%-12s %-30s %22s %22s %8s  %s\n", res.Scenario, res.Setting,
		formatFigure(res.Meowmx, res.Metric), baseline, ratio, target)
}

func ptr[T any](v T) *T { return &v }

// formatFigure prints a figure with its unit and thousands separators.
func formatFigure(v float64, unit string) string {
	if v >= 100 {
		return group(int64(v+0.5)) + " " + unit
	}
	return fmt.Sprintf("%.2f %s", v, unit)
}

func group(n int64) string {
	s := fmt.Sprint(n)
	if n < 0 {
		return "-" + group(-n)
	}
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	return b.String()
}

// progress prints a set-up step's advance at most every ProgressPeriod, and
// its end.
type progress struct {
	w      io.Writer
	what   string
	total  int
	start  time.Time
	last   time.Time
	period time.Duration
}

func (r *runner) progress(what string, total int) *progress {
	now := time.Now()
	return &progress{w: r.o.Progress, what: what, total: total, start: now, last: now, period: r.o.ProgressPeriod}
}

func (p *progress) update(done int) {
	now := time.Now()
	if done < p.total && now.Sub(p.last) < p.period {
		return
	}
	p.last = now
	elapsed := now.Sub(p.start)
	rate := float64(done) / max(elapsed.Seconds(), 1e-9)
	fmt.Fprintf(p.w, "  %s: %s of %s (%d%%), %s, %s/s\n", p.what, group(int64(done)), group(int64(p.total)),
		int64(done)*100/int64(max(p.total, 1)), elapsed.Round(100*time.Millisecond), group(int64(rate)))
}
