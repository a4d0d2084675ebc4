package storetest

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/meowmx/meowmx"
)

func aggregateTests[TTx any]() map[string]func(t *testing.T, h *Harness[TTx]) {
	return map[string]func(t *testing.T, h *Harness[TTx]){
		"ConcurrentWriters": testAggConcurrent[TTx],
		"RetriesExhausted":  testAggRetriesExhausted[TTx],
		"DecideError":       testAggDecideError[TTx],
		"Snapshots":         testAggSnapshots[TTx],
		"Upcasting":         testAggUpcasting[TTx],
		"UnknownTypes":      testAggUnknown[TTx],
		"ExecuteTx":         testAggExecuteTx[TTx],
		"SnapshotFailure":   testAggSnapshotFailure[TTx],
	}
}

type Opened struct {
	Owner string `json:"owner"`
}

type Deposited struct {
	Amount int `json:"amount"`
}

type account struct {
	Open    bool `json:"open"`
	Balance int  `json:"balance"`
	Ops     int  `json:"ops"`
}

var errClosedAccount = errors.New("account is not open")

func registry(t *testing.T) *meowmx.Registry {
	t.Helper()
	r := meowmx.NewRegistry()
	if err := meowmx.Register[Opened](r, "Opened"); err != nil {
		t.Fatal(err)
	}
	if err := meowmx.Register[Deposited](r, "Deposited"); err != nil {
		t.Fatal(err)
	}
	return r
}

