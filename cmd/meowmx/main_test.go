package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"regexp"
	"runtime/debug"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"

	"github.com/meowmx/meowmx/internal/testdb"
)

func TestMain(m *testing.M) {
	// Run as the command itself, for tests that need it in a process of
	// its own (to kill it): the arguments are a JSON array.
	if args := os.Getenv("MEOWMX_TEST_COMMAND"); args != "" {
		var list []string
		if err := json.Unmarshal([]byte(args), &list); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(2)
		}
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
		code := run(ctx, list, strings.NewReader(""), os.Stdout, os.Stderr)
		stop()
		os.Exit(code)
	}
	testdb.Main(m)
}

type result struct {
	code           int
	stdout, stderr string
}

func runCLI(t *testing.T, stdin string, args ...string) result {
	t.Helper()
	var stdout, stderr bytes.Buffer
	code := run(context.Background(), args, strings.NewReader(stdin), &stdout, &stderr)
	return result{code, stdout.String(), stderr.String()}
}

func mustRun(t *testing.T, stdin string, args ...string) result {
	t.Helper()
	r := runCLI(t, stdin, args...)
	if r.code != 0 {
		t.Fatalf("meowmx %s: exit %d, stderr %q", strings.Join(args, " "), r.code, r.stderr)
	}
	return r
}

func sqliteDB(t *testing.T) string {
	return "sqlite:" + filepath.Join(t.TempDir(), "cli.db")
}

func lines(s string) []string {
	s = strings.TrimSpace(s)
	if s == "" {
		return nil
	}
	return strings.Split(s, "\n")
}

func decodeLines(t *testing.T, s string) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, l := range lines(s) {
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("not a JSON line: %q", l)
		}
		out = append(out, m)
	}
	return out
}

func TestAppendAndRead(t *testing.T) {
	t.Parallel()
	db := sqliteDB(t)
	mustRun(t, "", "migrate", "--db", db)
	mustRun(t, "", "--db", db, "migrate") // idempotent, --db before the command

	r := mustRun(t, "", "append", "order", "1001", "--type", "OrderPlaced", "--data", `{"total":42}`, "--metadata", `{"correlation_id":"c1"}`, "--expect", "none", "--db", db)
	ev := decodeLines(t, r.stdout)
	if len(ev) != 1 {
		t.Fatalf("append printed %q", r.stdout)
	}
	for _, field := range []string{"position", "category", "stream_id", "version", "type", "data", "metadata", "event_id", "recorded_at"} {
		if _, ok := ev[0][field]; !ok {
			t.Errorf("append output lacks %q: %v", field, ev[0])
		}
	}
	if ev[0]["category"] != "order" || ev[0]["stream_id"] != "1001" || ev[0]["version"] != float64(0) || ev[0]["type"] != "OrderPlaced" {
		t.Fatalf("recorded %v", ev[0])
	}

	// A batch from stdin, atomic.
	r = mustRun(t, `{"type":"OrderPaid","data":{"amount":42}}
{"type":"OrderShipped","data":{"carrier":"cat"},"metadata":{"m":1},"id":"0b9d3e84-7d6c-4a5e-9c1e-1a2b3c4d5e6f"}
`, "--db", db, "append", "order", "1001", "--data", "-", "--expect", "0")
	if got := decodeLines(t, r.stdout); len(got) != 2 || got[1]["event_id"] != "0b9d3e84-7d6c-4a5e-9c1e-1a2b3c4d5e6f" || got[1]["version"] != float64(2) {
		t.Fatalf("batch printed %q", r.stdout)
	}

	// A version conflict: exit 3, one line.
	r = runCLI(t, "", "--db", db, "append", "order", "1001", "--type", "OrderCancelled", "--data", `{}`, "--expect", "0")
	if r.code != 3 || len(lines(r.stderr)) != 1 || !strings.Contains(r.stderr, "version conflict") {
		t.Fatalf("conflict: exit %d, stderr %q", r.code, r.stderr)
	}

	// Reading by stream, by category, globally, after a position.
	r = mustRun(t, "", "--db", db, "read", "order", "1001")
	all := decodeLines(t, r.stdout)
	if len(all) != 3 {
		t.Fatalf("read printed %d events", len(all))
	}
	r = mustRun(t, "", "--db", db, "read", "order", "1001", "--backward", "--limit", "1")
	if got := decodeLines(t, r.stdout); len(got) != 1 || got[0]["type"] != "OrderShipped" {
		t.Fatalf("backward read printed %q", r.stdout)
	}
	r = mustRun(t, "", "--db", db, "read", "--category", "order", "--after", all[0]["position"].(string))
	if got := decodeLines(t, r.stdout); len(got) != 2 {
		t.Fatalf("read after %s printed %q", all[0]["position"], r.stdout)
	}
	r = mustRun(t, "", "--db", db, "read", "--all", "--format", "text")
	if !strings.Contains(r.stdout, "POSITION") || !strings.Contains(r.stdout, "order-1001") {
		t.Fatalf("text read printed %q", r.stdout)
	}
}

