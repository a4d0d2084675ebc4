package main

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/meowmx/meowmx"
	"github.com/meowmx/meowmx/internal/testdb"
	"github.com/meowmx/meowmx/meowmxsqlite"
)

// TestBrowse: streams, categories and status, on both drivers: what they
// print, paging with the command printed for the next page, and JSON.
func TestBrowse(t *testing.T) {
	t.Parallel()
	t.Run("sqlite", func(t *testing.T) {
		t.Parallel()
		testBrowseCommands(t, []string{"--db", sqliteDB(t)})
	})
	t.Run("postgres", func(t *testing.T) {
		t.Parallel()
		testdb.Pool(t) // reachable, or skip / fail
		testBrowseCommands(t, []string{"--db", testdb.URL(), "--schema", testdb.SchemaName(t)})
	})
}

func testBrowseCommands(t *testing.T, db []string) {
	cli := func(args ...string) result { return mustRun(t, "", append(db, args...)...) }
	mustRun(t, "", append(db, "migrate")...)
	if r := cli("streams"); len(lines(r.stdout)) != 1 || r.stderr != "" {
		t.Fatalf("streams of an empty store: %+v", r)
	}
	if r := cli("status"); !strings.Contains(r.stdout, "0 in 0 streams of 0 categories") || !strings.Contains(r.stdout, "no subscriptions") {
		t.Fatalf("status of an empty store:\n%s", r.stdout)
	}
	// order-1 .. order-5 with i events each, and one payment.
	var stdin strings.Builder
	for i := 1; i <= 5; i++ {
		stdin.Reset()
		for range i {
			stdin.WriteString(`{"type":"Placed","data":{}}` + "\n")
		}
		mustRun(t, stdin.String(), append(db, "append", "order", fmt.Sprint(i), "--data", "-")...)
	}
	mustRun(t, "", append(db, "append", "payment", "p 1", "--type", "Paid", "--data", "{}")...)

	out := lines(cli("streams").stdout)
	want := []string{"order-1", "order-2", "order-3", "order-4", "order-5", "payment-p 1"}
	if len(out) != 7 || !strings.HasPrefix(out[0], "STREAM") {
		t.Fatalf("streams printed:\n%s", strings.Join(out, "\n"))
	}
	for i, line := range out[1:] {
		if f := strings.Fields(strings.TrimPrefix(line, want[i])); !strings.HasPrefix(line, want[i]+" ") || len(f) < 2 ||
			(i < 5 && f[0] != fmt.Sprint(i+1)) {
			t.Fatalf("streams line %d = %q, want %s with %d events", i, line, want[i], i+1)
		}
	}

	// Pages of 2, following the command that streams prints.
	var got []string
	args := []string{"streams", "--limit", "2", "--format", "json"}
	for page := 0; ; page++ {
		r := cli(args...)
		for _, l := range decodeLines(t, r.stdout) {
			got = append(got, l["stream"].(string))
			if l["events"] != l["version"].(float64)+1 {
				t.Fatalf("stream line %v: events is not version + 1", l)
			}
		}
		if r.stderr == "" {
			break
		}
		next, ok := strings.CutPrefix(strings.TrimSpace(r.stderr), "more streams follow: ")
		if !ok || page > 5 || !strings.Contains(next, " --limit 2 --format json") {
			t.Fatalf("page %d: stderr %q", page, r.stderr)
		}
		after := next[strings.Index(next, "--after ")+len("--after "):]
		after = after[:strings.Index(after, " --limit")]
		args = []string{"streams", "--after", strings.Trim(after, "'"), "--limit", "2", "--format", "json"}
	}
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Fatalf("pages gave %v, want %v", got, want)
	}
	if got := decodeLines(t, cli("streams", "--category", "payment", "--format", "json").stdout); len(got) != 1 || got[0]["stream_id"] != "p 1" {
		t.Fatalf("streams --category payment printed %v", got)
	}
	if r := runCLI(t, "", append(db, "streams", "--category", "order", "--after", "payment-p 1")...); r.code != 2 {
		t.Fatalf("--after outside --category: %+v", r)
	}

	cats := decodeLines(t, cli("categories", "--format", "json").stdout)
	if len(cats) != 2 || cats[0]["category"] != "order" || cats[0]["events"] != float64(15) || cats[0]["streams"] != float64(5) ||
		cats[1]["category"] != "payment" || cats[1]["events"] != float64(1) {
		t.Fatalf("categories printed %v", cats)
	}
	if r := cli("categories", "--limit", "1"); len(lines(r.stdout)) != 2 || !strings.Contains(r.stderr, "categories --after order --limit 1") {
		t.Fatalf("categories --limit 1: %+v", r)
	}
	if out := cli("categories").stdout; !strings.Contains(out, "CATEGORY") || !strings.Contains(out, "payment") {
		t.Fatalf("categories printed:\n%s", out)
	}

	// A worker that stops once idle: on PostgreSQL a transaction of another
	// test holding the visibility horizon can keep the event from it for a
	// while, so run it until it has handled it.
	var st []map[string]any
	testdb.Eventually(t, func() (bool, string) {
		mustRun(t, "", append(db, "work", "--subscription", "billing", "--category", "payment", "--until-idle", "200ms")...)
		st = decodeLines(t, cli("status", "--format", "json").stdout)
		if len(st) != 1 {
			t.Fatalf("status --format json printed %v", st)
		}
		subs, _ := st[0]["subscriptions"].([]any)
		return len(subs) == 1 && subs[0].(map[string]any)["lag"] == float64(0), fmt.Sprintf("status subscriptions = %v", subs)
	})
	if len(st) != 1 || st[0]["events"] != float64(16) || st[0]["streams"] != float64(6) || len(st[0]["categories"].([]any)) != 2 {
		t.Fatalf("status --format json printed %v", st)
	}
	subs := st[0]["subscriptions"].([]any)
	if len(subs) != 1 || subs[0].(map[string]any)["name"] != "billing" || subs[0].(map[string]any)["lag"] != float64(0) {
		t.Fatalf("status subscriptions = %v", subs)
	}
	if out := cli("status").stdout; !strings.Contains(out, "16 in 6 streams of 2 categories") || !strings.Contains(out, "billing") {
		t.Fatalf("status printed:\n%s", out)
	}
	for _, bad := range [][]string{{"streams", "--format", "xml"}, {"streams", "--limit", "-1"}, {"categories", "extra"}, {"status", "--format", "yaml"}} {
		if r := runCLI(t, "", append(db, bad...)...); r.code != 2 {
			t.Errorf("meowmx %v: exit %d, want 2 (%s)", bad, r.code, r.stderr)
		}
	}
}

