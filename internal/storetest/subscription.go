package storetest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/meowmx/meowmx"
	"github.com/meowmx/meowmx/internal/testdb"
	"github.com/meowmx/meowmx/internal/testsignal"
)

func subscriptionTests[TTx any]() map[string]func(t *testing.T, h *Harness[TTx]) {
	return map[string]func(t *testing.T, h *Harness[TTx]){
		"CompetingWorkers":   testSubCompetingWorkers[TTx],
		"Delete":             testSubDelete[TTx],
		"ParkAndReplay":      testSubParkAndReplay[TTx],
		"PanicIsAnError":     testSubPanic[TTx],
		"Unavailable":        testSubUnavailable[TTx],
		"StopPolicy":         testSubStopPolicy[TTx],
		"Partitions":         testSubPartitions[TTx],
		"StopMidBatch":       testSubStopMidBatch[TTx],
		"CrashTakeover":      testSubCrashTakeover[TTx],
		"WakeWithoutPolling": testSubWake[TTx],
		"FromEndAndReset":    testSubFromEndAndReset[TTx],
		"ResetAfterEnd":      testSubResetAfterEnd[TTx],
		"WaitCaughtUp":       testSubWaitCaughtUp[TTx],
		"Status":             testSubStatus[TTx],
		"BadConfig":          testSubBadConfig[TTx],
		"ReadModelOnce":      testSubReadModelOnce[TTx],
		"ResetDuringBatch":   testSubResetDuringBatch[TTx],
		"Tags":               testSubTags[TTx],
	}
}

// model is a read model written by handlers through their transaction. In
// ordered mode it fails (so the handler fails) if an event arrives twice or
// out of its stream's version order.
type model[TTx any] struct {
	h       *Harness[TTx]
	s       *meowmx.Store[TTx]
	events  string
	streams string
	ordered bool
}

func newModel[TTx any](t *testing.T, h *Harness[TTx], s *meowmx.Store[TTx], name string, ordered bool) *model[TTx] {
	t.Helper()
	m := &model[TTx]{h: h, s: s, events: h.Table(s, name+"_events"), streams: h.Table(s, name+"_streams"), ordered: ordered}
	c := ctx(t)
	for _, q := range []string{
		`CREATE TABLE ` + m.events + ` (event_id TEXT NOT NULL)`,
		`CREATE TABLE ` + m.streams + ` (stream TEXT PRIMARY KEY, version BIGINT NOT NULL)`,
	} {
		if err := h.ExecDB(c, s, q); err != nil {
			t.Fatal(err)
		}
	}
	if ordered {
		if err := h.ExecDB(c, s, `CREATE UNIQUE INDEX `+strings.ReplaceAll(name, ".", "_")+`_events_once ON `+m.events+` (event_id)`); err != nil {
			t.Fatal(err)
		}
	}
	return m
}

func (m *model[TTx]) apply(ctx context.Context, tx TTx, e meowmx.RecordedEvent) error {
	if _, err := m.h.Exec(ctx, tx, `INSERT INTO `+m.events+` (event_id) VALUES (?)`, e.ID.String()); err != nil {
		return fmt.Errorf("event %s applied twice? %w", e.ID, err)
	}
	if !m.ordered {
		return nil
	}
	stream := e.Stream.String()
	var n int64
	var err error
	if e.Version == 0 {
		n, err = m.h.Exec(ctx, tx, `INSERT INTO `+m.streams+` (stream, version) VALUES (?, 0)`, stream)
	} else {
		n, err = m.h.Exec(ctx, tx, `UPDATE `+m.streams+` SET version = ? WHERE stream = ? AND version = ?`, e.Version, stream, e.Version-1)
	}
	if err != nil || n != 1 {
		return fmt.Errorf("%s version %d applied out of order (%d rows, %v)", stream, e.Version, n, err)
	}
	return nil
}

func (m *model[TTx]) handler() meowmx.Handler[TTx] {
	return meowmx.HandleEach(m.apply)
}

// applied returns how many events were applied and how many distinct ones.
func (m *model[TTx]) applied(t *testing.T) (total, distinct int) {
	t.Helper()
	rows, err := m.h.QueryPairs(ctx(t), m.s, `SELECT CAST(count(*) AS TEXT), CAST(count(DISTINCT event_id) AS TEXT) FROM `+m.events)
	if err != nil {
		t.Fatal(err)
	}
	total, _ = strconv.Atoi(rows[0][0])
	distinct, _ = strconv.Atoi(rows[0][1])
	return total, distinct
}

