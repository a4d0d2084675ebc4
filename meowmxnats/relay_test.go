package meowmxnats_test

import (
	"context"
	"database/sql"
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
	"github.com/meowmx/meowmx/meowmxpgxv5"
	"github.com/meowmx/meowmx/meowmxsqlite"
)

func TestMain(m *testing.M) { testdb.Main(m) }

func TestSubjectToken(t *testing.T) {
	seen := map[string]string{}
	for _, id := range []string{"abc", "a.b", "a b", "a*b", "a>b", "a%2Eb", "é", "tab\there", "-_:=@+~", "a.b.c", "a%b"} {
		tok := meowmxnats.SubjectToken(id)
		if tok == "" || strings.ContainsAny(tok, ". *>\t\r\n") {
			t.Errorf("SubjectToken(%q) = %q: not a valid token", id, tok)
		}
		for i := 0; i < len(tok); i++ {
			if tok[i] > 0x7e {
				t.Errorf("SubjectToken(%q) = %q: not ASCII", id, tok)
			}
		}
		if other, ok := seen[tok]; ok {
			t.Errorf("SubjectToken(%q) = SubjectToken(%q) = %q", id, other, tok)
		}
		seen[tok] = id
	}
	if got := meowmxnats.SubjectToken("order-1042"); got != "order-1042" {
		t.Errorf("a plain ID is encoded: %q", got)
	}
}

