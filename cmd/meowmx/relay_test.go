package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/meowmx/meowmx"
	"github.com/meowmx/meowmx/internal/testdb"
	"github.com/meowmx/meowmx/meowmxnats"
	"github.com/meowmx/meowmx/meowmxpgxv5"
)

// TestRelayKilled relays 20,000 events, appended meanwhile, with "meowmx
// relay" processes killed with SIGKILL three times and the NATS server
// killed (SIGKILL) and restarted once under a running relay: the
// JetStream stream ends up with every event exactly once and each subject
// in version order.
func TestRelayKilled(t *testing.T) {
	t.Parallel()
	n := testdb.NewNATS(t)
	pool := testdb.Pool(t)
	schema := testdb.SchemaName(t)
	store, err := meowmx.New(meowmxpgxv5.New(pool), &meowmx.Config{Schema: schema, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	ctx := t.Context()
	if err := store.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	nc, err := nats.Connect(n.URL(), nats.MaxReconnects(-1), nats.ReconnectWait(50*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}

	// The writer: 200 streams of 100 events, 10 events per append.
	const streams, each, per = 200, 100, 10
	const total = streams * each
	var written atomic.Int64
	writerDone := make(chan error, 1)
	go func() {
		for round := range each / per {
			for s := range streams {
				events := make([]meowmx.Event, per)
				for i := range events {
					events[i] = meowmx.Event{Type: "Ticked", Data: json.RawMessage(fmt.Sprintf(`{"n":%d}`, round*per+i))}
				}
				if _, err := store.Append(ctx, meowmx.NewStream("clock", fmt.Sprintf("c.%d", s)), meowmx.Any, events...); err != nil {
					writerDone <- err
					return
				}
				written.Add(per)
			}
		}
		writerDone <- nil
	}()

	// stored is how many messages the stream holds, asking until NATS
	// answers (it restarts in the middle).
	stored := func() uint64 {
		var n uint64
		testdb.Eventually(t, func() (bool, string) {
			s, err := js.Stream(ctx, meowmxnats.StreamDefault)
			if err != nil {
				return errors.Is(err, jetstream.ErrStreamNotFound), err.Error()
			}
			info, err := s.Info(ctx)
			if err != nil {
				return false, err.Error()
			}
			n = info.State.Msgs
			return true, ""
		})
		return n
	}
	args := []string{"--db", testdb.URL(), "--schema", schema, "relay", "--nats", n.URL(), "--lease", "3s", "--batch", "200"}
	relaying := regexp.MustCompile("meowmx: relaying to")
	// Let a relay get some way further, then kill it.
	runFor := func(p *process, events uint64) {
		from := stored()
		testdb.Eventually(t, func() (bool, string) {
			p.checkRunning(t)
			got := stored()
			return got >= min(from+events, total), fmt.Sprintf("%d stored, %d written", got, written.Load())
		})
	}
	for kill := range 3 {
		p := startProcess(t, args, relaying)
		runFor(p, 2000)
		if kill == 1 {
			// The NATS server crashes under the running relay, in the
			// middle of its publishes, and comes back.
			n.Kill()
			n.Start()
			runFor(p, 2000)
		}
		p.stop(t, syscall.SIGKILL)
	}
	p := startProcess(t, args, relaying)
	if err := testdb.Recv(t, writerDone, "the writer"); err != nil {
		t.Fatal(err)
	}
	runFor(p, total)
	if err := store.WaitCaughtUp(ctx, meowmxnats.SubscriptionDefault); err != nil {
		t.Fatal(err)
	}
	if msg := p.stop(t, syscall.SIGTERM); !strings.HasPrefix(msg, "exited: <nil>: ") {
		t.Errorf("the last relay did not stop cleanly: %s", msg)
	}

	// Every event once, each subject in version order.
	stream, err := js.Stream(ctx, meowmxnats.StreamDefault)
	if err != nil {
		t.Fatal(err)
	}
	info, err := stream.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.State.Msgs != total {
		t.Errorf("the stream holds %d messages, want %d", info.State.Msgs, total)
	}
	next := map[string]int64{}
	seen := map[string]bool{}
	for seq := info.State.FirstSeq; seq <= info.State.LastSeq; seq++ {
		m, err := stream.GetMsg(ctx, seq)
		if err != nil {
			t.Fatalf("message %d: %v", seq, err)
		}
		ev, err := meowmxnats.Event(m.Header, m.Data)
		if err != nil {
			t.Fatalf("message %d: %v", seq, err)
		}
		if seen[ev.ID.String()] {
			t.Fatalf("event %s stored twice", ev.ID)
		}
		seen[ev.ID.String()] = true
		if ev.Version != next[m.Subject] {
			t.Fatalf("subject %s: version %d after %d", m.Subject, ev.Version, next[m.Subject]-1)
		}
		next[m.Subject]++
	}
	if len(seen) != total || len(next) != streams {
		t.Errorf("%d events in %d subjects, want %d in %d", len(seen), len(next), total, streams)
	}
}