func (m *model[TTx]) versions(t *testing.T) map[string]int64 {
	t.Helper()
	rows, err := m.h.QueryPairs(ctx(t), m.s, `SELECT stream, CAST(version AS TEXT) FROM `+m.streams)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]int64{}
	for _, r := range rows {
		v, _ := strconv.ParseInt(r[1], 10, 64)
		out[r[0]] = v
	}
	return out
}

// waitApplied waits until the model holds want events, each once.
func (m *model[TTx]) waitApplied(t *testing.T, want int) {
	t.Helper()
	m.waitTotal(t, want)
	if total, distinct := m.applied(t); total != want || distinct != want {
		t.Fatalf("%d events applied, %d distinct, want %d exactly once", total, distinct, want)
	}
}

// waitTotal waits until the model holds want applications, and no more.
func (m *model[TTx]) waitTotal(t *testing.T, want int) {
	t.Helper()
	testdb.Eventually(t, func() (bool, string) {
		total, distinct := m.applied(t)
		return total >= want, fmt.Sprintf("%d events applied (%d distinct), want %d", total, distinct, want)
	})
	if total, _ := m.applied(t); total != want {
		t.Fatalf("%d events applied, want %d", total, want)
	}
}

// fast returns a config for tests: short leases, polls and backoffs.
func fast[TTx any](name string, handler meowmx.Handler[TTx]) meowmx.SubscriptionConfig[TTx] {
	return meowmx.SubscriptionConfig[TTx]{
		Name:            name,
		Handler:         handler,
		Lease:           time.Second,
		PollInterval:    50 * time.Millisecond,
		RetryBackoff:    time.Millisecond,
		RetryBackoffMax: 5 * time.Millisecond,
		MaxAttempts:     3,
	}
}

func start[TTx any](t *testing.T, s *meowmx.Store[TTx], cfg meowmx.SubscriptionConfig[TTx]) *meowmx.Subscription[TTx] {
	t.Helper()
	return startWith(t, context.Background(), s, cfg)
}

// startWith starts a subscription with ctx (carrying test hooks) until the
// test ends, and stops it then.
func startWith[TTx any](t *testing.T, c context.Context, s *meowmx.Store[TTx], cfg meowmx.SubscriptionConfig[TTx]) *meowmx.Subscription[TTx] {
	t.Helper()
	sub, err := s.Subscribe(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := sub.Start(c); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { stop(t, sub) })
	return sub
}

// stop stops a subscription gracefully: its batch in flight ends first.
func stop[TTx any](t *testing.T, sub *meowmx.Subscription[TTx]) {
	t.Helper()
	if err := sub.Stop(context.Background()); err != nil {
		t.Errorf("stop: %v", err)
	}
}

func appendN[TTx any](t *testing.T, s *meowmx.Store[TTx], category string, streams, n int) {
	t.Helper()
	c := ctx(t)
	for i := range n {
		stream := meowmx.NewStream(category, fmt.Sprint(i%streams))
		if _, err := s.Append(c, stream, meowmx.Any, ev("E", fmt.Sprintf(`{"i":%d}`, i))); err != nil {
			t.Fatal(err)
		}
	}
}

func noParked[TTx any](t *testing.T, s *meowmx.Store[TTx], name string) {
	t.Helper()
	parked, err := s.ParkedEvents(ctx(t), name)
	if err != nil {
		t.Fatal(err)
	}
	if len(parked) > 0 {
		t.Fatalf("%s parked %d events; first: %s", name, len(parked), parked[0].Error)
	}
}