func TestErrors(t *testing.T) {
	t.Parallel()
	db := sqliteDB(t)
	missing := runCLI(t, "", "--db", db, "read", "--all")
	if missing.code != 1 || !strings.Contains(missing.stderr, `run "meowmx --db '`+db+`' migrate" first`) || len(lines(missing.stderr)) != 1 {
		t.Fatalf("missing schema: exit %d, stderr %q", missing.code, missing.stderr)
	}
	mustRun(t, "", "--db", db, "migrate")
	cases := []struct {
		name string
		args []string
		code int
		want string
	}{
		{"bad JSON", []string{"append", "order", "1", "--type", "A", "--data", `{"a":`}, 2, "not valid JSON"},
		{"bad JSON on stdin", []string{"append", "order", "1", "--data", "-"}, 2, "line 1"},
		{"unknown flag", []string{"append", "order", "1", "--colour", "red"}, 2, "flag provided but not defined: -colour"},
		{"non-numeric --expect", []string{"append", "order", "1", "--type", "A", "--data", "{}", "--expect", "seven"}, 2, "--expect"},
		{"separator in category", []string{"append", "or-der", "1", "--type", "A", "--data", "{}"}, 2, "separator"},
		{"unknown command", []string{"frobnicate"}, 2, "unknown command"},
		{"bad position", []string{"read", "--all", "--after", "12"}, 2, "TX/SEQ"},
		{"replica of SQLite", []string{"--replica", testdb.URL(), "read", "--all"}, 2, "--replica needs PostgreSQL"},
	}
	for _, tc := range cases {
		stdin := ""
		if tc.name == "bad JSON on stdin" {
			stdin = "{nope\n"
		}
		r := runCLI(t, stdin, append([]string{"--db", db}, tc.args...)...)
		if r.code != tc.code || !strings.Contains(r.stderr, tc.want) || len(lines(r.stderr)) != 1 || r.stdout != "" {
			t.Errorf("%s: exit %d, stdout %q, stderr %q; want exit %d and one line with %q", tc.name, r.code, r.stdout, r.stderr, tc.code, tc.want)
		}
	}
	// Nothing was written by the bad input.
	if r := mustRun(t, "", "--db", db, "read", "--all"); r.stdout != "" {
		t.Fatalf("bad input wrote %q", r.stdout)
	}

	// An unreachable database, with its password masked.
	r := runCLI(t, "", "--db", "postgres://alice:hunter2@127.0.0.1:1/app?connect_timeout=2", "read", "--all")
	if r.code != 1 || strings.Contains(r.stderr, "hunter2") || !strings.Contains(r.stderr, "alice:xxxxx@127.0.0.1:1") || len(lines(r.stderr)) != 1 {
		t.Fatalf("unreachable database: exit %d, stderr %q", r.code, r.stderr)
	}
}

func TestHelp(t *testing.T) {
	t.Parallel()
	for _, cmd := range []string{"migrate", "append", "read", "work", "subscriptions", "demo", "bench", "version"} {
		r := runCLI(t, "", cmd, "--help")
		if r.code != 0 || !strings.Contains(r.stdout, "Usage: meowmx "+cmd) {
			t.Errorf("%s --help: exit %d, stdout %q", cmd, r.code, r.stdout)
		}
		if cmd != "version" && cmd != "migrate" && !strings.Contains(r.stdout, "Examples:") {
			t.Errorf("%s --help has no examples", cmd)
		}
	}
	if r := runCLI(t, "", "--help"); r.code != 0 || !strings.Contains(r.stdout, "demo") {
		t.Fatalf("--help: %+v", r)
	}
	if r := mustRun(t, "", "version"); !strings.HasPrefix(r.stdout, "meowmx ") {
		t.Fatalf("version printed %q", r.stdout)
	}
}

