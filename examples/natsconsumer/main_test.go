package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/meowmx/meowmx"
	"github.com/meowmx/meowmx/internal/testdb"
	"github.com/meowmx/meowmx/meowmxnats"
	"github.com/meowmx/meowmx/meowmxsqlite"
)

func TestMain(m *testing.M) { testdb.Main(m) }

// TestConsume: the consumer prints the relayed events in order, and a
// second run of the same durable consumer prints nothing again.
func TestConsume(t *testing.T) {
	n := testdb.NewNATS(t)
	store, err := meowmx.New(meowmxsqlite.New(testdb.SQLite(t)), &meowmx.Config{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	ctx := t.Context()
	if err := store.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	nc, err := nats.Connect(n.URL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	relay, err := meowmxnats.New(store, js, &meowmxnats.Config{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	if err := relay.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = relay.Stop(ctx) }()
	for i := range 5 {
		if _, err := store.Append(ctx, meowmx.NewStream("order", "1"), meowmx.Any,
			meowmx.Event{Type: "Placed", Data: json.RawMessage(fmt.Sprintf(`{"n":%d}`, i))}); err != nil {
			t.Fatal(err)
		}
	}
	if err := store.WaitCaughtUp(ctx, meowmxnats.SubscriptionDefault); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if err := consume(ctx, &out, n.URL(), meowmxnats.StreamDefault, "test", "meowmx.>", 500*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 5 {
		t.Fatalf("printed %d lines: %q", len(lines), out.String())
	}
	for i, line := range lines {
		var ev struct {
			Stream  string
			Version int64
			Data    struct{ N int }
		}
		if err := json.Unmarshal([]byte(line), &ev); err != nil || ev.Stream != "order-1" || ev.Version != int64(i) || ev.Data.N != i {
			t.Fatalf("line %d: %s (%v)", i, line, err)
		}
	}
	out.Reset()
	if err := consume(ctx, &out, n.URL(), meowmxnats.StreamDefault, "test", "meowmx.>", 500*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	if out.Len() != 0 {
		t.Fatalf("the durable consumer printed again: %s", out.String())
	}
}