// TestParkedFormats: subscriptions parked prints a table by default and
// JSON lines with --format json.
func TestParkedFormats(t *testing.T) {
	t.Parallel()
	db := sqliteDB(t)
	mustRun(t, "", "--db", db, "migrate")
	mustRun(t, "", "--db", db, "append", "job", "1", "--type", "Queued", "--data", `{"n":1}`)
	if r := mustRun(t, "", "--db", db, "work", "--subscription", "jobs", "--category", "job", "--until-idle", "100ms"); len(lines(r.stdout)) != 1 {
		t.Fatalf("work printed %q", r.stdout)
	}
	if r := mustRun(t, "", "--db", db, "subscriptions", "parked", "jobs"); r.stdout != "subscription jobs has no parked events\n" {
		t.Fatalf("parked printed %q", r.stdout)
	}
	// Park the next event: a handler of the same subscription that fails.
	mustRun(t, "", "--db", db, "append", "job", "2", "--type", "Queued", "--data", `{"n":2}`)
	sqlDB, err := meowmxsqlite.Open(strings.TrimPrefix(db, "sqlite:"))
	if err != nil {
		t.Fatal(err)
	}
	defer sqlDB.Close()
	store, err := meowmx.New(meowmxsqlite.New(sqlDB), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	sub, err := store.Subscribe(meowmx.SubscriptionConfig[*sql.Tx]{
		Name: "jobs", Categories: []string{"job"}, MaxAttempts: 1, PollInterval: 10 * time.Millisecond,
		Handler: meowmx.HandleEach(func(context.Context, *sql.Tx, meowmx.RecordedEvent) error {
			return errors.New("printer on fire")
		}),
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := sub.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	if err := store.WaitCaughtUp(t.Context(), "jobs"); err != nil {
		t.Fatal(err)
	}
	if err := sub.Stop(t.Context()); err != nil {
		t.Fatal(err)
	}
	out := lines(mustRun(t, "", "--db", db, "subscriptions", "parked", "jobs").stdout)
	if len(out) != 2 || !strings.HasPrefix(out[0], "POSITION") || !strings.Contains(out[1], "job-2") || !strings.Contains(out[1], "printer on fire") {
		t.Fatalf("parked printed:\n%s", strings.Join(out, "\n"))
	}
	got := decodeLines(t, mustRun(t, "", "--db", db, "subscriptions", "parked", "jobs", "--format", "json").stdout)
	if len(got) != 1 || got[0]["stream_id"] != "2" || got[0]["error"] != "printer on fire" || got[0]["attempts"] != float64(1) {
		t.Fatalf("parked --format json printed %v", got)
	}
}