func accounts[TTx any](t *testing.T, s *meowmx.Store[TTx], cfg meowmx.AggregateConfig[account]) *meowmx.Aggregate[TTx, account] {
	t.Helper()
	cfg.Category = "account"
	if cfg.Registry == nil {
		cfg.Registry = registry(t)
	}
	evolve := cfg.Evolve
	cfg.Evolve = func(a account, ev any) account {
		if evolve != nil {
			a = evolve(a, ev)
		}
		switch e := ev.(type) {
		case Opened:
			a.Open = true
		case Deposited:
			a.Balance += e.Amount
		}
		a.Ops++
		return a
	}
	agg, err := meowmx.NewAggregate(s, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return agg
}

func deposit(amount int) meowmx.Decide[account] {
	return func(a account, version int64) ([]any, error) {
		if !a.Open {
			return nil, errClosedAccount
		}
		return []any{Deposited{Amount: amount}}, nil
	}
}

func open(a account, version int64) ([]any, error) {
	if a.Open {
		return nil, nil
	}
	return []any{Opened{Owner: "ada"}}, nil
}

func testAggConcurrent[TTx any](t *testing.T, h *Harness[TTx]) {
	s := h.NewStore(t, nil, true)
	agg := accounts(t, s, meowmx.AggregateConfig[account]{MaxRetries: 200, RetryBackoff: time.Millisecond})
	c := ctx(t)
	must3(agg.Execute(c, "a1", open))(t)
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 10 {
				if _, _, err := agg.Execute(c, "a1", deposit(1)); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	state, version, err := agg.Load(c, "a1")
	if err != nil || state.Balance != 80 || version != 80 || state.Ops != 81 {
		t.Fatalf("after 8 writers x 10 deposits: %+v at version %d (%v), want balance 80 at version 80", state, version, err)
	}
}

func must3[S any](s S, events []meowmx.RecordedEvent, err error) func(t *testing.T) (S, []meowmx.RecordedEvent) {
	return func(t *testing.T) (S, []meowmx.RecordedEvent) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return s, events
	}
}

func testAggRetriesExhausted[TTx any](t *testing.T, h *Harness[TTx]) {
	s := h.NewStore(t, nil, true)
	agg := accounts(t, s, meowmx.AggregateConfig[account]{MaxRetries: 2, RetryBackoff: time.Millisecond})
	c := ctx(t)
	must3(agg.Execute(c, "a1", open))(t)
	calls := 0
	_, _, err := agg.Execute(c, "a1", func(a account, version int64) ([]any, error) {
		calls++
		// Another writer gets in first, every time.
		data, _ := json.Marshal(Deposited{Amount: 100})
		if _, err := s.Append(c, meowmx.NewStream("account", "a1"), meowmx.Any, meowmx.Event{Type: "Deposited", Data: data}); err != nil {
			return nil, err
		}
		return []any{Deposited{Amount: 1}}, nil
	})
	var exhausted *meowmx.RetriesExhaustedError
	if !errors.As(err, &exhausted) || !errors.Is(err, meowmx.ErrRetriesExhausted) || !errors.Is(err, meowmx.ErrVersionConflict) || exhausted.Attempts != 3 || calls != 3 {
		t.Fatalf("err = %v (calls %d), want RetriesExhaustedError after 3 attempts", err, calls)
	}
	state, _, _ := agg.Load(c, "a1")
	if state.Balance != 300 {
		t.Fatalf("balance %d: the refused deposits were written", state.Balance)
	}
}

func testAggDecideError[TTx any](t *testing.T, h *Harness[TTx]) {
	s := h.NewStore(t, nil, true)
	agg := accounts(t, s, meowmx.AggregateConfig[account]{})
	c := ctx(t)
	_, events, err := agg.Execute(c, "nobody", deposit(5))
	if err != errClosedAccount || events != nil {
		t.Fatalf("decide's error came back as %v", err)
	}
	if v := must(s.StreamVersion(c, meowmx.NewStream("account", "nobody")))(t); v != -1 {
		t.Fatalf("a refused command wrote: version %d", v)
	}
	// No events: nothing appended, no error.
	must3(agg.Execute(c, "a1", open))(t)
	_, events, err = agg.Execute(c, "a1", open)
	if err != nil || len(events) != 0 {
		t.Fatalf("a no-op command: %v, %d events", err, len(events))
	}
	// An unregistered event type is refused before anything is written.
	_, _, err = agg.Execute(c, "a1", func(account, int64) ([]any, error) { return []any{struct{ X int }{1}}, nil })
	if !errors.Is(err, meowmx.ErrUnknownEventType) {
		t.Fatalf("unregistered type: %v", err)
	}
}

func testAggSnapshots[TTx any](t *testing.T, h *Harness[TTx]) {
	s := h.NewStore(t, nil, true)
	var applied atomic.Int64
	count := func(a account, ev any) account { applied.Add(1); return a }
	cfg := meowmx.AggregateConfig[account]{SnapshotEvery: 5, SnapshotVersion: 1, Evolve: count}
	agg := accounts(t, s, cfg)
	c := ctx(t)
	must3(agg.Execute(c, "a1", open))(t)
	for range 11 {
		must3(agg.Execute(c, "a1", deposit(2)))(t) // versions 1..11
	}
	// Snapshots at versions 4 and 9: loading replays 10 and 11 only.
	applied.Store(0)
	state, version, err := agg.Load(c, "a1")
	if err != nil || state.Balance != 22 || version != 11 || state.Ops != 12 {
		t.Fatalf("load with snapshots: %+v at %d (%v)", state, version, err)
	}
	if n := applied.Load(); n != 2 {
		t.Fatalf("load with a snapshot at version 9 applied %d events, want 2", n)
	}
	// A new snapshot version ignores the old snapshots.
	cfg.SnapshotVersion = 2
	agg2 := accounts(t, s, cfg)
	applied.Store(0)
	state, version, err = agg2.Load(c, "a1")
	if err != nil || state.Balance != 22 || version != 11 {
		t.Fatalf("load after a snapshot version change: %+v at %d (%v)", state, version, err)
	}
	if n := applied.Load(); n != 12 {
		t.Fatalf("load ignoring old snapshots applied %d events, want 12", n)
	}
	// Snapshots are written once per version, and can be deleted.
	if n := must(agg.DeleteSnapshots(c, "a1"))(t); n != 2 {
		t.Fatalf("deleted %d snapshots, want 2 (versions 4 and 9)", n)
	}
	applied.Store(0)
	if state, _, err := agg.Load(c, "a1"); err != nil || state.Balance != 22 || applied.Load() != 12 {
		t.Fatalf("load without snapshots: %+v, applied %d, %v", state, applied.Load(), err)
	}
}

func testAggUpcasting[TTx any](t *testing.T, h *Harness[TTx]) {
	s := h.NewStore(t, nil, true)
	r := registry(t)
	// Old events recorded amounts in cents, as "DepositMade".
	err := r.Upcast("DepositMade", func(data json.RawMessage) (string, json.RawMessage, error) {
		var old struct {
			Cents int `json:"cents"`
		}
		if err := json.Unmarshal(data, &old); err != nil {
			return "", nil, err
		}
		return "Deposited", json.RawMessage(fmt.Sprintf(`{"amount":%d}`, old.Cents/100)), nil
	})
	if err != nil {
		t.Fatal(err)
	}
	c := ctx(t)
	stream := meowmx.NewStream("account", "legacy")
	must(s.Append(c, stream, meowmx.NoStream,
		meowmx.Event{Type: "Opened", Data: json.RawMessage(`{"owner":"old"}`)},
		meowmx.Event{Type: "DepositMade", Data: json.RawMessage(`{"cents":500}`)},
	))(t)
	agg := accounts(t, s, meowmx.AggregateConfig[account]{Registry: r})
	state, _ := must3(agg.Execute(c, "legacy", deposit(1)))(t)
	if state.Balance != 6 {
		t.Fatalf("balance %d, want 5 (upcast) + 1", state.Balance)
	}
	events := must(s.ReadStream(c, stream, nil))(t)
	if events[1].Type != "DepositMade" {
		t.Fatalf("the old event was rewritten: %s", events[1].Type)
	}
	value, err := r.Decode(events[1])
	if err != nil || value != (Deposited{Amount: 5}) {
		t.Fatalf("Decode = %#v, %v", value, err)
	}
}

func testAggUnknown[TTx any](t *testing.T, h *Harness[TTx]) {
	s := h.NewStore(t, nil, true)
	c := ctx(t)
	must(s.Append(c, meowmx.NewStream("account", "x"), meowmx.NoStream,
		meowmx.Event{Type: "Opened", Data: json.RawMessage(`{}`)},
		meowmx.Event{Type: "Audited", Data: json.RawMessage(`{}`)},
		meowmx.Event{Type: "Deposited", Data: json.RawMessage(`{"amount":3}`)},
	))(t)
	strict := accounts(t, s, meowmx.AggregateConfig[account]{})
	if _, _, err := strict.Load(c, "x"); !errors.Is(err, meowmx.ErrUnknownEventType) {
		t.Fatalf("unknown event type: err = %v", err)
	}
	lenient := accounts(t, s, meowmx.AggregateConfig[account]{SkipUnknown: true})
	state, version, err := lenient.Load(c, "x")
	if err != nil || state.Balance != 3 || version != 2 || state.Ops != 2 {
		t.Fatalf("skipping unknown types: %+v at %d (%v)", state, version, err)
	}
}

func testAggExecuteTx[TTx any](t *testing.T, h *Harness[TTx]) {
	s := h.NewStore(t, nil, true)
	agg := accounts(t, s, meowmx.AggregateConfig[account]{})
	c := ctx(t)
	tx := begin(t, h, s)
	if _, _, err := agg.ExecuteTx(c, tx, "t1", open); err != nil {
		t.Fatal(err)
	}
	state, events, err := agg.ExecuteTx(c, tx, "t1", deposit(7))
	if err != nil || state.Balance != 7 || len(events) != 1 || events[0].Version != 1 {
		t.Fatalf("ExecuteTx: %+v %v %v", state, events, err)
	}
	if err := h.Commit(c, tx); err != nil {
		t.Fatal(err)
	}
	if state, version, err := agg.Load(c, "t1"); err != nil || state.Balance != 7 || version != 1 {
		t.Fatalf("after commit: %+v at %d (%v)", state, version, err)
	}
}

// stateless is a codec that cannot encode account states.
type stateless struct{ meowmx.JSONCodec }

func (c stateless) Marshal(v any) ([]byte, error) {
	if _, ok := v.(account); ok {
		return nil, errors.New("no snapshots today")
	}
	return c.JSONCodec.Marshal(v)
}

// lines collects log records.
type logLines struct {
	mu    sync.Mutex
	lines []string
}

func (l *logLines) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.lines = append(l.lines, string(p))
	return len(p), nil
}

