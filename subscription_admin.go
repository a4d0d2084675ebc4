package meowmx

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/meowmx/meowmx/meowmxdriver"
)

// HorizonWarnAge is how old the oldest running transaction must be for
// SubscriptionStatus.HorizonHeld to report it.
const HorizonWarnAge = 5 * time.Second

// SubscriptionStatus describes one partition of a subscription.
type SubscriptionStatus struct {
	Name       string
	Partition  int
	Partitions int
	Categories []string
	Types      []string
	// Checkpoint is the position of the last event handled.
	Checkpoint Position
	// Lag is how many events of the partition are not handled yet: at
	// least that many when LagCapped (see SubscriptionStatusesLimit).
	Lag       int64
	LagCapped bool
	// TimeBehind is how long ago the oldest of them was recorded (zero
	// when Lag is 0).
	TimeBehind time.Duration
	// Owner is the worker holding the partition ("" when free) until
	// LeaseUntil.
	Owner      string
	LeaseUntil time.Time
	// Parked counts the partition's parked events.
	Parked    int64
	UpdatedAt time.Time
	// Horizon is the oldest running transaction, which holds back every
	// global reader (nil when none), and HorizonHeld says whether it has
	// been running for over HorizonWarnAge.
	Horizon     *Horizon
	HorizonHeld bool
}

// SubscriptionStatuses returns the status of every partition of the
// subscription name, or of every subscription when name is empty. It counts
// each partition's lag in full, which reads every unhandled event: a page
// refreshed often (a console) uses SubscriptionStatusesLimit.
func (s *Store[TTx]) SubscriptionStatuses(ctx context.Context, name string) ([]SubscriptionStatus, error) {
	return s.SubscriptionStatusesLimit(ctx, name, 0)
}

// SubscriptionStatusesLimit is SubscriptionStatuses counting each
// partition's lag up to lagLimit events (0: all of them), as
// SubscriptionLags does: a partition with at least that many has Lag
// lagLimit and LagCapped set.
func (s *Store[TTx]) SubscriptionStatusesLimit(ctx context.Context, name string, lagLimit int64) ([]SubscriptionStatus, error) {
	if lagLimit < 0 {
		return nil, invalidf("subscription statuses: negative lag limit %d", lagLimit)
	}
	if err := s.checkUsable(ctx); err != nil {
		return nil, err
	}
	if name != "" {
		if err := validName(name); err != nil {
			return nil, err
		}
	}
	exec := s.driver.Executor()
	rows, err := exec.Subscriptions(ctx, s.config.Schema, name)
	if err != nil {
		return nil, fmt.Errorf("meowmx: subscriptions: %w", err)
	}
	horizon, err := s.Horizon(ctx)
	if err != nil {
		return nil, err
	}
	now := time.Now()
	out := make([]SubscriptionStatus, len(rows))
	for i, row := range rows {
		lag, oldest, err := exec.Lag(ctx, s.config.Schema, row, lagLimit)
		if err != nil {
			return nil, fmt.Errorf("meowmx: subscription %s lag: %w", row.Name, err)
		}
		st := SubscriptionStatus{
			LagCapped: lagLimit > 0 && lag >= lagLimit,
			Name:      row.Name, Partition: row.Partition, Partitions: row.Partitions,
			Categories: row.Categories, Types: row.Types,
			Checkpoint: Position{TransactionID: row.TransactionID, Seq: row.Seq},
			Lag:        lag, Owner: row.Owner, LeaseUntil: row.LeaseUntil, Parked: row.Parked,
			UpdatedAt: row.UpdatedAt, Horizon: horizon,
			HorizonHeld: horizon != nil && horizon.Age > HorizonWarnAge,
		}
		if lag > 0 && !oldest.IsZero() {
			st.TimeBehind = max(now.Sub(oldest), 0)
		}
		if !st.LeaseUntil.IsZero() && st.LeaseUntil.Before(now) {
			st.Owner = "" // the lease has run out
		}
		out[i] = st
	}
	return out, nil
}

// LagLimitDefault is how many unhandled events SubscriptionLags counts per
// partition at most when given no limit.
const LagLimitDefault = 10_000

// SubscriptionLag is one partition's lag, as SubscriptionLags counts it.
type SubscriptionLag struct {
	Name      string
	Partition int
	// Events is how many events of the partition are not handled yet,
	// counted up to the limit: when Capped, there are at least that many.
	Events int64
	Capped bool
	// TimeBehind is how long ago the first unhandled event (in global
	// order) was recorded; zero when there is none.
	TimeBehind time.Duration
	// Parked counts the partition's parked events.
	Parked int64
}

