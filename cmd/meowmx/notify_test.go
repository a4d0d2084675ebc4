package main

import (
	"context"
	"fmt"
	"log/slog"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/meowmx/meowmx"
	"github.com/meowmx/meowmx/internal/testdb"
	"github.com/meowmx/meowmx/internal/testsignal"
	"github.com/meowmx/meowmx/meowmxpgxv5"
)

// TestAppendNotifiesOtherProcesses: an event appended with "meowmx append"
// reaches a subscription in another process at once, through the
// notification the command sends before it exits (the subscription polls
// once an hour), and the command prints nothing on stderr.
func TestAppendNotifiesOtherProcesses(t *testing.T) {
	t.Parallel()
	schema := testdb.SchemaName(t)
	mustRun(t, "", "--db", testdb.URL(), "--schema", schema, "migrate")
	pool, err := testdb.NewPool(testdb.URL(), 4)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	store, err := meowmx.New(meowmxpgxv5.New(pool), &meowmx.Config{Schema: schema, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	got := make(chan meowmx.RecordedEvent, 10)
	sub, err := store.Subscribe(meowmx.SubscriptionConfig[pgx.Tx]{
		Name: "listener", PollInterval: time.Hour,
		Handler: meowmx.HandleEach(func(_ context.Context, _ pgx.Tx, e meowmx.RecordedEvent) error {
			got <- e
			return nil
		}),
	})
	if err != nil {
		t.Fatal(err)
	}
	hooks, idle := testsignal.Idle()
	if err := sub.Start(testsignal.With(context.Background(), hooks)); err != nil {
		t.Fatal(err)
	}
	defer sub.Stop(context.Background())
	for i := range 3 {
		testdb.Recv(t, idle, "the worker to sleep with nothing to read")
		expect := "none"
		if i > 0 {
			expect = fmt.Sprint(i - 1)
		}
		r := mustRun(t, "", "--db", testdb.URL(), "--schema", schema, "append", "order", "1",
			"--type", "Placed", "--data", "{}", "--expect", expect)
		if r.stderr != "" {
			t.Fatalf("a successful append printed on stderr: %q", r.stderr)
		}
		if e := testdb.Recv(t, got, "the appended event"); e.Version != int64(i) {
			t.Fatalf("the subscription received version %d, want %d", e.Version, i)
		}
	}
}