func TestWorkAndSubscriptions(t *testing.T) {
	t.Parallel()
	db := sqliteDB(t)
	mustRun(t, "", "--db", db, "migrate")
	for i := range 5 {
		mustRun(t, "", "--db", db, "append", "job", string(rune('a'+i)), "--type", "Queued", "--data", "{}")
	}
	r := mustRun(t, "", "--db", db, "work", "--subscription", "printer", "--category", "job", "--until-idle", "300ms")
	if got := decodeLines(t, r.stdout); len(got) != 5 {
		t.Fatalf("work printed %d events: %q", len(got), r.stdout)
	}
	// Its checkpoint is committed: a second run prints nothing new.
	r = mustRun(t, "", "--db", db, "work", "--subscription", "printer", "--category", "job", "--until-idle", "300ms")
	if r.stdout != "" {
		t.Fatalf("second run printed %q", r.stdout)
	}
	r = mustRun(t, "", "--db", db, "subscriptions")
	if !strings.Contains(r.stdout, "printer") || !strings.Contains(r.stdout, "LAG") {
		t.Fatalf("subscriptions printed %q", r.stdout)
	}
	if got := decodeLines(t, mustRun(t, "", "--db", db, "subscriptions", "--format", "json").stdout); len(got) != 1 || got[0]["name"] != "printer" || got[0]["lag"] != float64(0) || got[0]["partitions"] != float64(1) {
		t.Fatalf("subscriptions --format json printed %v", got)
	}
	mustRun(t, "", "--db", db, "subscriptions", "reset", "printer", "--to", "start")
	r = mustRun(t, "", "--db", db, "work", "--subscription", "printer", "--category", "job", "--until-idle", "300ms")
	if got := decodeLines(t, r.stdout); len(got) != 5 {
		t.Fatalf("after reset, work printed %d events", len(got))
	}
	if r := mustRun(t, "", "--db", db, "subscriptions", "parked", "printer", "--format", "json"); r.stdout != "" {
		t.Fatalf("parked printed %q", r.stdout)
	}
	if r := mustRun(t, "", "--db", db, "subscriptions", "replay", "printer"); !strings.Contains(r.stdout, "0 parked events") {
		t.Fatalf("replay printed %q", r.stdout)
	}
	if r := runCLI(t, "", "--db", db, "subscriptions", "reset", "nobody", "--to", "start"); r.code != 1 || !strings.Contains(r.stderr, "not found") {
		t.Fatalf("reset of an unknown subscription: %+v", r)
	}
	if r := runCLI(t, "", "--db", db, "work", "--subscription", "x"); r.code != 2 {
		t.Fatalf("work without --category or --all: %+v", r)
	}
	if r := mustRun(t, "", "--db", db, "subscriptions", "delete", "printer"); !strings.Contains(r.stdout, "deleted") {
		t.Fatalf("subscriptions delete printed %q", r.stdout)
	}
	if r := mustRun(t, "", "--db", db, "subscriptions"); strings.Contains(r.stdout, "printer") {
		t.Fatalf("a deleted subscription is listed: %q", r.stdout)
	}
}

func TestDemoSQLite(t *testing.T) {
	t.Parallel()
	db := sqliteDB(t)
	for run := range 2 {
		r := runCLI(t, "", "--db", db, "demo", "--events", "150", "--writers", "3")
		if r.code != 0 || !strings.Contains(r.stdout, "orders match their event streams") {
			t.Fatalf("demo run %d: exit %d, stdout %q, stderr %q", run, r.code, r.stdout, r.stderr)
		}
		// The next commands, on the same database.
		if !strings.Contains(r.stdout, "\n  meowmx --db '"+db+"' status\n") || !strings.Contains(r.stdout, "' subscriptions\n") {
			t.Fatalf("demo run %d does not say what to try next on its database:\n%s", run, r.stdout)
		}
	}
	r := mustRun(t, "", "--db", db, "read", "--category", "shipment")
	if got := decodeLines(t, r.stdout); len(got) != 100 {
		t.Fatalf("two demo runs scheduled %d shipments, want 100", len(got))
	}
}

