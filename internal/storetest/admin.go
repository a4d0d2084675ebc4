package storetest

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"

	"github.com/meowmx/meowmx"
	"github.com/meowmx/meowmx/internal/testdb"
)

// testSubDelete: DeleteSubscription removes a subscription's checkpoints and
// parked events; the name is then unknown, and a subscription started again
// under it begins from its From.
func testSubDelete[TTx any](t *testing.T, h *Harness[TTx]) {
	s := h.NewStore(t, nil, true)
	c := ctx(t)
	appendN(t, s, "gone", 2, 4)
	var handled atomic.Int64
	cfg := fast("doomed", func(ctx context.Context, tx TTx, events []meowmx.RecordedEvent) error {
		for _, e := range events {
			if e.Version == 0 && e.Stream.ID == "0" && handled.Load() < 4 {
				handled.Add(1)
				return errors.New("refused") // parked: the first delivery only
			}
			handled.Add(1)
		}
		return nil
	})
	cfg.MaxAttempts = 1
	cfg.OnFailure = meowmx.Park
	sub := start(t, s, cfg)
	testdb.Eventually(t, func() (bool, string) {
		parked := must(s.ParkedEvents(c, "doomed"))(t)
		st := must(s.SubscriptionStatuses(c, "doomed"))(t)
		return len(parked) == 1 && len(st) == 1 && st[0].Lag == 0, "the subscription to park one event and catch up"
	})
	stop(t, sub)
	if err := s.DeleteSubscription(c, "doomed"); err != nil {
		t.Fatal(err)
	}
	if st := must(s.SubscriptionStatuses(c, "doomed"))(t); len(st) != 0 {
		t.Fatalf("statuses after the delete: %+v", st)
	}
	if parked := must(s.ParkedEvents(c, "doomed"))(t); len(parked) != 0 {
		t.Fatalf("parked events after the delete: %+v", parked)
	}
	if err := s.DeleteSubscription(c, "doomed"); !errors.Is(err, meowmx.ErrSubscriptionNotFound) {
		t.Fatalf("deleting it again: %v, want ErrSubscriptionNotFound", err)
	}
	// Started again, it handles everything from the start.
	m := newModel(t, h, s, "doomed", false)
	start(t, s, fast("doomed", m.handler()))
	m.waitApplied(t, 4)
}