// connect returns a JetStream client of the server, closed when the test
// ends; it reconnects forever (the server restarts in some tests).
func connect(t *testing.T, n *testdb.NATS) jetstream.JetStream {
	t.Helper()
	nc, err := nats.Connect(n.URL(), nats.MaxReconnects(-1), nats.ReconnectWait(50*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc, jetstream.WithPublishAsyncTimeout(2*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	return js
}

// sqliteStore is a migrated store on a new SQLite file, closed when the
// test ends.
func sqliteStore(t *testing.T) *meowmx.Store[*sql.Tx] {
	t.Helper()
	store, err := meowmx.New(meowmxsqlite.New(testdb.SQLite(t)), &meowmx.Config{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = store.Close() })
	if err := store.Migrate(t.Context()); err != nil {
		t.Fatal(err)
	}
	return store
}

func TestRelaySQLite(t *testing.T) {
	t.Parallel()
	store, err := meowmx.New(meowmxsqlite.New(testdb.SQLite(t)), &meowmx.Config{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	relayAll(t, store)
}

func TestRelayPostgres(t *testing.T) {
	t.Parallel()
	store, err := meowmx.New(meowmxpgxv5.New(testdb.Pool(t)), &meowmx.Config{Schema: testdb.SchemaName(t), Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	relayAll(t, store)
}

// relayAll relays 2,000 events of 40 streams, appended while the relay
// runs, and restarts the NATS server in the middle: JetStream ends up with
// every event once, each subject in version order, each message carrying
// its event whole.
func relayAll[TTx any](t *testing.T, store *meowmx.Store[TTx]) {
	ctx := t.Context()
	defer store.Close()
	if err := store.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	n := testdb.NewNATS(t)
	js := connect(t, n)
	relay, err := meowmxnats.New(store, js, &meowmxnats.Config{BatchSize: 50, PublishTimeout: 2 * time.Second, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	if err := relay.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = relay.Stop(context.WithoutCancel(ctx)) }()

	const streams, each = 40, 50
	appended := map[string]meowmx.RecordedEvent{}
	appendRound := func(round int) {
		for s := range streams {
			// IDs, types and tags with what subjects and headers cannot
			// hold as they are: dots, spaces at the ends, line breaks, %.
			rec, err := store.Append(ctx, meowmx.NewStream("order", fmt.Sprintf(" o.%d\r\n%%41 ", s)), meowmx.Any,
				meowmx.Event{Type: " Placed\t", Data: json.RawMessage(fmt.Sprintf(`{"round":%d}`, round)),
					Metadata: json.RawMessage(`{"by": "test"}`), Tags: []string{"round:" + fmt.Sprint(round), " s,1%"}})
			if err != nil {
				t.Fatal(err)
			}
			appended[rec[0].ID.String()] = rec[0]
		}
	}
	stored := func() uint64 {
		info, err := js.Stream(ctx, meowmxnats.StreamDefault)
		if err != nil {
			return 0
		}
		return info.CachedInfo().State.Msgs
	}
	for round := range each / 2 {
		appendRound(round)
	}
	// Restart NATS once some events are in.
	testdb.Eventually(t, func() (bool, string) {
		got := stored()
		return got >= streams*each/4, fmt.Sprintf("%d stored", got)
	})
	n.Stop()
	for round := each / 2; round < each; round++ {
		appendRound(round)
	}
	n.Start()
	if err := store.WaitCaughtUp(ctx, meowmxnats.SubscriptionDefault); err != nil {
		t.Fatal(err)
	}
	checkStream(t, js, appended)

	// Relaying everything again, with JetStream's duplicate window over:
	// the relay looks up what each subject holds and publishes nothing.
	stream, err := js.Stream(ctx, meowmxnats.StreamDefault)
	if err != nil {
		t.Fatal(err)
	}
	cfg := stream.CachedInfo().Config
	cfg.Duplicates = 100 * time.Millisecond
	if _, err := js.UpdateStream(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond) // the window passes: a precondition, not an assertion
	if err := store.ResetSubscription(ctx, meowmxnats.SubscriptionDefault, meowmx.FromStart); err != nil {
		t.Fatal(err)
	}
	if err := store.WaitCaughtUp(ctx, meowmxnats.SubscriptionDefault); err != nil {
		t.Fatal(err)
	}
	checkStream(t, js, appended)
}

// checkStream reads the whole JetStream stream and checks it holds each
// appended event exactly once, whole, every subject in version order.
func checkStream(t *testing.T, js jetstream.JetStream, appended map[string]meowmx.RecordedEvent) {
	t.Helper()
	ctx := t.Context()
	stream, err := js.Stream(ctx, meowmxnats.StreamDefault)
	if err != nil {
		t.Fatal(err)
	}
	info, err := stream.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.State.Msgs != uint64(len(appended)) {
		t.Errorf("the stream holds %d messages, want %d", info.State.Msgs, len(appended))
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
		id := ev.ID.String()
		if seen[id] {
			t.Fatalf("event %s stored twice", id)
		}
		seen[id] = true
		if ev.Version != next[m.Subject] {
			t.Fatalf("subject %s: version %d after %d", m.Subject, ev.Version, next[m.Subject]-1)
		}
		next[m.Subject]++
		want, ok := appended[id]
		if !ok {
			t.Fatalf("event %s was not appended", id)
		}
		if ev.Stream != want.Stream || ev.Position != want.Position || ev.Type != want.Type || !ev.RecordedAt.Equal(want.RecordedAt) ||
			strings.Join(ev.Tags, "|") != strings.Join(want.Tags, "|") || m.Subject != meowmxnats.Subject(meowmxnats.SubjectPrefixDefault, want.Stream) {
			t.Fatalf("message %d: %+v, want %+v", seq, ev, want)
		}
		var got, wantData, gotMeta, wantMeta any
		_ = json.Unmarshal(ev.Data, &got)
		_ = json.Unmarshal(want.Data, &wantData)
		_ = json.Unmarshal(ev.Metadata, &gotMeta)
		_ = json.Unmarshal(want.Metadata, &wantMeta)
		if fmt.Sprint(got) != fmt.Sprint(wantData) || fmt.Sprint(gotMeta) != fmt.Sprint(wantMeta) {
			t.Fatalf("message %d: data %s metadata %s, want %s and %s", seq, ev.Data, ev.Metadata, want.Data, want.Metadata)
		}
	}
	if len(seen) != len(appended) {
		t.Errorf("%d events relayed, want %d", len(seen), len(appended))
	}
}

// TestRelayRefusesShortWindow: a stream whose duplicate window is shorter
// than the relay needs is refused, naming what it needs.
func TestRelayRefusesShortWindow(t *testing.T) {
	t.Parallel()
	store := sqliteStore(t)
	ctx := t.Context()
	js := connect(t, testdb.NewNATS(t))
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "SHORT", Subjects: []string{"short.>"}, Duplicates: 10 * time.Second}); err != nil {
		t.Fatal(err)
	}
	relay, err := meowmxnats.New(store, js, &meowmxnats.Config{Stream: "SHORT", SubjectPrefix: "short"})
	if err != nil {
		t.Fatal(err)
	}
	err = relay.Start(ctx)
	need := meowmxnats.RequiredDuplicateWindow(&meowmxnats.Config{})
	if err == nil || !strings.Contains(err.Error(), "duplicate window") || !strings.Contains(err.Error(), need.String()) {
		t.Fatalf("Start: %v, want the duplicate window refused (need %s)", err, need)
	}
}

// TestRelayStopsOnTooLarge: an event the stream cannot take stops the
// relay, naming it, rather than park it and leave a gap in its subject.
func TestRelayStopsOnTooLarge(t *testing.T) {
	t.Parallel()
	store := sqliteStore(t)
	ctx := t.Context()
	js := connect(t, testdb.NewNATS(t))
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{
		Name: meowmxnats.StreamDefault, Subjects: []string{"meowmx.>"}, Duplicates: 5 * time.Minute, MaxMsgSize: 1024,
	}); err != nil {
		t.Fatal(err)
	}
	big := meowmx.Event{Type: "Big", Data: json.RawMessage(`"` + strings.Repeat("x", 2000) + `"`)}
	small := meowmx.Event{Type: "Small", Data: json.RawMessage(`{}`)}
	if _, err := store.Append(ctx, meowmx.NewStream("a", "1"), meowmx.Any, small, big, small); err != nil {
		t.Fatal(err)
	}
	relay, err := meowmxnats.New(store, js, &meowmxnats.Config{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	if err := relay.Start(ctx); err != nil {
		t.Fatal(err)
	}
	testdb.Recv(t, relay.Stopped(), "the relay to stop")
	if err := relay.Err(); err == nil || !strings.Contains(err.Error(), "too large") {
		t.Fatalf("the relay stopped with %v, want the event too large", err)
	}
	if parked, err := store.ParkedEvents(ctx, meowmxnats.SubscriptionDefault); err != nil || len(parked) != 0 {
		t.Fatalf("parked %v (%v)", parked, err)
	}
}