func testAggSnapshotFailure[TTx any](t *testing.T, h *Harness[TTx]) {
	s := h.NewStore(t, nil, true)
	logs := &logLines{}
	r := registry(t).WithCodec(stateless{})
	agg := accounts(t, s, meowmx.AggregateConfig[account]{
		Registry: r, SnapshotEvery: 2, Logger: slog.New(slog.NewTextHandler(logs, nil)),
	})
	c := ctx(t)
	must3(agg.Execute(c, "a1", open))(t)
	for range 3 {
		if _, _, err := agg.Execute(c, "a1", deposit(1)); err != nil {
			t.Fatalf("a failing snapshot broke an append: %v", err)
		}
	}
	logs.mu.Lock()
	logged := strings.Join(logs.lines, "")
	logs.mu.Unlock()
	if !strings.Contains(logged, "snapshot not saved") || !strings.Contains(logged, "no snapshots today") {
		t.Fatalf("the snapshot failure was not logged: %q", logged)
	}
	if n := must(agg.DeleteSnapshots(c, "a1"))(t); n != 0 {
		t.Fatalf("%d snapshots stored", n)
	}
	if state, version, err := agg.Load(c, "a1"); err != nil || state.Balance != 3 || version != 3 {
		t.Fatalf("load: %+v at %d (%v)", state, version, err)
	}
}
