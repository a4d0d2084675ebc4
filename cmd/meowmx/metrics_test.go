package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/meowmx/meowmx"
	"github.com/meowmx/meowmx/internal/testdb"
)

// TestWorkMetrics runs "meowmx work --metrics" and reads its /metrics
// text: the handled events, the lag, the parked gauge and the horizon.
func TestWorkMetrics(t *testing.T) {
	t.Parallel()
	db := sqliteDB(t)
	mustRun(t, "", "--db", db, "migrate")
	for i := range 5 {
		mustRun(t, "", "--db", db, "append", "job", fmt.Sprint(i), "--type", "Queued", "--data", "{}")
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var stdout, stderr testdb.Buffer
	exited := make(chan int, 1)
	go func() {
		exited <- run(ctx, []string{"--db", db, "work", "--subscription", "printer", "--category", "job", "--metrics", "127.0.0.1:0"},
			strings.NewReader(""), &stdout, &stderr)
	}()
	addr := regexp.MustCompile(`metrics at (http://\S+/metrics)`)
	var url string
	testdb.Eventually(t, func() (bool, string) {
		if m := addr.FindStringSubmatch(stderr.String()); m != nil {
			url = m[1]
			return true, ""
		}
		return false, "stderr: " + stderr.String()
	})
	scrape := func() string {
		resp, err := http.Get(url)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		if err != nil || resp.StatusCode != http.StatusOK {
			t.Fatalf("GET %s: %d %v\n%s", url, resp.StatusCode, err, body)
		}
		return string(body)
	}
	// The gauges are read at the start of a scrape, the counters at its
	// end: wait for a scrape that saw the work done, then scrape again.
	testdb.Eventually(t, func() (bool, string) {
		text := scrape()
		lag, _ := sample(text, "meowmx_subscription_lag", `meowmx_subscription="printer"`)
		v, ok := sample(text, "meowmx_subscription_events_handled_total", `meowmx_subscription="printer"`)
		return ok && v == 5 && lag == 0, fmt.Sprintf("handled %v (%v), lag %v", v, ok, lag)
	})
	text := scrape()
	if v, _ := sample(text, "meowmx_subscription_events_handled_total", `meowmx_subscription="printer"`); v != 5 {
		t.Errorf("meowmx_subscription_events_handled_total = %v, want 5", v)
	}
	for _, want := range []struct {
		name, labels string
		value        float64
	}{
		{"meowmx_subscription_lag", `meowmx_subscription="printer"`, 0},
		{"meowmx_subscription_parked", `meowmx_subscription="printer"`, 0},
		{"meowmx_subscription_time_behind_seconds", `meowmx_subscription="printer"`, 0},
		{"meowmx_horizon_age_seconds", `meowmx_schema="meowmx"`, 0},
	} {
		if v, ok := sample(text, want.name, want.labels); !ok || v != want.value {
			t.Errorf("%s{%s} = %v (found %v), want %v", want.name, want.labels, v, ok, want.value)
		}
	}
	for _, name := range []string{"meowmx_subscription_batch_duration_seconds_bucket", "meowmx_subscription_batch_duration_seconds_count", "go_goroutines"} {
		if _, ok := sample(text, name, ""); !ok {
			t.Errorf("no %s in\n%s", name, text)
		}
	}
	if got := len(decodeLines(t, stdout.String())); got != 5 {
		t.Errorf("work printed %d events, want 5", got)
	}
	cancel()
	if code := testdb.Recv(t, exited, "work to exit"); code != 0 {
		t.Fatalf("work exited with %d: %s", code, stderr.String())
	}
	if r := runCLI(t, "", "--db", db, "work", "--subscription", "printer", "--all", "--metrics", "nonsense"); r.code != exitUsage {
		t.Fatalf("--metrics nonsense: exit %d, %q", r.code, r.stderr)
	}
}

// sample returns the value of the first sample of metric name whose labels
// contain labels.
func sample(text, name, labels string) (float64, bool) {
	sc := bufio.NewScanner(strings.NewReader(text))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, name+"{") && !strings.HasPrefix(line, name+" ") {
			continue
		}
		if !strings.Contains(line, labels) {
			continue
		}
		v, err := strconv.ParseFloat(line[strings.LastIndexByte(line, ' ')+1:], 64)
		return v, err == nil
	}
	return 0, false
}