// testSubCompetingWorkers: 8 concurrent writers append 2,000 events to random
// streams while 3 subscriptions each run 3 competing workers. Every event is
// handled exactly once by each subscription, in version order per stream.
func testSubCompetingWorkers[TTx any](t *testing.T, h *Harness[TTx]) {
	s := h.NewStore(t, nil, true)
	const writers, total, streams = 8, 2000, 40
	subs := []struct {
		name       string
		categories []string
		partitions int
	}{
		{"accounts", []string{"acct"}, 1},
		{"everything", nil, 1},
		{"accounts_parted", []string{"acct", "other"}, 3},
	}
	models := map[string]*model[TTx]{}
	for _, sc := range subs {
		m := newModel(t, h, s, sc.name, true)
		models[sc.name] = m
		for range 3 {
			cfg := fast(sc.name, m.handler())
			cfg.Categories = sc.categories
			cfg.Partitions = sc.partitions
			cfg.BatchSize = 50
			start(t, s, cfg)
		}
	}
	c := ctx(t)
	var wg sync.WaitGroup
	var next atomic.Int64
	for range writers {
		wg.Go(func() {
			for next.Add(1) <= total {
				stream := meowmx.NewStream("acct", fmt.Sprint(rand.IntN(streams)))
				if _, err := s.Append(c, stream, meowmx.Any, ev("Posted", `{"amount":1}`)); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	for _, sc := range subs {
		m := models[sc.name]
		m.waitApplied(t, total)
		for stream, version := range m.versions(t) {
			parsed, _ := meowmx.ParseStream(stream)
			if v := must(s.StreamVersion(c, parsed))(t); v != version {
				t.Fatalf("%s: model has %s at version %d, the store %d", sc.name, stream, version, v)
			}
		}
		noParked(t, s, sc.name)
	}
}

func testSubParkAndReplay[TTx any](t *testing.T, h *Harness[TTx]) {
	s := h.NewStore(t, nil, true)
	m := newModel(t, h, s, "parking", false)
	var failing atomic.Bool
	failing.Store(true)
	var attempts atomic.Int32
	handler := meowmx.HandleEach(func(ctx context.Context, tx TTx, e meowmx.RecordedEvent) error {
		if string(e.Data) == `{"i":5}` || strings.ReplaceAll(string(e.Data), " ", "") == `{"i":5}` {
			if failing.Load() {
				attempts.Add(1)
				return errors.New("cannot handle event 5")
			}
		}
		return m.apply(ctx, tx, e)
	})
	cfg := fast("parking", handler)
	cfg.BatchSize = 4
	start(t, s, cfg)
	appendN(t, s, "job", 3, 10)
	m.waitApplied(t, 9)
	var parked []meowmx.ParkedEvent
	testdb.Eventually(t, func() (bool, string) {
		parked = must(s.ParkedEvents(ctx(t), "parking"))(t)
		return len(parked) == 1, fmt.Sprintf("%d parked", len(parked))
	})
	p := parked[0]
	if !strings.Contains(p.Error, "cannot handle event 5") || p.Attempts != 3 || p.Partition != 0 || p.Event.Version != 1 || p.Event.Stream.Category != "job" {
		t.Fatalf("parked %+v", p)
	}
	if n := attempts.Load(); n != 3 {
		t.Fatalf("the failing event was tried %d times (in its batch, then alone), want MaxAttempts = 3", n)
	}
	statuses := must(s.SubscriptionStatuses(ctx(t), "parking"))(t)
	if len(statuses) != 1 || statuses[0].Parked != 1 || statuses[0].Lag != 0 {
		t.Fatalf("status %+v", statuses)
	}

	failing.Store(false)
	if n := must(s.ReplayParked(ctx(t), "parking"))(t); n != 1 {
		t.Fatalf("replay asked for %d events, want 1", n)
	}
	m.waitApplied(t, 10)
	testdb.Eventually(t, func() (bool, string) {
		parked = must(s.ParkedEvents(ctx(t), "parking"))(t)
		return len(parked) == 0, fmt.Sprintf("%d still parked", len(parked))
	})
}

func testSubPanic[TTx any](t *testing.T, h *Harness[TTx]) {
	s := h.NewStore(t, nil, true)
	m := newModel(t, h, s, "panicky", true)
	handler := meowmx.HandleEach(func(ctx context.Context, tx TTx, e meowmx.RecordedEvent) error {
		if e.Type == "Boom" {
			panic("boom")
		}
		return m.apply(ctx, tx, e)
	})
	start(t, s, fast("panicky", handler))
	c := ctx(t)
	must(s.Append(c, meowmx.NewStream("a", "1"), meowmx.NoStream, ev("Ok", `{}`)))(t)
	must(s.Append(c, meowmx.NewStream("b", "1"), meowmx.NoStream, ev("Boom", `{}`)))(t)
	must(s.Append(c, meowmx.NewStream("a", "1"), 0, ev("Ok", `{}`)))(t)
	m.waitApplied(t, 2)
	testdb.Eventually(t, func() (bool, string) {
		parked := must(s.ParkedEvents(c, "panicky"))(t)
		return len(parked) == 1 && strings.Contains(parked[0].Error, "panicked: boom"), fmt.Sprintf("parked %+v", parked)
	})
}

// testSubUnavailable: a handler failing with ErrUnavailable more often than
// MaxAttempts has its batch retried until it succeeds: nothing is parked.
func testSubUnavailable[TTx any](t *testing.T, h *Harness[TTx]) {
	s := h.NewStore(t, nil, true)
	m := newModel(t, h, s, "unavailable", true)
	var calls atomic.Int32
	handler := meowmx.HandleEach(func(ctx context.Context, tx TTx, e meowmx.RecordedEvent) error {
		if calls.Add(1) <= 10 { // MaxAttempts is 3
			return fmt.Errorf("broker down: %w", meowmx.ErrUnavailable)
		}
		return m.apply(ctx, tx, e)
	})
	start(t, s, fast("unavailable", handler))
	c := ctx(t)
	must(s.Append(c, meowmx.NewStream("a", "1"), meowmx.NoStream, ev("Ok", `{}`), ev("Ok", `{}`)))(t)
	m.waitApplied(t, 2)
	if parked := must(s.ParkedEvents(c, "unavailable"))(t); len(parked) != 0 {
		t.Fatalf("parked %+v", parked)
	}
	if n := calls.Load(); n < 12 {
		t.Fatalf("%d calls of the handler, want the 10 failures and 2 successes at least", n)
	}
}

func testSubStopPolicy[TTx any](t *testing.T, h *Harness[TTx]) {
	s := h.NewStore(t, nil, true)
	m := newModel(t, h, s, "strict", true)
	handler := meowmx.HandleEach(func(ctx context.Context, tx TTx, e meowmx.RecordedEvent) error {
		if e.Version == 3 {
			return errors.New("version 3 is poison")
		}
		return m.apply(ctx, tx, e)
	})
	cfg := fast("strict", handler)
	cfg.OnFailure = meowmx.StopSubscription
	appendN(t, s, "job", 1, 6)
	sub := start(t, s, cfg)
	testdb.Recv(t, sub.Stopped(), "the subscription to stop on a failing event")
	if err := sub.Err(); !errors.Is(err, meowmx.ErrSubscriptionStopped) || !strings.Contains(err.Error(), "poison") {
		t.Fatalf("Err() = %v", err)
	}
	if total, _ := m.applied(t); total != 3 {
		t.Fatalf("%d events applied before stopping, want 3", total)
	}
	events := must(s.ReadStream(ctx(t), meowmx.NewStream("job", "0"), nil))(t)
	statuses := must(s.SubscriptionStatuses(ctx(t), "strict"))(t)
	if statuses[0].Checkpoint != events[2].Position || statuses[0].Lag != 3 || statuses[0].Parked != 0 || statuses[0].Owner != "" {
		t.Fatalf("status after stopping: %+v (event 2 at %s)", statuses[0], events[2].Position)
	}
}

// testSubPartitions: 4 partitions with 2 workers, then 3, then 1: every event
// is handled once and in order per stream, and the partitions spread.
func testSubPartitions[TTx any](t *testing.T, h *Harness[TTx]) {
	s := h.NewStore(t, nil, true)
	m := newModel(t, h, s, "parted", true)
	cfg := fast("parted", m.handler())
	cfg.Partitions = 4
	cfg.Lease = 600 * time.Millisecond
	cfg.BatchSize = 20
	owners := func(want int) {
		t.Helper()
		testdb.Eventually(t, func() (bool, string) {
			seen := map[string]bool{}
			statuses := must(s.SubscriptionStatuses(ctx(t), "parted"))(t)
			for _, st := range statuses {
				if st.Owner != "" {
					seen[st.Owner] = true
				}
			}
			return len(seen) == want, fmt.Sprintf("%d distinct owners, want %d", len(seen), want)
		})
	}
	w1 := start(t, s, cfg)
	w2 := start(t, s, cfg)
	appendN(t, s, "item", 25, 200)
	m.waitApplied(t, 200)
	owners(2)

	w3 := start(t, s, cfg)
	owners(3)
	appendN(t, s, "item", 25, 200)
	m.waitApplied(t, 400)

	stop(t, w1)
	stop(t, w2)
	owners(1)
	appendN(t, s, "item", 25, 200)
	m.waitApplied(t, 600)
	statuses := must(s.SubscriptionStatuses(ctx(t), "parted"))(t)
	for _, st := range statuses {
		if st.Owner != w3.Worker() || st.Lag != 0 {
			t.Fatalf("partition %d: owner %q lag %d, want %q and 0", st.Partition, st.Owner, st.Lag, w3.Worker())
		}
	}
	noParked(t, s, "parted")
}

// testSubStopMidBatch: a worker stopped with an expired context while its
// handler runs rolls the batch back; another worker handles it, once.
func testSubStopMidBatch[TTx any](t *testing.T, h *Harness[TTx]) {
	s := h.NewStore(t, nil, true)
	m := newModel(t, h, s, "interrupted", true)
	inHandler := make(chan struct{})
	var once sync.Once
	blocking := func(ctx context.Context, tx TTx, events []meowmx.RecordedEvent) error {
		for _, e := range events {
			if err := m.apply(ctx, tx, e); err != nil {
				return err
			}
		}
		once.Do(func() { close(inHandler) })
		<-ctx.Done() // the first worker never finishes by itself
		return ctx.Err()
	}
	appendN(t, s, "job", 5, 50)
	a, err := s.Subscribe(fast("interrupted", blocking))
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Start(ctx(t)); err != nil {
		t.Fatal(err)
	}
	testdb.Recv(t, inHandler, "the first worker's batch")
	expired, cancel := context.WithCancel(context.Background())
	cancel()
	if err := a.Stop(expired); !errors.Is(err, context.Canceled) {
		t.Fatalf("Stop with an expired context = %v", err)
	}
	if total, _ := m.applied(t); total != 0 {
		t.Fatalf("a cancelled batch left %d events applied", total)
	}
	start(t, s, fast("interrupted", m.handler()))
	m.waitApplied(t, 50)
	noParked(t, s, "interrupted")
}

// testSubCrashTakeover: a worker whose handler hangs loses its partition
// once the batch outlasts the lease; another worker handles everything, and
// the hung batch, when it finally ends, does not commit.
func testSubCrashTakeover[TTx any](t *testing.T, h *Harness[TTx]) {
	if !h.ConcurrentWriters {
		t.Skip("a hung SQLite transaction holds the only write lock: no other worker can take over until it ends")
	}
	s := h.NewStore(t, nil, true)
	m := newModel(t, h, s, "takeover", true)
	release := make(chan struct{})
	inHandler := make(chan struct{})
	var once sync.Once
	// It hangs before writing (a transaction that has written holds row
	// locks, and the horizon, until it ends: see Store.Horizon), ignoring
	// its context, and then claims success without applying anything.
	hung := func(ctx context.Context, tx TTx, events []meowmx.RecordedEvent) error {
		once.Do(func() { close(inHandler) })
		<-release
		return nil
	}
	appendN(t, s, "job", 5, 50)
	cfg := fast("takeover", hung)
	cfg.Lease = 500 * time.Millisecond
	hungSub := start(t, s, cfg)
	var unblock sync.Once
	t.Cleanup(func() { unblock.Do(func() { close(release) }) }) // before the worker's Stop
	testdb.Recv(t, inHandler, "the first worker's batch")
	takenAt := time.Now()
	cfg.Handler = m.handler()
	start(t, s, cfg)
	m.waitApplied(t, 50)
	if waited := time.Since(takenAt); waited < 300*time.Millisecond {
		t.Fatalf("taken over after %s, before the lease ran out", waited)
	}
	// The hung batch now tries to commit, and must be refused: Stop
	// returns once it has ended.
	unblock.Do(func() { close(release) })
	stop(t, hungSub)
	m.waitApplied(t, 50)
	noParked(t, s, "takeover")
}

// testSubWake: with polling at an hour, an append in this process (and on
// PostgreSQL, through another store, as another process would) is still
// delivered at once.
func testSubWake[TTx any](t *testing.T, h *Harness[TTx]) {
	s := h.NewStore(t, nil, true)
	m := newModel(t, h, s, "woken", true)
	cfg := fast("woken", m.handler())
	cfg.PollInterval = time.Hour
	cfg.Lease = 30 * time.Second
	c := ctx(t)
	stream := meowmx.NewStream("bell", "1")
	hooks, idle := testsignal.Idle()
	startWith(t, testsignal.With(context.Background(), hooks), s, cfg)
	appenders := []*meowmx.Store[TTx]{s, s}
	if h.ConcurrentWriters {
		// Another store on the same database, as another process would
		// have: its appends arrive through the database's notifications.
		other, err := meowmx.New(s.Driver(), &meowmx.Config{Schema: s.Schema()})
		if err != nil {
			t.Fatal(err)
		}
		appenders = append(appenders, other)
	}
	for i, appender := range appenders {
		// The worker has read everything and sleeps for an hour.
		testdb.Recv(t, idle, "the worker to sleep with nothing to read")
		must(appender.Append(c, stream, meowmx.ExpectedVersion(i-1), ev("Rang", `{}`)))(t)
		m.waitApplied(t, i+1)
	}
}

func testSubFromEndAndReset[TTx any](t *testing.T, h *Harness[TTx]) {
	s := h.NewStore(t, nil, true)
	c := ctx(t)
	appendN(t, s, "log", 1, 5)
	all := readAllWait(t, s, "", meowmx.Start, 5)

	fromEnd := newModel(t, h, s, "from_end", false)
	cfg := fast("from_end", fromEnd.handler())
	cfg.From = meowmx.FromEnd
	start(t, s, cfg)
	fromPos := newModel(t, h, s, "from_pos", false)
	cfg = fast("from_pos", fromPos.handler())
	cfg.From = meowmx.FromPosition(all[1].Position)
	start(t, s, cfg)
	fromPos.waitApplied(t, 3)
	// The from-end subscription exists once started: append after that.
	testdb.Eventually(t, func() (bool, string) {
		statuses := must(s.SubscriptionStatuses(c, "from_end"))(t)
		return len(statuses) == 1 && statuses[0].Checkpoint == all[4].Position, fmt.Sprintf("%+v", statuses)
	})
	appendN(t, s, "log", 1, 3)
	fromEnd.waitApplied(t, 3)
	fromPos.waitApplied(t, 6)

	// Reset to the start: everything is handled again.
	if err := s.ResetSubscription(c, "from_end", meowmx.FromStart); err != nil {
		t.Fatal(err)
	}
	fromEnd.waitTotal(t, 11)
	if err := s.ResetSubscription(c, "nope", meowmx.FromStart); !errors.Is(err, meowmx.ErrSubscriptionNotFound) {
		t.Fatalf("reset of an unknown subscription: %v", err)
	}
}

// testSubResetAfterEnd: a position after the last event would skip every
// event until the log reached it; a reset or a new subscription there is
// refused, and the subscription keeps its checkpoint.
func testSubResetAfterEnd[TTx any](t *testing.T, h *Harness[TTx]) {
	s := h.NewStore(t, nil, true)
	c := ctx(t)
	appendN(t, s, "log", 1, 3)
	all := readAllWait(t, s, "", meowmx.Start, 3)
	last := all[2].Position
	m := newModel(t, h, s, "audit", false)
	start(t, s, fast("audit", m.handler()))
	m.waitApplied(t, 3)
	for _, p := range []meowmx.Position{
		{TransactionID: last.TransactionID, Seq: last.Seq + 1},
		{TransactionID: last.TransactionID + 1, Seq: 1},
		{TransactionID: 99999999, Seq: 1},
	} {
		err := s.ResetSubscription(c, "audit", meowmx.FromPosition(p))
		if !errors.Is(err, meowmx.ErrAfterEnd) || !errors.Is(err, meowmx.ErrInvalidInput) {
			t.Fatalf("reset to %s, after the last event at %s: err = %v, want ErrAfterEnd", p, last, err)
		}
		cfg := fast("late", m.handler())
		cfg.From = meowmx.FromPosition(p)
		sub := must(s.Subscribe(cfg))(t)
		if err := sub.Start(c); !errors.Is(err, meowmx.ErrAfterEnd) {
			t.Fatalf("a subscription from %s: Start = %v, want ErrAfterEnd", p, err)
		}
	}
	if statuses := must(s.SubscriptionStatuses(c, "late"))(t); len(statuses) != 0 {
		t.Fatalf("a refused subscription was created: %+v", statuses)
	}
	// The checkpoint did not move: new events are delivered.
	appendN(t, s, "log", 1, 2)
	m.waitApplied(t, 5)
	// The last event's own position is not after the end.
	if err := s.ResetSubscription(c, "audit", meowmx.FromPosition(last)); err != nil {
		t.Fatalf("reset to the last event's position: %v", err)
	}
	m.waitTotal(t, 7)
}

func testSubStatus[TTx any](t *testing.T, h *Harness[TTx]) {
	s := h.NewStore(t, nil, true)
	c := ctx(t)
	m := newModel(t, h, s, "watched", true)
	appendN(t, s, "order", 2, 4)
	sub := start(t, s, fast("watched", m.handler()))
	m.waitApplied(t, 4)
	last := readAllWait(t, s, "", meowmx.Start, 4)[3].Position
	testdb.Eventually(t, func() (bool, string) {
		st := must(s.SubscriptionStatuses(c, "watched"))(t)[0]
		return st.Checkpoint == last && st.Lag == 0 && st.Owner == sub.Worker() && st.LeaseUntil.After(time.Now()), fmt.Sprintf("%+v", st)
	})
	if err := sub.Stop(c); err != nil {
		t.Fatal(err)
	}
	appendN(t, s, "order", 2, 3)
	appendN(t, s, "other", 2, 2)
	readAllWait(t, s, "", meowmx.Start, 9)
	// TimeBehind grows from zero as the clock moves past the oldest
	// unhandled event.
	var st meowmx.SubscriptionStatus
	testdb.Eventually(t, func() (bool, string) {
		all := must(s.SubscriptionStatuses(c, ""))(t)
		if len(all) != 1 {
			t.Fatalf("%d subscriptions listed", len(all))
		}
		st = all[0]
		return st.TimeBehind > 0, fmt.Sprintf("%+v", st)
	})
	if st.Name != "watched" || st.Lag != 5 || st.TimeBehind <= 0 || st.Owner != "" || st.Partitions != 1 || st.Checkpoint != last {
		t.Fatalf("status of a stopped subscription 5 events behind: %+v", st)
	}
	// A lag counted up to a limit: capped below it, exact at or above.
	for limit, want := range map[int64]struct {
		lag    int64
		capped bool
	}{2: {2, true}, 5: {5, true}, 6: {5, false}, 0: {5, false}} {
		got := must(s.SubscriptionStatusesLimit(c, "watched", limit))(t)[0]
		if got.Lag != want.lag || got.LagCapped != want.capped || got.TimeBehind <= 0 {
			t.Fatalf("lag counted up to %d: %d (capped %v), want %d (capped %v)", limit, got.Lag, got.LagCapped, want.lag, want.capped)
		}
	}
	if _, err := s.SubscriptionStatusesLimit(c, "watched", -1); !errors.Is(err, meowmx.ErrInvalidInput) {
		t.Fatalf("negative lag limit: err = %v", err)
	}
	if !h.ConcurrentWriters && (st.Horizon != nil || st.HorizonHeld) {
		t.Fatalf("SQLite reported a horizon: %+v", st.Horizon)
	}
}

func testSubBadConfig[TTx any](t *testing.T, h *Harness[TTx]) {
	s := h.NewStore(t, nil, true)
	ok := func(ctx context.Context, tx TTx, events []meowmx.RecordedEvent) error { return nil }
	bad := []meowmx.SubscriptionConfig[TTx]{
		{Handler: ok},
		{Name: "x"},
		{Name: "x", Handler: ok, Partitions: -1},
		{Name: "x", Handler: ok, Partitions: meowmx.MaxPartitions + 1},
		{Name: "x", Handler: ok, Categories: []string{"a-b"}},
		{Name: "x", Handler: ok, Types: []string{""}},
		{Name: "x", Handler: ok, BatchSize: -1},
		{Name: "x", Handler: ok, Lease: time.Millisecond},
		{Name: "x", Handler: ok, OnFailure: meowmx.FailurePolicy(9)},
	}
	for i, cfg := range bad {
		if _, err := s.Subscribe(cfg); !errors.Is(err, meowmx.ErrInvalidInput) {
			t.Errorf("config %d: err = %v, want ErrInvalidInput", i, err)
		}
	}
	// An existing subscription cannot change shape.
	start(t, s, meowmx.SubscriptionConfig[TTx]{Name: "shape", Handler: ok, Partitions: 2, Categories: []string{"a"}})
	for _, cfg := range []meowmx.SubscriptionConfig[TTx]{
		{Name: "shape", Handler: ok, Partitions: 3, Categories: []string{"a"}},
		{Name: "shape", Handler: ok, Partitions: 2, Categories: []string{"b"}},
	} {
		sub := must(s.Subscribe(cfg))(t)
		if err := sub.Start(ctx(t)); !errors.Is(err, meowmx.ErrInvalidInput) {
			t.Errorf("changed subscription %+v: err = %v", cfg, err)
		}
		if err := sub.Stop(ctx(t)); err != nil {
			t.Errorf("Stop of an unstarted subscription: %v", err)
		}
	}
}

// testSubReadModelOnce: the original's combined read-model test through a
// subscription: a balance kept by the handler in the checkpoint's
// transaction equals the sum of the events, even when batches fail and are
// retried.
func testSubReadModelOnce[TTx any](t *testing.T, h *Harness[TTx]) {
	s := h.NewStore(t, nil, true)
	m := newModel(t, h, s, "balance", true)
	var calls atomic.Int32
	flaky := func(ctx context.Context, tx TTx, events []meowmx.RecordedEvent) error {
		for _, e := range events {
			if err := m.apply(ctx, tx, e); err != nil {
				return err
			}
		}
		// Every third batch fails after writing: its writes must roll back.
		if calls.Add(1)%3 == 0 {
			return errors.New("flaky")
		}
		return nil
	}
	cfg := fast("balance", flaky)
	cfg.BatchSize = 7
	cfg.MaxAttempts = 100
	start(t, s, cfg)
	data, _ := json.Marshal(map[string]int{"amount": 1})
	c := ctx(t)
	for i := range 60 {
		must(s.Append(c, meowmx.NewStream("acct", fmt.Sprint(i%4)), meowmx.Any, meowmx.Event{Type: "Deposited", Data: data}))(t)
	}
	m.waitApplied(t, 60)
	noParked(t, s, "balance")
}

// testSubResetDuringBatch: a batch in flight when the subscription is reset
// cannot commit (its checkpoint is fenced by the reset's generation); the
// events are then handled again from the reset position, once.
func testSubResetDuringBatch[TTx any](t *testing.T, h *Harness[TTx]) {
	s := h.NewStore(t, nil, true)
	m := newModel(t, h, s, "fenced", false)
	inHandler := make(chan struct{})
	resume := make(chan struct{})
	var first atomic.Bool
	first.Store(true)
	var handled, firstBatch atomic.Int64
	handler := func(ctx context.Context, tx TTx, events []meowmx.RecordedEvent) error {
		if handled.Add(int64(len(events))) == int64(len(events)) {
			firstBatch.Store(int64(len(events)))
		}
		for _, e := range events {
			if err := m.apply(ctx, tx, e); err != nil {
				return err
			}
		}
		if first.CompareAndSwap(true, false) {
			close(inHandler)
			<-resume
		}
		return nil
	}
	appendN(t, s, "job", 3, 30)
	sub := start(t, s, fast("fenced", handler))
	testdb.Recv(t, inHandler, "the first batch")
	resetDone := make(chan error, 1)
	go func() { resetDone <- s.ResetSubscription(context.Background(), "fenced", meowmx.FromStart) }()
	if !h.ConcurrentWriters {
		close(resume) // SQLite: the reset waits for the batch's write lock
	}
	if err := testdb.Recv(t, resetDone, "the reset"); err != nil {
		t.Fatal(err)
	}
	if h.ConcurrentWriters {
		close(resume)
	}
	// On SQLite the batch committed before the reset could start: the
	// reset then has every event handled again.
	want := 30
	if !h.ConcurrentWriters {
		want = 30 + int(firstBatch.Load())
	}
	m.waitTotal(t, want)
	stop(t, sub) // the batch in flight, if any, ends
	if total, distinct := m.applied(t); total != want || distinct != 30 {
		t.Fatalf("%d events applied (%d distinct) after a reset during a batch, want %d", total, distinct, want)
	}
	// The batch in flight was handled, then refused (PostgreSQL) or
	// committed before the reset (SQLite); either way every event was
	// handled again after the reset.
	if n, first := handled.Load(), firstBatch.Load(); n != first+30 {
		t.Fatalf("handler saw %d events, a first batch of %d then 30: the reset was not honoured", n, first)
	}
}

// testSubWaitCaughtUp: WaitCaughtUp returns once every event of the log as
// it was at the call is handled, by every partition, and not before; events
// the subscription filters out do not hold it back.
func testSubWaitCaughtUp[TTx any](t *testing.T, h *Harness[TTx]) {
	s := h.NewStore(t, nil, true)
	c := ctx(t)
	m := newModel(t, h, s, "waited", false)
	release := make(chan struct{})
	entered := make(chan struct{}, 100)
	handler := func(ctx context.Context, tx TTx, events []meowmx.RecordedEvent) error {
		entered <- struct{}{}
		<-release
		for _, e := range events {
			if err := m.apply(ctx, tx, e); err != nil {
				return err
			}
		}
		return nil
	}
	appendN(t, s, "job", 7, 40)
	appendN(t, s, "other", 3, 10) // filtered out
	cfg := fast("waited", handler)
	cfg.Categories = []string{"job"}
	cfg.Partitions = 3
	cfg.BatchSize = 5
	start(t, s, cfg)
	done := make(chan error, 1)
	go func() { done <- s.WaitCaughtUp(c, "waited") }()
	testdb.Recv(t, entered, "a batch")
	select {
	case err := <-done:
		t.Fatalf("WaitCaughtUp returned (%v) while the first batch was still in its handler", err)
	default:
	}
	close(release)
	if err := testdb.Recv(t, done, "WaitCaughtUp"); err != nil {
		t.Fatal(err)
	}
	if total, _ := m.applied(t); total != 40 {
		t.Fatalf("WaitCaughtUp returned with %d of the 40 events handled", total)
	}
	appendN(t, s, "other", 3, 5)
	if err := s.WaitCaughtUp(c, "waited"); err != nil {
		t.Fatal(err)
	}
	if err := s.WaitCaughtUp(c, "nobody"); !errors.Is(err, meowmx.ErrSubscriptionNotFound) {
		t.Fatalf("WaitCaughtUp of an unknown subscription: %v", err)
	}
}