// SubscriptionLags returns the lag of every partition of every
// subscription, cheaply enough to be read on every scrape of a metrics
// endpoint: each partition's unhandled events are counted in global order
// from its checkpoint until limit of them are found (LagLimitDefault when
// limit is 0), so that a partition far behind costs a bounded count, where
// SubscriptionStatuses counts them all. The scan reads the events after
// the checkpoint that the partition's filter leaves out as well: for a
// filter that few events pass (a rare type or tag, one partition of many),
// it reads what the partition's worker reads at each of its polls.
func (s *Store[TTx]) SubscriptionLags(ctx context.Context, limit int64) ([]SubscriptionLag, error) {
	if err := s.checkUsable(ctx); err != nil {
		return nil, err
	}
	switch {
	case limit < 0:
		return nil, invalidf("subscription lags: negative limit %d", limit)
	case limit == 0:
		limit = LagLimitDefault
	}
	exec := s.driver.Executor()
	rows, err := exec.Subscriptions(ctx, s.config.Schema, "")
	if err != nil {
		return nil, fmt.Errorf("meowmx: subscriptions: %w", err)
	}
	now := time.Now()
	out := make([]SubscriptionLag, len(rows))
	for i, row := range rows {
		n, oldest, err := exec.Lag(ctx, s.config.Schema, row, limit)
		if err != nil {
			return nil, fmt.Errorf("meowmx: subscription %s lag: %w", row.Name, err)
		}
		out[i] = SubscriptionLag{Name: row.Name, Partition: row.Partition, Events: n, Capped: n >= limit, Parked: row.Parked}
		if n > 0 && !oldest.IsZero() {
			out[i].TimeBehind = max(now.Sub(oldest), 0)
		}
	}
	return out, nil
}

// ResetSubscription moves every partition of the subscription name to from
// (FromStart to handle everything again, for example to rebuild a read
// model). Workers running it notice at their next commit or lease renewal
// (a third of the lease): a batch in flight at the moment of the reset is
// rolled back, not committed past it.
func (s *Store[TTx]) ResetSubscription(ctx context.Context, name string, from SubscriptionFrom) error {
	if err := s.checkUsable(ctx); err != nil {
		return err
	}
	if err := validName(name); err != nil {
		return err
	}
	exec := s.driver.Executor()
	after, err := s.startPosition(ctx, exec, from)
	if err != nil {
		return fmt.Errorf("meowmx: reset %s: %w", name, err)
	}
	n, err := exec.Reset(ctx, s.config.Schema, name, after.TransactionID, after.Seq)
	if err != nil {
		return fmt.Errorf("meowmx: reset %s: %w", name, err)
	}
	if n == 0 {
		return fmt.Errorf("%w: %s", ErrSubscriptionNotFound, name)
	}
	return nil
}

// WaitCaughtUp waits until the subscription name has handled every event
// committed before the call (but for those it filters out or parked), in
// every partition, whichever workers and processes run
// it. It returns ctx's error if ctx ends first: a subscription that no
// worker runs, or that its failure policy stopped, never catches up.
// Scripts and tests use it instead of summing lags.
func (s *Store[TTx]) WaitCaughtUp(ctx context.Context, name string) error {
	if err := s.checkUsable(ctx); err != nil {
		return err
	}
	if err := validName(name); err != nil {
		return err
	}
	exec := s.driver.Executor()
	// Every event committed before the call, including those a running
	// transaction still hides from global readers (see Horizon).
	txID, seq, err := exec.LastPosition(ctx, s.config.Schema)
	if err != nil {
		return fmt.Errorf("meowmx: wait for %s: %w", name, err)
	}
	wait := time.Millisecond
	for {
		rows, err := exec.Subscriptions(ctx, s.config.Schema, name)
		if err != nil {
			return fmt.Errorf("meowmx: wait for %s: %w", name, err)
		}
		if len(rows) == 0 {
			return fmt.Errorf("%w: %s", ErrSubscriptionNotFound, name)
		}
		caughtUp := true
		for _, row := range rows {
			pending, err := exec.Pending(ctx, s.config.Schema, row, txID, seq)
			if err != nil {
				return fmt.Errorf("meowmx: wait for %s: %w", name, err)
			}
			if pending {
				caughtUp = false
				break
			}
		}
		if caughtUp {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("meowmx: wait for %s: %w", name, ctx.Err())
		case <-time.After(wait):
		}
		wait = min(2*wait, 100*time.Millisecond)
	}
}

