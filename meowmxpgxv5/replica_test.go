package meowmxpgxv5_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/meowmx/meowmx"
	"github.com/meowmx/meowmx/internal/testdb"
	"github.com/meowmx/meowmx/meowmxpgxv5"
)

// standbyPair is a primary cluster of the test's own, a hot standby of it
// streaming its WAL (pg_basebackup -R), and a store on the primary whose
// reads go to the standby.
type standbyPair struct {
	primaryCluster, standbyCluster *testdb.Cluster
	primary, standby               *pgxpool.Pool
	store                          *meowmx.Store[pgx.Tx] // reads from the standby
	primaryOnly                    *meowmx.Store[pgx.Tx] // the same schema, no replica
}

func newStandbyPair(t *testing.T) *standbyPair {
	t.Helper()
	primary := testdb.NewCluster(t)
	standby := testdb.NewStandby(t, primary)
	p := &standbyPair{primaryCluster: primary, standbyCluster: standby,
		primary: poolAt(t, primary.URL()), standby: poolAt(t, standby.URL())}
	schema := testdb.SchemaName(t)
	store, err := meowmx.New(meowmxpgxv5.New(p.primary), &meowmx.Config{
		Schema: schema, Logger: slog.New(slog.DiscardHandler), Replica: meowmxpgxv5.NewReplica(p.standby),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	p.store = store
	if err := store.Migrate(context.Background()); err != nil {
		t.Fatal(err)
	}
	p.primaryOnly = storeOn(t, p.primary, schema, nil)
	p.replayed(t)
	return p
}

// replayed waits until the standby has replayed the primary's WAL up to
// where the primary has flushed it: every commit made so far.
func (p *standbyPair) replayed(t *testing.T) {
	t.Helper()
	ctx := context.Background()
	var lsn string
	if err := p.primary.QueryRow(ctx, `SELECT pg_current_wal_flush_lsn()::text`).Scan(&lsn); err != nil {
		t.Fatal(err)
	}
	testdb.Eventually(t, func() (bool, string) {
		var at string
		var done bool
		err := p.standby.QueryRow(ctx, `SELECT pg_last_wal_replay_lsn()::text, pg_last_wal_replay_lsn() >= $1::pg_lsn`, lsn).Scan(&at, &done)
		if err != nil {
			t.Fatal(err)
		}
		return done, fmt.Sprintf("standby replayed up to %s, primary flushed %s", at, lsn)
	})
}

// pause stops the standby's replay, and returns once it has stopped.
func (p *standbyPair) pause(t *testing.T) {
	t.Helper()
	ctx := context.Background()
	if _, err := p.standby.Exec(ctx, `SELECT pg_wal_replay_pause()`); err != nil {
		t.Fatal(err)
	}
	testdb.Eventually(t, func() (bool, string) {
		var state string
		if err := p.standby.QueryRow(ctx, `SELECT pg_get_wal_replay_pause_state()`).Scan(&state); err != nil {
			t.Fatal(err)
		}
		return state == "paused", "replay " + state
	})
}

func (p *standbyPair) resume(t *testing.T) {
	t.Helper()
	if _, err := p.standby.Exec(context.Background(), `SELECT pg_wal_replay_resume()`); err != nil {
		t.Fatal(err)
	}
}

func positions(events []meowmx.RecordedEvent) []string {
	out := make([]string, len(events))
	for i, e := range events {
		out[i] = fmt.Sprintf("%s@%d=%s", e.Stream, e.Version, e.Position)
	}
	return out
}

// TestStandbyReads runs a store on a real primary whose reads go to a real
// hot standby: the reads return what the primary's do once replayed, the
// Primary option reads one's own writes at once, the standby's horizon
// holds back a transaction in progress on the primary (even one whose id
// the standby has not seen in any WAL record), subscriptions read from the
// standby and never move their checkpoint past what they read when it lags
// behind, and a replica of another cluster is refused.
func TestStandbyReads(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	p := newStandbyPair(t)
	store := p.store
	tagged := meowmx.Event{Type: "Enrolled", Data: data, Tags: []string{"course:c1"}}

	t.Run("reads", func(t *testing.T) {
		for _, id := range []string{"1", "2"} {
			if _, err := store.Append(ctx, meowmx.NewStream("order", id), meowmx.NoStream,
				meowmx.Event{Type: "Placed", Data: data}, tagged); err != nil {
				t.Fatal(err)
			}
		}
		p.replayed(t)
		fromPrimary, err := store.ReadAll(ctx, meowmx.Start, &meowmx.ReadOpts{Primary: true})
		if err != nil {
			t.Fatal(err)
		}
		checks := map[string]func(primary bool) ([]meowmx.RecordedEvent, error){
			"ReadAll": func(primary bool) ([]meowmx.RecordedEvent, error) {
				return store.ReadAll(ctx, meowmx.Start, &meowmx.ReadOpts{Primary: primary})
			},
			"ReadCategory": func(primary bool) ([]meowmx.RecordedEvent, error) {
				return store.ReadCategory(ctx, "order", meowmx.Start, &meowmx.ReadOpts{Primary: primary})
			},
			"ReadStream": func(primary bool) ([]meowmx.RecordedEvent, error) {
				return store.ReadStream(ctx, meowmx.NewStream("order", "2"), &meowmx.ReadStreamOpts{Primary: primary})
			},
			"ReadQuery": func(primary bool) ([]meowmx.RecordedEvent, error) {
				return store.ReadQuery(ctx, meowmx.Query{Items: []meowmx.QueryItem{{Tags: []string{"course:c1"}}}}, meowmx.Start, &meowmx.ReadQueryOpts{Primary: primary})
			},
		}
		for name, read := range checks {
			want, err := read(true)
			if err != nil {
				t.Fatal(err)
			}
			got, err := read(false)
			if err != nil {
				t.Fatalf("%s from the standby: %v", name, err)
			}
			if len(want) == 0 || !slices.Equal(positions(got), positions(want)) {
				t.Fatalf("%s: the standby read %v, the primary %v", name, positions(got), positions(want))
			}
		}
		if len(fromPrimary) != 4 {
			t.Fatalf("the primary holds %d events, want 4", len(fromPrimary))
		}
		streams, err := store.Streams(ctx, nil)
		if err != nil || len(streams) != 2 || streams[1].Version != 1 {
			t.Fatalf("Streams from the standby: %+v, %v", streams, err)
		}
		categories, err := store.Categories(ctx, nil)
		if err != nil || len(categories) != 1 || categories[0].Events != 4 {
			t.Fatalf("Categories from the standby: %+v, %v", categories, err)
		}

		// With replay paused, what the primary records stays off the
		// standby: each read comes from it, unless Primary sends it to the
		// primary, which sees one's own writes. LastEvent and
		// StreamVersion, which decide, read the primary.
		p.pause(t)
		defer p.resume(t)
		paused := meowmx.NewStream("paused", "1")
		added, err := store.Append(ctx, paused, meowmx.NoStream, meowmx.Event{Type: "Held", Data: data, Tags: []string{"course:c9"}})
		if err != nil {
			t.Fatal(err)
		}
		has := func(events []meowmx.RecordedEvent) bool {
			return slices.ContainsFunc(events, func(e meowmx.RecordedEvent) bool { return e.ID == added[0].ID })
		}
		sees := map[string]func(primary bool) (bool, error){
			"ReadStream": func(primary bool) (bool, error) {
				got, err := store.ReadStream(ctx, paused, &meowmx.ReadStreamOpts{Primary: primary})
				return has(got), err
			},
			"ReadAll": func(primary bool) (bool, error) {
				got, err := store.ReadAll(ctx, meowmx.Start, &meowmx.ReadOpts{Primary: primary})
				return has(got), err
			},
			"ReadCategory": func(primary bool) (bool, error) {
				got, err := store.ReadCategory(ctx, "paused", meowmx.Start, &meowmx.ReadOpts{Primary: primary})
				return has(got), err
			},
			"ReadQuery": func(primary bool) (bool, error) {
				got, err := store.ReadQuery(ctx, meowmx.Query{Items: []meowmx.QueryItem{{Tags: []string{"course:c9"}}}}, meowmx.Start, &meowmx.ReadQueryOpts{Primary: primary})
				return has(got), err
			},
			"Events": func(primary bool) (bool, error) {
				for e, err := range store.Events(ctx, meowmx.Start, &meowmx.ReadOpts{Primary: primary, Limit: 2}) {
					if err != nil || e.ID == added[0].ID {
						return err == nil, err
					}
				}
				return false, nil
			},
			"Streams": func(primary bool) (bool, error) {
				got, err := store.Streams(ctx, &meowmx.StreamsOpts{Category: "paused", Primary: primary})
				return len(got) == 1, err
			},
			"Categories": func(primary bool) (bool, error) {
				got, err := store.Categories(ctx, &meowmx.CategoriesOpts{After: "order", Primary: primary})
				return len(got) == 1 && got[0].Category == "paused", err
			},
		}
		for name, read := range sees {
			for _, primary := range []bool{false, true} {
				seen, err := read(primary)
				if err != nil {
					t.Fatalf("%s (primary %v): %v", name, primary, err)
				}
				if seen != primary {
					t.Errorf("%s (primary %v) saw the event appended while replay is paused: %v", name, primary, seen)
				}
			}
		}
		if v, err := store.StreamVersion(ctx, paused); err != nil || v != 0 {
			t.Fatalf("StreamVersion (from the primary) = %d, %v; want 0", v, err)
		}
		if last, err := store.LastEvent(ctx, paused); err != nil || last.ID != added[0].ID {
			t.Fatalf("LastEvent (from the primary) = %v, %v; want the event just appended", last.ID, err)
		}
		p.resume(t)
		p.replayed(t)
		for name, read := range sees {
			if seen, err := read(false); err != nil || !seen {
				t.Errorf("%s from the standby, resumed: saw the event %v, %v", name, seen, err)
			}
		}
	})

	t.Run("late commit", func(t *testing.T) {
		before, err := store.ReadAll(ctx, meowmx.Start, &meowmx.ReadOpts{Primary: true, Limit: 1000})
		if err != nil {
			t.Fatal(err)
		}
		last := before[len(before)-1].Position
		handled := make(chan meowmx.RecordedEvent, 100)
		startSub(t, store, meowmx.SubscriptionConfig[pgx.Tx]{
			Name: "late", From: meowmx.FromPosition(last), Handler: collect(handled),
		})

		// A transaction of the primary takes its id and writes nothing
		// yet: no WAL record of the standby names that id.
		early, err := p.primary.Begin(ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer early.Rollback(ctx)
		if _, err := early.Exec(ctx, `SELECT pg_current_xact_id()`); err != nil {
			t.Fatal(err)
		}
		later, err := store.Append(ctx, meowmx.NewStream("late", "after"), meowmx.NoStream, meowmx.Event{Type: "Later", Data: data})
		if err != nil {
			t.Fatal(err)
		}
		p.replayed(t)
		// The standby has replayed the later commit, and its horizon still
		// holds it back behind the early transaction.
		for _, primary := range []bool{true, false} {
			got, err := store.ReadAll(ctx, last, &meowmx.ReadOpts{Primary: primary})
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != 0 {
				t.Fatalf("read (primary %v) %v while an older transaction runs on the primary", primary, positions(got))
			}
		}
		visible, err := store.ReadStream(ctx, meowmx.NewStream("late", "after"), nil)
		if err != nil || len(visible) != 1 {
			t.Fatalf("the standby's stream read: %d events, %v; want the later event (stream reads have no horizon)", len(visible), err)
		}

		// The early transaction records its event and commits: it comes
		// first, on the standby and to the subscription reading from it.
		recorded, err := store.AppendTx(ctx, early, meowmx.NewStream("late", "early"), meowmx.NoStream, meowmx.Event{Type: "Early", Data: data})
		if err != nil {
			t.Fatal(err)
		}
		if err := early.Commit(ctx); err != nil {
			t.Fatal(err)
		}
		if recorded[0].Position.Compare(later[0].Position) >= 0 {
			t.Fatalf("the early transaction's event at %s, not before the later one at %s", recorded[0].Position, later[0].Position)
		}
		got := readAll(t, store, last, 2)
		if got[0].ID != recorded[0].ID || got[1].ID != later[0].ID || len(got) != 2 {
			t.Fatalf("the standby read %v after the commit, want the early event, then the later one", positions(got))
		}
		for i, want := range []meowmx.RecordedEvent{recorded[0], later[0]} {
			if e := testdb.Recv(t, handled, "the late events"); e.ID != want.ID {
				t.Fatalf("the subscription's event %d is %s@%d, want %s@%d", i, e.Stream, e.Version, want.Stream, want.Version)
			}
		}
	})

	t.Run("lagging checkpoint", func(t *testing.T) {
		// A worker on the primary takes the subscription to the end of
		// the log, past everything the paused standby has replayed.
		p.pause(t)
		defer p.resume(t)
		for i := range 5 {
			if _, err := store.Append(ctx, meowmx.NewStream("lag", fmt.Sprint(i)), meowmx.NoStream, meowmx.Event{Type: "Step", Data: data}); err != nil {
				t.Fatal(err)
			}
		}
		log, err := store.ReadAll(ctx, meowmx.Start, &meowmx.ReadOpts{Primary: true, Limit: 1000})
		if err != nil {
			t.Fatal(err)
		}
		end := log[len(log)-1]
		handled := make(chan meowmx.RecordedEvent, 100)
		sub := startSub(t, p.primaryOnly, meowmx.SubscriptionConfig[pgx.Tx]{Name: "ahead", Handler: collect(handled)})
		for range log {
			testdb.Recv(t, handled, "the log, from the primary")
		}
		if err := sub.Stop(ctx); err != nil {
			t.Fatal(err)
		}
		// A worker reading from the standby, which is behind its
		// checkpoint, finds nothing there: after the standby replays,
		// it handles the one event appended since, and none of those
		// before the checkpoint again.
		startSub(t, store, meowmx.SubscriptionConfig[pgx.Tx]{Name: "ahead", Handler: collect(handled)})
		next, err := store.Append(ctx, meowmx.NewStream("lag", "next"), meowmx.NoStream, meowmx.Event{Type: "Step", Data: data})
		if err != nil {
			t.Fatal(err)
		}
		// Nothing else uses the standby's pool now: its acquisitions are
		// the worker's reads, made after the append, finding nothing.
		base := p.standby.Stat().AcquireCount()
		testdb.Eventually(t, func() (bool, string) {
			n := p.standby.Stat().AcquireCount() - base
			return n >= 2, fmt.Sprintf("%d reads from the standby", n)
		})
		if len(handled) != 0 {
			e := <-handled
			t.Fatalf("the worker reading from the paused standby handled %s@%d", e.Stream, e.Version)
		}
		st, err := store.SubscriptionStatuses(ctx, "ahead")
		if err != nil {
			t.Fatal(err)
		}
		if st[0].Checkpoint != end.Position {
			t.Fatalf("checkpoint %s with the standby paused, want %s where the primary's worker left it", st[0].Checkpoint, end.Position)
		}
		p.resume(t)
		if e := testdb.Recv(t, handled, "the event appended after the checkpoint"); e.ID != next[0].ID {
			t.Fatalf("the worker on the standby handled %s@%d at %s, want the new event at %s (checkpoint %s)", e.Stream, e.Version, e.Position, next[0].Position, end.Position)
		}
		testdb.Eventually(t, func() (bool, string) {
			st, err := store.SubscriptionStatuses(ctx, "ahead")
			if err != nil {
				t.Fatal(err)
			}
			return st[0].Checkpoint == next[0].Position, "checkpoint " + st[0].Checkpoint.String()
		})

		// A new subscription catches up from the start on the standby:
		// the whole log, in order, once.
		all, err := store.ReadAll(ctx, meowmx.Start, &meowmx.ReadOpts{Primary: true, Limit: 1000})
		if err != nil {
			t.Fatal(err)
		}
		fresh := make(chan meowmx.RecordedEvent, 100)
		startSub(t, store, meowmx.SubscriptionConfig[pgx.Tx]{Name: "fresh", Handler: collect(fresh), BatchSize: 3})
		var got []meowmx.RecordedEvent
		for range all {
			got = append(got, testdb.Recv(t, fresh, "the log, from the standby"))
		}
		if !slices.Equal(positions(got), positions(all)) {
			t.Fatalf("caught up from the standby: %v, want %v", positions(got), positions(all))
		}
		checkOrder(t, got)
	})

	t.Run("another database", func(t *testing.T) {
		// The same schema in another database of the same cluster, read
		// through the standby: same system identifier, other events.
		if _, err := p.primary.Exec(ctx, `CREATE DATABASE other`); err != nil {
			t.Fatal(err)
		}
		otherURL := strings.Replace(p.primaryCluster.URL(), "/test?", "/other?", 1)
		if err := storeOn(t, poolAt(t, otherURL), store.Schema(), nil).Migrate(ctx); err != nil {
			t.Fatal(err)
		}
		p.replayed(t)
		standbyOther := poolAt(t, strings.Replace(p.standbyCluster.URL(), "/test?", "/other?", 1))
		wrong, err := meowmx.New(meowmxpgxv5.New(p.primary), &meowmx.Config{
			Schema: store.Schema(), Replica: meowmxpgxv5.NewReplica(standbyOther),
		})
		if err != nil {
			t.Fatal(err)
		}
		defer wrong.Close()
		if _, err := wrong.ReadAll(ctx, meowmx.Start, nil); !errors.Is(err, meowmx.ErrReplicaMismatch) {
			t.Fatalf("ReadAll through the standby's other database: %v, want ErrReplicaMismatch", err)
		}
	})

	t.Run("another cluster", func(t *testing.T) {
		// The shared cluster holds the same schema, with positions of its
		// own: reads through it as a replica are refused.
		other := testdb.Pool(t)
		if err := storeOn(t, other, store.Schema(), nil).Migrate(ctx); err != nil {
			t.Fatal(err)
		}
		wrong, err := meowmx.New(meowmxpgxv5.New(p.primary), &meowmx.Config{
			Schema: store.Schema(), Replica: meowmxpgxv5.NewReplica(other),
		})
		if err != nil {
			t.Fatal(err)
		}
		defer wrong.Close()
		if _, err := wrong.ReadAll(ctx, meowmx.Start, nil); !errors.Is(err, meowmx.ErrReplicaMismatch) {
			t.Fatalf("ReadAll through a replica of another cluster: %v, want ErrReplicaMismatch", err)
		}
		if _, err := wrong.ReadAll(ctx, meowmx.Start, &meowmx.ReadOpts{Primary: true}); err != nil {
			t.Fatalf("ReadAll from the primary: %v", err)
		}
	})
}