// fakeSource is a store's gauges for TestDashboardQueries.
type fakeSource struct{}

func (fakeSource) SubscriptionLags(context.Context, int64) ([]meowmx.SubscriptionLag, error) {
	return []meowmx.SubscriptionLag{{Name: "s", Events: 3, TimeBehind: time.Second, Parked: 1}}, nil
}
func (fakeSource) Horizon(context.Context) (*meowmx.Horizon, error) {
	return &meowmx.Horizon{Age: time.Second}, nil
}
func (fakeSource) Schema() string { return "meowmx" }

// TestDashboardQueries: every metric the Grafana dashboard and the README's
// queries name is exposed by --metrics once each instrument has a value.
func TestDashboardQueries(t *testing.T) {
	t.Parallel()
	var stderr testdb.Buffer
	m, err := startMetrics(&env{stderr: &stderr}, "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer m.stop(&stderr)
	unwatch, err := m.watch(fakeSource{})
	if err != nil {
		t.Fatal(err)
	}
	defer unwatch()
	ctx := context.Background()
	obs := m.obs
	stream := meowmx.NewStream("order", "1")
	a := obs.AppendStart(ctx, &meowmx.AppendStartData{Stream: stream, Events: 1})
	obs.AppendEnd(a, &meowmx.AppendEndData{AppendStartData: meowmx.AppendStartData{Stream: stream, Events: 1}, Outcome: meowmx.AppendRecorded, Retries: 1, Duration: time.Millisecond})
	r := obs.ReadStart(ctx, &meowmx.ReadStartData{Kind: meowmx.ReadKindAll})
	obs.ReadEnd(r, &meowmx.ReadEndData{ReadStartData: meowmx.ReadStartData{Kind: meowmx.ReadKindAll}, Events: 1, Duration: time.Millisecond})
	b := obs.BatchStart(ctx, &meowmx.BatchStartData{Subscription: "s", Events: []meowmx.RecordedEvent{{}}, Attempt: 1})
	obs.BatchEnd(b, &meowmx.BatchEndData{BatchStartData: meowmx.BatchStartData{Subscription: "s", Events: []meowmx.RecordedEvent{{}}}, Outcome: meowmx.BatchHandled})
	obs.AppendGroupDone(ctx, &meowmx.AppendGroupData{Appends: 2, Events: 2})
	obs.EventParked(ctx, &meowmx.EventParkedData{Subscription: "s"})
	obs.NotificationFailed(ctx, &meowmx.NotificationFailedData{Err: errors.New("down")})

	resp, err := http.Get("http://" + m.listener.Addr().String() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	// The metric names and label names of the scrape.
	exposed := map[string]bool{}
	label := regexp.MustCompile(`([a-z_]+)="`)
	for _, line := range lines(string(body)) {
		if strings.HasPrefix(line, "#") {
			continue
		}
		name, _, _ := strings.Cut(line, " ")
		name, labels, _ := strings.Cut(name, "{")
		exposed[name] = true
		for _, m := range label.FindAllStringSubmatch(labels, -1) {
			exposed[m[1]] = true
		}
	}

	var queries []string
	dashboard, err := os.ReadFile("../../docs/grafana-dashboard.json")
	if err != nil {
		t.Fatal(err)
	}
	var d struct {
		Panels []struct {
			Title   string
			Targets []struct{ Expr string }
		}
	}
	if err := json.Unmarshal(dashboard, &d); err != nil {
		t.Fatal(err)
	}
	for _, p := range d.Panels {
		for _, target := range p.Targets {
			queries = append(queries, target.Expr)
		}
	}
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, promql, ok := strings.Cut(string(readme), "```promql\n")
	if !ok {
		t.Fatal("the README has no promql block")
	}
	promql, _, _ = strings.Cut(promql, "```")
	queries = append(queries, promql)
	names := regexp.MustCompile(`meowmx_[a-z_]+`)
	checked := 0
	for _, q := range queries {
		for _, name := range names.FindAllString(q, -1) {
			checked++
			if !exposed[name] {
				t.Errorf("query %q names %s, which --metrics does not expose (as a metric or a label)", q, name)
			}
		}
	}
	if checked < 10 {
		t.Fatalf("checked only %d metric names", checked)
	}
}