// startPosition resolves where a subscription starts (or is reset to): the
// end of the visible log for FromEnd, else the given position, which must
// not be after the last recorded event.
func (s *Store[TTx]) startPosition(ctx context.Context, exec meowmxdriver.Executor, from SubscriptionFrom) (Position, error) {
	if from.end {
		txID, seq, err := exec.EndPosition(ctx, s.config.Schema)
		if err != nil {
			return Position{}, err
		}
		return Position{TransactionID: txID, Seq: seq}, nil
	}
	if from.after == Start {
		return Start, nil
	}
	txID, seq, err := exec.LastPosition(ctx, s.config.Schema)
	if err != nil {
		return Position{}, err
	}
	if last := (Position{TransactionID: txID, Seq: seq}); from.after.Compare(last) > 0 {
		return Position{}, fmt.Errorf("%w: %s is after the last event, at %s", ErrAfterEnd, from.after, last)
	}
	return from.after, nil
}

// ParkedEvent is an event a subscription's handler kept failing on.
type ParkedEvent struct {
	Subscription string
	Partition    int
	Event        RecordedEvent
	// Error is the handler's last error.
	Error    string
	Attempts int
	ParkedAt time.Time
	// Replay is true while the event waits to be replayed.
	Replay bool
}

// MarshalJSON writes the parked event as its event's JSON object (see
// RecordedEvent.MarshalJSON) with partition, attempts, error, parked_at
// and replay added.
func (p ParkedEvent) MarshalJSON() ([]byte, error) {
	event, err := json.Marshal(p.Event)
	if err != nil {
		return nil, err
	}
	extra, err := json.Marshal(struct {
		Partition int    `json:"partition"`
		Attempts  int    `json:"attempts"`
		Error     string `json:"error"`
		ParkedAt  string `json:"parked_at"`
		Replay    bool   `json:"replay"`
	}{p.Partition, p.Attempts, p.Error, p.ParkedAt.UTC().Format(time.RFC3339Nano), p.Replay})
	if err != nil {
		return nil, err
	}
	// Both are objects: the event's without its closing brace, a comma,
	// the extra fields without their opening one.
	return append(append(event[:len(event)-1], ','), extra[1:]...), nil
}

// ParkedEvents lists the parked events of the subscription name, in global
// order.
func (s *Store[TTx]) ParkedEvents(ctx context.Context, name string) ([]ParkedEvent, error) {
	if err := s.checkUsable(ctx); err != nil {
		return nil, err
	}
	if err := validName(name); err != nil {
		return nil, err
	}
	rows, err := s.driver.Executor().Parked(ctx, &meowmxdriver.ParkedParams{Schema: s.config.Schema, Name: name})
	if err != nil {
		return nil, fmt.Errorf("meowmx: parked events of %s: %w", name, err)
	}
	out := make([]ParkedEvent, len(rows))
	for i, row := range rows {
		out[i] = ParkedEvent{
			Subscription: row.Subscription, Partition: row.Partition, Event: row.Event,
			Error: row.Error, Attempts: row.Attempts, ParkedAt: row.ParkedAt, Replay: row.Replay,
		}
	}
	return out, nil
}

// ReplayParked asks the workers of the subscription name to handle its
// parked events again and returns how many there are. Each is handled once
// more, by the worker holding its partition, in a transaction that also
// removes it from the parked events; one that fails again stays parked with
// its new error. Replayed events come after the events their stream has had
// since: a handler must not assume version order for them.
func (s *Store[TTx]) ReplayParked(ctx context.Context, name string) (int, error) {
	if err := s.checkUsable(ctx); err != nil {
		return 0, err
	}
	if err := validName(name); err != nil {
		return 0, err
	}
	n, err := s.driver.Executor().RequestReplay(ctx, s.config.Schema, name)
	if err != nil {
		return 0, fmt.Errorf("meowmx: replay parked events of %s: %w", name, err)
	}
	return n, nil
}

// DeleteSubscription deletes subscription name: its checkpoints, its
// workers' heartbeats and its parked events. Stop its workers first: a
// worker still running makes the subscription again, from its From. A name
// that no subscription has is ErrSubscriptionNotFound.
func (s *Store[TTx]) DeleteSubscription(ctx context.Context, name string) error {
	if err := s.checkUsable(ctx); err != nil {
		return err
	}
	if err := validName(name); err != nil {
		return err
	}
	n, err := s.driver.Executor().DeleteSubscription(ctx, s.config.Schema, name)
	if err != nil {
		return fmt.Errorf("meowmx: delete subscription %s: %w", name, err)
	}
	if n == 0 {
		return fmt.Errorf("%w: %s", ErrSubscriptionNotFound, name)
	}
	return nil
}