func TestDemoPostgres(t *testing.T) {
	t.Parallel()
	testdb.Pool(t) // reachable, or skip / fail
	schema := testdb.SchemaName(t)
	r := runCLI(t, "", "--db", testdb.URL(), "--schema", schema, "demo", "--events", "300")
	if r.code != 0 || !strings.Contains(r.stdout, "all 100 orders match") {
		t.Fatalf("demo: exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}
}

// TestFollowAndInterrupt: read --follow, of the log or of one stream, prints
// events appended after it started, and it and a worker stop cleanly
// (status 0) when interrupted.
func TestFollowAndInterrupt(t *testing.T) {
	t.Parallel()
	db := sqliteDB(t)
	mustRun(t, "", "--db", db, "migrate")
	for _, args := range [][]string{
		{"read", "--all", "--follow"},
		{"read", "live", "stream", "--follow"},
		{"work", "--subscription", "tail", "--all"},
	} {
		ctx, cancel := context.WithCancel(context.Background())
		var stdout, stderr testdb.Buffer
		done := make(chan int)
		go func() {
			done <- run(ctx, append([]string{"--db", db}, args...), strings.NewReader(""), &stdout, &stderr)
		}()
		id := args[0] + fmt.Sprint(len(args))
		if args[1] == "live" {
			id = "stream"
		}
		mustRun(t, "", "--db", db, "append", "live", id, "--type", "Happened", "--data", `{}`)
		testdb.Eventually(t, func() (bool, string) {
			return strings.Contains(stdout.String(), `"stream_id":"`+id+`"`),
				fmt.Sprintf("%s printed %q %q", args[0], stdout.String(), stderr.String())
		})
		cancel() // as SIGINT does
		if code := <-done; code != 0 {
			t.Fatalf("%s exited %d after an interrupt: %q", args[0], code, stderr.String())
		}
	}
}

func TestBench(t *testing.T) {
	t.Parallel()
	db := sqliteDB(t)
	dir := t.TempDir()
	jsonFile, chartFile := filepath.Join(dir, "results.json"), filepath.Join(dir, "chart.svg")
	r := mustRun(t, "", "bench", "--db", db, "--scenario", "append-1,read-stream", "--duration", "200ms",
		"--writers", "1,2", "--json", jsonFile, "--chart", chartFile, "--quiet")
	for _, want := range []string{"append-1", "1 writer", "2 writers", "read-stream", "ratio"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("output lacks %q:\n%s", want, r.stdout)
		}
	}
	raw, err := os.ReadFile(jsonFile)
	if err != nil {
		t.Fatal(err)
	}
	var report struct {
		Results []struct {
			Scenario string   `json:"scenario"`
			Meowmx   float64  `json:"meowmx"`
			Baseline *float64 `json:"baseline"`
			Ratio    *float64 `json:"ratio"`
		} `json:"results"`
	}
	if err := json.Unmarshal(raw, &report); err != nil {
		t.Fatal(err)
	}
	if len(report.Results) != 3 {
		t.Fatalf("%d results in the JSON, want 3: %s", len(report.Results), raw)
	}
	for _, res := range report.Results {
		if res.Meowmx <= 0 || res.Baseline == nil || res.Ratio == nil {
			t.Errorf("incomplete result %+v", res)
		}
	}
	if svg, err := os.ReadFile(chartFile); err != nil || !strings.HasPrefix(string(svg), "<svg") {
		t.Fatalf("chart: %v, %.40q", err, svg)
	}

	for _, args := range [][]string{
		{"bench", "--db", db, "--scenario", "nope"},
		{"bench", "--db", db, "--schema", "meowmx"},
		{"bench", "--db", db, "--writers", "1,x"},
		{"bench", "--db", db, "--duration", "0s"},
		{"bench", "--db", db, "--scenario", "read-stream", "--chart", chartFile},
	} {
		if r := runCLI(t, "", args...); r.code != exitUsage {
			t.Errorf("meowmx %s: exit %d, want %d (stderr %q)", strings.Join(args, " "), r.code, exitUsage, r.stderr)
		}
	}
}

// TestConnectionStrings: key/value connection strings reach PostgreSQL,
// unknown schemes are refused, a password is masked wherever it appears,
// and a command that needs a migrated store does not create an SQLite file.
func TestConnectionStrings(t *testing.T) {
	testdb.Pool(t) // reachable, or skip / fail
	dir := t.TempDir()
	t.Chdir(dir)
	u, err := url.Parse(testdb.URL())
	if err != nil {
		t.Fatal(err)
	}
	keyValue := fmt.Sprintf("host=%s port=%s dbname=%s user=%s password=s3cret sslmode=disable",
		u.Hostname(), u.Port(), strings.TrimPrefix(u.Path, "/"), u.User.Username())
	schema := testdb.SchemaName(t)
	r := mustRun(t, "", "--db", keyValue, "--schema", schema, "migrate")
	if strings.Contains(r.stdout+r.stderr, "s3cret") || !strings.Contains(r.stdout, "password=xxxxx") {
		t.Fatalf("migrate with key/value pairs printed %q, %q", r.stdout, r.stderr)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Fatalf("key/value pairs were taken for a file: %v", entries)
	}

	for _, tc := range []struct {
		name, db string
		code     int
		want     string
	}{
		{"unknown scheme", "mysql://app:s3cret@127.0.0.1/app", 2, `unknown scheme "mysql"`},
		{"password in the query", "postgres://app@127.0.0.1:1/app?sslmode=disable&connect_timeout=2&password=s3cret", 1, "password=xxxxx"},
		{"password in key/value pairs", "host=127.0.0.1 port=1 dbname=app user=app password=s3cret connect_timeout=2", 1, "password=xxxxx"},
		{"missing SQLite file", "sqlite:" + filepath.Join(dir, "none.db"), 1, "no SQLite database at"},
	} {
		r := runCLI(t, "", "--db", tc.db, "read", "--all")
		if r.code != tc.code || strings.Contains(r.stderr, "s3cret") || !strings.Contains(r.stderr, tc.want) || len(lines(r.stderr)) != 1 {
			t.Errorf("%s: exit %d, stderr %q; want exit %d and one line with %q, no password", tc.name, r.code, r.stderr, tc.code, tc.want)
		}
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Fatalf("a read created files: %v", entries)
	}
}

// TestVersionLine: the version names the module version and the revision.
func TestVersionLine(t *testing.T) {
	info := &debug.BuildInfo{GoVersion: "go1.26.0", Main: debug.Module{Version: "v0.3.0"}, Settings: []debug.BuildSetting{
		{Key: "vcs.revision", Value: "0123456789abcdef0123"}, {Key: "vcs.time", Value: "2026-11-29T10:00:00Z"}, {Key: "vcs.modified", Value: "true"},
	}}
	if got, want := versionLine("", info), "meowmx v0.3.0 revision 0123456789ab of 2026-11-29T10:00:00Z (modified) go1.26.0"; got != want {
		t.Fatalf("version line %q, want %q", got, want)
	}
	if got := versionLine("v1.0.0", nil); got != "meowmx v1.0.0" {
		t.Fatalf("version set at build time: %q", got)
	}
	if r := mustRun(t, "", "version"); !strings.HasPrefix(r.stdout, "meowmx ") {
		t.Fatalf("meowmx version printed %q", r.stdout)
	}
}

// TestReadModes: a stream's printed name reads it back, and flags of another
// mode are refused rather than ignored.
func TestReadModes(t *testing.T) {
	t.Parallel()
	db := sqliteDB(t)
	mustRun(t, "", "--db", db, "migrate")
	mustRun(t, "", "--db", db, "append", "order", "1001", "--type", "Placed", "--data", "{}")
	if got := decodeLines(t, mustRun(t, "", "--db", db, "read", "order-1001").stdout); len(got) != 1 || got[0]["stream_id"] != "1001" {
		t.Fatalf("read order-1001: %v", got)
	}
	for _, args := range [][]string{
		{"read", "order", "1001", "--after", "0/1"},
		{"read", "--category", "order", "--backward"},
		{"read", "--all", "--from", "3"},
		{"read", "order1001"},
	} {
		if r := runCLI(t, "", append([]string{"--db", db}, args...)...); r.code != 2 || len(lines(r.stderr)) != 1 || r.stdout != "" {
			t.Errorf("meowmx %v: exit %d, stderr %q; want a usage error", args, r.code, r.stderr)
		}
	}
}

// TestUnknownSubscription: naming a subscription that does not exist is an
// error, and an unknown subcommand is called one.
func TestUnknownSubscription(t *testing.T) {
	t.Parallel()
	db := sqliteDB(t)
	mustRun(t, "", "--db", db, "migrate")
	for _, args := range [][]string{
		{"subscriptions", "nope"}, {"subscriptions", "parked", "nope"}, {"subscriptions", "replay", "nope"},
		{"subscriptions", "reset", "nope", "--to", "start"}, {"subscriptions", "delete", "nope"},
	} {
		r := runCLI(t, "", append([]string{"--db", db}, args...)...)
		if r.code != 1 || !strings.Contains(r.stderr, "nope") || len(lines(r.stderr)) != 1 || r.stdout != "" {
			t.Errorf("meowmx %v: exit %d, stdout %q, stderr %q; want exit 1 naming the subscription", args, r.code, r.stdout, r.stderr)
		}
	}
	if r := runCLI(t, "", "--db", db, "subscriptions", "remove", "x"); r.code != 2 || !strings.Contains(r.stderr, `unknown subcommand "remove"`) {
		t.Errorf("unknown subcommand: exit %d, stderr %q", r.code, r.stderr)
	}
}

// TestAppendLines: each stdin line of "append --data -" must be an event
// object with a type and data; a bad one is a usage error naming its line.
func TestAppendLines(t *testing.T) {
	t.Parallel()
	db := sqliteDB(t)
	mustRun(t, "", "--db", db, "migrate")
	for _, tc := range []struct{ name, stdin, want string }{
		{"array", `{"type":"A","data":{}}` + "\n" + `[1,2]`, "line 2: want a JSON object"},
		{"no data", `{"type":"A"}`, `line 1: "data" is required`},
		{"type not a string", `{"type":7,"data":{}}`, `line 1: "type" must be a string`},
	} {
		r := runCLI(t, tc.stdin, "--db", db, "append", "order", "1", "--data", "-")
		if r.code != 2 || !strings.Contains(r.stderr, tc.want) || len(lines(r.stderr)) != 1 {
			t.Errorf("%s: exit %d, stderr %q; want exit 2 with %q", tc.name, r.code, r.stderr, tc.want)
		}
	}
	if r := mustRun(t, "", "--db", db, "read", "--all"); r.stdout != "" {
		t.Fatalf("bad lines wrote %q", r.stdout)
	}
}

// TestCommandHelp: a command's help names its flags as --flag, lists the
// global ones, and has no empty Flags section.
func TestCommandHelp(t *testing.T) {
	t.Parallel()
	read := mustRun(t, "", "read", "--help").stdout
	for _, want := range []string{"  --backward\n", "  --limit int\n", "(default -1)", "--db DATABASE", "--schema NAME"} {
		if !strings.Contains(read, want) {
			t.Errorf("read --help lacks %q:\n%s", want, read)
		}
	}
	if strings.Contains(read, "\n  -backward") {
		t.Errorf("read --help shows single-dash flags:\n%s", read)
	}
	if v := mustRun(t, "", "version", "--help").stdout; strings.Contains(v, "Flags:\n\n") || strings.Contains(v, "\nFlags:") {
		t.Errorf("version --help has a Flags section:\n%s", v)
	}
}

// TestTextColumnsAcrossPages: read --format text keeps its columns where the
// header put them, past the first page of 1,000 events.
func TestTextColumnsAcrossPages(t *testing.T) {
	t.Parallel()
	db := sqliteDB(t)
	mustRun(t, "", "--db", db, "migrate")
	var stdin strings.Builder
	for i := range 1001 {
		fmt.Fprintf(&stdin, `{"type":"T%d","data":{"i":%d}}`+"\n", i%3, i)
	}
	mustRun(t, stdin.String(), "--db", db, "append", "log", "1", "--data", "-")
	out := lines(mustRun(t, "", "--db", db, "read", "--all", "--format", "text").stdout)
	if len(out) != 1002 {
		t.Fatalf("read %d lines, want a header and 1001 events", len(out))
	}
	data := strings.Index(out[0], "DATA")
	for i, line := range out[1:] {
		if strings.Index(line, "{") != data {
			t.Fatalf("line %d has its data at column %d, the header at %d:\n%s\n%s", i+1, strings.Index(line, "{"), data, out[0], line)
		}
	}
}

// TestDemoInterrupted: an interrupted demo says how far it went and exits
// 130, as an interrupted command does in a shell.
func TestDemoInterrupted(t *testing.T) {
	t.Parallel()
	db := sqliteDB(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var stdout, stderr testdb.Buffer
	done := make(chan int)
	go func() {
		done <- run(ctx, []string{"--db", db, "demo", "--events", "3000000"}, strings.NewReader(""), &stdout, &stderr)
	}()
	testdb.Eventually(t, func() (bool, string) {
		return strings.Contains(stdout.String(), "meowmx demo on"), fmt.Sprintf("the demo printed %q %q", stdout.String(), stderr.String())
	})
	cancel() // as SIGINT does
	code := testdb.Recv(t, done, "the demo to stop")
	if code != 130 || !strings.Contains(stdout.String(), "interrupted:") || !strings.Contains(stderr.String(), "interrupted") {
		t.Fatalf("interrupted demo: exit %d, stdout %q, stderr %q", code, stdout.String(), stderr.String())
	}
}

// TestAppendTags: --tag and the "tags" of JSON lines tag events, and read
// prints them.
func TestAppendTags(t *testing.T) {
	t.Parallel()
	db := sqliteDB(t)
	mustRun(t, "", "--db", db, "migrate")
	r := mustRun(t, "", "--db", db, "append", "course", "c1", "--type", "StudentSubscribed", "--data", "{}", "--tag", "course:c1", "--tag", "student:s7")
	if got := decodeLines(t, r.stdout); len(got) != 1 || fmt.Sprint(got[0]["tags"]) != "[course:c1 student:s7]" {
		t.Fatalf("append --tag printed %q", r.stdout)
	}
	mustRun(t, `{"type":"A","data":{},"tags":["x","y z"]}
{"type":"B","data":{}}
`, "--db", db, "append", "course", "c2", "--data", "-")
	got := decodeLines(t, mustRun(t, "", "--db", db, "read", "course-c2").stdout)
	if len(got) != 2 || fmt.Sprint(got[0]["tags"]) != "[x y z]" || got[1]["tags"] != nil {
		t.Fatalf("read printed %v", got)
	}
	// A worker with --tag prints the events that carry it.
	r = mustRun(t, "", "--db", db, "work", "--subscription", "x-only", "--category", "course", "--tag", "x", "--until-idle", "100ms")
	if got := decodeLines(t, r.stdout); len(got) != 1 || got[0]["type"] != "A" {
		t.Fatalf("work --tag x printed %q", r.stdout)
	}
	for _, bad := range []struct {
		stdin string
		args  []string
		want  string
	}{
		{`{"type":"A","data":{},"tags":"x"}`, []string{"--data", "-"}, `"tags" must be a list of strings`},
		{"", []string{"--type", "A", "--data", "{}", "--tag", "x", "--tag", "x"}, `tag "x" appears twice`},
		{"", []string{"--type", "A", "--data", "{}", "--tag", ""}, "tag 0 is empty"},
	} {
		r := runCLI(t, bad.stdin, append([]string{"--db", db, "append", "course", "c3"}, bad.args...)...)
		if r.code != 2 || !strings.Contains(r.stderr, bad.want) {
			t.Errorf("append %v: exit %d, stderr %q, want 2 and %q", bad.args, r.code, r.stderr, bad.want)
		}
	}
}

// TestReplicaFlag: --replica (here the primary itself, which has its own
// system identifier) serves the reads; a server of another cluster is
// refused by TestStandbyReads in meowmxpgxv5, which runs a real standby.
func TestReplicaFlag(t *testing.T) {
	t.Parallel()
	args := []string{"--db", testdb.URL(), "--schema", testdb.SchemaName(t), "--replica", testdb.URL()}
	mustRun(t, "", append(args, "migrate")...)
	mustRun(t, "", append(args, "append", "order", "1", "--type", "Placed", "--data", "{}")...)
	for _, read := range [][]string{{"read", "--all"}, {"read", "order", "1"}, {"read", "--category", "order"}} {
		// Global reads stop at the visibility horizon, which transactions
		// of other tests may hold for a while.
		testdb.Eventually(t, func() (bool, string) {
			got := decodeLines(t, mustRun(t, "", append(args, read...)...).stdout)
			if len(got) > 1 || len(got) == 1 && got[0]["type"] != "Placed" {
				t.Fatalf("meowmx %v with --replica: %v", read, got)
			}
			return len(got) == 1, fmt.Sprintf("meowmx %v with --replica: %v", read, got)
		})
	}
	if r := runCLI(t, "", append(args[:4], "--replica", "postgres://127.0.0.1:1/none?connect_timeout=2", "read", "--all")...); r.code != 1 || !strings.Contains(r.stderr, "cannot connect to postgres://127.0.0.1:1") {
		t.Fatalf("replica unreachable: exit %d, stderr %q", r.code, r.stderr)
	}
}

// TestServe runs "meowmx serve" on SQLite: an append and a read over HTTP,
// the token file, the refusal to listen beyond loopback without tokens,
// and a graceful stop with a live tail open.
func TestServe(t *testing.T) {
	t.Parallel()
	db := sqliteDB(t)
	mustRun(t, "", "--db", db, "migrate")
	tokens := filepath.Join(t.TempDir(), "tokens")
	token := "0123456789abcdef0123"
	if err := os.WriteFile(tokens, []byte("# readers and writers\n"+token+"\nfedcba9876543210fedc read-only\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var stdout, stderr testdb.Buffer
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, []string{"--db", db, "serve", "--listen", "127.0.0.1:0", "--token-file", tokens, "--metrics", "127.0.0.1:0"}, strings.NewReader(""), &stdout, &stderr)
	}()
	var base, metrics string
	serving := regexp.MustCompile(`serving \S+ at (http://\S+)`)
	scrapeAt := regexp.MustCompile(`metrics at (http://\S+/metrics)`)
	testdb.Eventually(t, func() (bool, string) {
		if m := serving.FindStringSubmatch(stderr.String()); m != nil {
			base = m[1]
		}
		if m := scrapeAt.FindStringSubmatch(stderr.String()); m != nil {
			metrics = m[1]
		}
		return base != "" && metrics != "", stderr.String()
	})
	call := func(method, path, body, bearer string) (int, string) {
		req, err := http.NewRequest(method, base+path, strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		if bearer != "" {
			req.Header.Set("Authorization", "Bearer "+bearer)
		}
		if body != "" {
			req.Header.Set("Content-Type", "application/json")
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		data, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(data)
	}
	if code, body := call("POST", "/streams/order/1", `{"events":[{"type":"Placed","data":{"total":42}}]}`, ""); code != 401 {
		t.Fatalf("without a token: %d %s", code, body)
	}
	if code, body := call("POST", "/streams/order/1", `{"events":[{"type":"Placed","data":{"total":42}}]}`, "fedcba9876543210fedc"); code != 403 {
		t.Fatalf("with the read-only token: %d %s", code, body)
	}
	if code, body := call("POST", "/streams/order/1", `{"events":[{"type":"Placed","data":{"total":42}}],"expected_version":"no_stream"}`, token); code != 201 {
		t.Fatalf("append: %d %s", code, body)
	}
	if code, body := call("GET", "/streams/order/1", "", "fedcba9876543210fedc"); code != 200 || !strings.Contains(body, `"total":42`) {
		t.Fatalf("read: %d %s", code, body)
	}
	// --metrics: the append through the API is counted.
	resp, err := http.Get(metrics)
	if err != nil {
		t.Fatal(err)
	}
	text, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if v, ok := sample(string(text), "meowmx_append_duration_seconds_count", `meowmx_category="order"`); !ok || v != 1 {
		t.Fatalf("appends counted at /metrics: %v %v\n%s", v, ok, text)
	}
	// A live tail open while the server stops does not hold it up.
	req, _ := http.NewRequest("GET", base+"/events/live", nil)
	req.Header.Set("Authorization", "Bearer "+token)
	tail, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer tail.Body.Close()
	cancel() // as SIGTERM does
	if code := <-done; code != 0 {
		t.Fatalf("serve exited %d: %s", code, stderr.String())
	}
	if _, err := io.ReadAll(tail.Body); err != nil {
		t.Fatalf("the live tail did not end cleanly: %v", err)
	}

	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"serve", "--listen", "0.0.0.0:8080"}, "requires tokens"},
		{[]string{"serve", "--listen", "8080"}, "HOST:PORT"},
		{[]string{"serve", "--token-file", filepath.Join(t.TempDir(), "missing")}, "--token-file"},
	} {
		if r := runCLI(t, "", append([]string{"--db", db}, tc.args...)...); r.code != 2 || !strings.Contains(r.stderr, tc.want) {
			t.Errorf("meowmx %v: exit %d, stderr %q; want exit 2 saying %q", tc.args, r.code, r.stderr, tc.want)
		}
	}
	bad := filepath.Join(t.TempDir(), "bad")
	if err := os.WriteFile(bad, []byte("a b c\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if r := runCLI(t, "", "--db", db, "serve", "--token-file", bad); r.code != 2 || !strings.Contains(r.stderr, "line 1") || strings.Contains(r.stderr, "a b c") {
		t.Errorf("bad token file: exit %d, stderr %q", r.code, r.stderr)
	}
}

// process is the command run in a process of its own (see TestMain).
type process struct {
	cmd    *exec.Cmd
	stderr *testdb.Buffer
	// exited holds how the process ended, once it has: "exited: ERR:
	// STDERR", ERR <nil> for a clean exit.
	exited atomic.Pointer[string]
	done   chan struct{}
}

// startProcess runs the command with args in a process of its own and
// waits until its stderr matches ready (its signal handlers are in place
// by then); the test fails if it ends before.
func startProcess(t *testing.T, args []string, ready *regexp.Regexp) *process {
	t.Helper()
	list, err := json.Marshal(args)
	if err != nil {
		t.Fatal(err)
	}
	p := &process{cmd: exec.Command(os.Args[0], "-test.run=^$"), stderr: &testdb.Buffer{}, done: make(chan struct{})}
	p.cmd.Env = append(os.Environ(), "MEOWMX_TEST_COMMAND="+string(list))
	p.cmd.Stderr = p.stderr
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		err := p.cmd.Wait()
		msg := fmt.Sprintf("exited: %v: %s", err, p.stderr.String())
		p.exited.Store(&msg)
		close(p.done)
	}()
	testdb.Eventually(t, func() (bool, string) {
		p.checkRunning(t)
		return ready.MatchString(p.stderr.String()), "stderr: " + p.stderr.String()
	})
	return p
}

// checkRunning fails the test if the process has ended.
func (p *process) checkRunning(t *testing.T) {
	t.Helper()
	if msg := p.exited.Load(); msg != nil {
		t.Fatal(*msg)
	}
}

// stop signals the process and waits for it to end.
func (p *process) stop(t *testing.T, sig os.Signal) string {
	t.Helper()
	if err := p.cmd.Process.Signal(sig); err != nil && p.exited.Load() == nil {
		t.Fatal(err)
	}
	testdb.Recv(t, (<-chan struct{})(p.done), "the process's end")
	return *p.exited.Load()
}

// TestListenDBFlag: behind a PgBouncer in transaction mode, --listen-db
// none makes a worker poll, and say why once; --listen-db with SQLite is a
// usage error.
func TestListenDBFlag(t *testing.T) {
	t.Parallel()
	bouncer := testdb.NewPgBouncer(t)
	args := []string{"--db", bouncer.URL("cache_describe"), "--schema", testdb.SchemaName(t), "--listen-db", "none"}
	mustRun(t, "", append(args, "migrate")...)
	mustRun(t, "", append(args, "append", "job", "1", "--type", "Queued", "--data", "{}")...)
	var r result
	testdb.Eventually(t, func() (bool, string) {
		r = mustRun(t, "", append(args, "work", "--subscription", "pooled", "--category", "job", "--until-idle", "300ms")...)
		return len(lines(r.stdout)) == 1, fmt.Sprintf("work printed %q", r.stdout)
	})
	if n := strings.Count(r.stderr, "not listening for appends of other processes"); n != 1 {
		t.Fatalf("work logged the warning %d times: %s", n, r.stderr)
	}
	if r := runCLI(t, "", "--db", sqliteDB(t), "--listen-db", testdb.URL(), "migrate"); r.code != 2 || !strings.Contains(r.stderr, "--listen-db needs a PostgreSQL --db") {
		t.Fatalf("--listen-db with SQLite: exit %d, stderr %q", r.code, r.stderr)
	}
}
