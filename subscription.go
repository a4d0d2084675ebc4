package meowmx

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"sync"
	"time"

	"github.com/meowmx/meowmx/internal/retrypolicy"
	"github.com/meowmx/meowmx/internal/testsignal"
	"github.com/meowmx/meowmx/meowmxdriver"
)

const (
	// BatchSizeDefault is the default SubscriptionConfig.BatchSize.
	BatchSizeDefault = 100
	// LeaseDefault is the default SubscriptionConfig.Lease: a crashed
	// worker's partitions are taken over at most this long after its last
	// renewal.
	LeaseDefault = 30 * time.Second
	// PollIntervalDefault is the default SubscriptionConfig.PollInterval.
	PollIntervalDefault = time.Second
	// MaxAttemptsDefault is the default SubscriptionConfig.MaxAttempts.
	MaxAttemptsDefault = 5
	// RetryBackoffDefault is the default SubscriptionConfig.RetryBackoff.
	RetryBackoffDefault = 100 * time.Millisecond
	// RetryBackoffMaxDefault is the default SubscriptionConfig.RetryBackoffMax.
	RetryBackoffMaxDefault = 10 * time.Second
	// MaxPartitions is the largest SubscriptionConfig.Partitions.
	MaxPartitions = 1024
)

// Handler handles a batch of a subscription's events inside tx, the
// transaction that then records the subscription's progress. Whatever the
// handler writes through tx commits exactly once per event, together with
// the checkpoint; if the handler returns an error (or panics) the
// transaction rolls back and the batch is retried.
//
// Anything a handler does outside tx (calling another service, publishing a
// message) happens at least once: a batch whose transaction fails to commit
// is handled again, by this worker or, after a crash, by another. Make such
// effects idempotent, for example keyed by the event ID.
//
// A handler whose error wraps ErrUnavailable (a service it calls is away)
// has its batch retried with backoff for as long as it takes, like a
// database outage: the failure is not an attempt, and never parks the
// events. Return it soon rather than wait inside the handler: on SQLite the
// batch's transaction holds the store's only writer.
type Handler[TTx any] func(ctx context.Context, tx TTx, events []RecordedEvent) error

// HandleEach adapts a function of one event into a Handler: it is called for
// each event of the batch in order, in the batch's transaction.
func HandleEach[TTx any](fn func(ctx context.Context, tx TTx, event RecordedEvent) error) Handler[TTx] {
	return func(ctx context.Context, tx TTx, events []RecordedEvent) error {
		for i := range events {
			if err := fn(ctx, tx, events[i]); err != nil {
				return err
			}
		}
		return nil
	}
}

// FailurePolicy says what a subscription does with an event its handler
// keeps failing on.
type FailurePolicy int

const (
	// Park sets the event aside, in the parked events table with the error,
	// and moves on. Parked events can be listed and replayed.
	Park FailurePolicy = iota
	// StopSubscription stops the subscription; Err reports why. Its
	// checkpoint stays before the event.
	StopSubscription
)

// SubscriptionFrom says where a new subscription starts. The zero value is
// FromStart.
type SubscriptionFrom struct {
	end   bool
	after Position
}

var (
	// FromStart: the subscription handles every event, from the first.
	FromStart = SubscriptionFrom{}
	// FromEnd: the subscription handles the events appended after it is
	// created.
	FromEnd = SubscriptionFrom{end: true}
)

// FromPosition: the subscription handles the events after p.
func FromPosition(p Position) SubscriptionFrom { return SubscriptionFrom{after: p} }

// String returns "start", "end" or the position.
func (f SubscriptionFrom) String() string {
	switch {
	case f.end:
		return "end"
	case f.after == Start:
		return "start"
	}
	return f.after.String()
}

// SubscriptionConfig configures a subscription.
type SubscriptionConfig[TTx any] struct {
	// Name identifies the subscription and its checkpoints. Required.
	Name string
	// Categories are the categories it reads; empty for all.
	Categories []string
	// Types, when not empty, keeps only events of these types.
	Types []string
	// Tags, when not empty, keeps only events that carry all of these tags
	// (see Event.Tags). Like Categories and Types, fixed when the
	// subscription is first created.
	Tags []string
	// Partitions splits the subscription into this many partitions by
	// StreamHash, each with its own checkpoint, processed in parallel by
	// the workers that claim them; each stream stays in one partition, so
	// its events still arrive in version order. Fixed when the
	// subscription is first created. Defaults to 1.
	Partitions int
	// From is where a new subscription starts: FromStart (the default),
	// FromEnd or FromPosition. Ignored once the subscription exists; see
	// Store.ResetSubscription.
	From SubscriptionFrom
	// Handler handles the events. Required.
	Handler Handler[TTx]
	// BatchSize is the most events handed to one call of Handler.
	// Defaults to BatchSizeDefault.
	BatchSize int
	// Lease is how long a worker's claim on a partition lasts without
	// renewal; workers renew at a third of it. A batch must also finish
	// within it: a worker whose handler runs longer gives the partition up
	// (to another worker, or to itself later) and the batch cannot commit.
	// Raise it for slow handlers. Defaults to LeaseDefault.
	Lease time.Duration
	// PollInterval is how often a worker looks for new events when nothing
	// woke it. Defaults to PollIntervalDefault.
	PollInterval time.Duration
	// MaxAttempts is how many times an event is tried before the
	// FailurePolicy applies. Defaults to MaxAttemptsDefault.
	MaxAttempts int
	// RetryBackoff is the first wait before retrying a failed batch,
	// doubling at each attempt, with jitter, up to RetryBackoffMax.
	// Default RetryBackoffDefault and RetryBackoffMaxDefault.
	RetryBackoff    time.Duration
	RetryBackoffMax time.Duration
	// OnFailure is what happens after MaxAttempts failures. Defaults to Park.
	OnFailure FailurePolicy
	// SynchronousCommit makes each batch's commit wait until it is durable.
	// By default batches commit with synchronous_commit = off on
	// PostgreSQL and synchronous=NORMAL on SQLite (safe from a crash of the
	// process, not of the machine): a database crash can lose the last batches' commits, and since
	// each batch's writes and its checkpoint are one transaction, they are
	// lost together and the events are handled again; exactly once still
	// holds for what the handler writes through the transaction. Set it if
	// others must never see a read model go back in time after a crash.
	SynchronousCommit bool
	// Logger receives the subscription's logs. Defaults to the store's.
	Logger *slog.Logger
}

// withDefaults returns a copy of the config with its gaps filled from the
// defaults and the store's config, and its categories and types sorted so
// that they compare with the stored subscription's.
func (c *SubscriptionConfig[TTx]) withDefaults(store *Config) *SubscriptionConfig[TTx] {
	out := *c
	out.Categories = slices.Clone(c.Categories)
	out.Types = slices.Clone(c.Types)
	out.Tags = slices.Clone(c.Tags)
	slices.Sort(out.Categories)
	slices.Sort(out.Types)
	slices.Sort(out.Tags)
	if out.Partitions == 0 {
		out.Partitions = 1
	}
	if out.BatchSize == 0 {
		out.BatchSize = BatchSizeDefault
	}
	if out.Lease == 0 {
		out.Lease = LeaseDefault
	}
	if out.PollInterval == 0 {
		out.PollInterval = PollIntervalDefault
	}
	if out.MaxAttempts == 0 {
		out.MaxAttempts = MaxAttemptsDefault
	}
	if out.RetryBackoff == 0 {
		out.RetryBackoff = RetryBackoffDefault
	}
	if out.RetryBackoffMax == 0 {
		out.RetryBackoffMax = RetryBackoffMaxDefault
	}
	if out.Logger == nil {
		out.Logger = store.Logger
	}
	return &out
}

// validate returns an error naming the first field that is missing or out
// of range.
func (c *SubscriptionConfig[TTx]) validate() error {
	if c.Name == "" {
		return invalidf("SubscriptionConfig.Name is required")
	}
	if err := validName(c.Name); err != nil {
		return err
	}
	if c.Handler == nil {
		return invalidf("subscription %s: SubscriptionConfig.Handler is required", c.Name)
	}
	for _, category := range c.Categories {
		if err := validateCategory(category); err != nil {
			return fmt.Errorf("%w (subscription %s, SubscriptionConfig.Categories)", err, c.Name)
		}
	}
	if err := validTypes("SubscriptionConfig.Types of subscription "+c.Name, c.Types); err != nil {
		return err
	}
	if err := validTags(c.Tags); err != nil {
		return fmt.Errorf("%w (subscription %s, SubscriptionConfig.Tags)", err, c.Name)
	}
	switch {
	case c.Partitions < 1 || c.Partitions > MaxPartitions:
		return invalidf("subscription %s: SubscriptionConfig.Partitions %d: want 1 to %d", c.Name, c.Partitions, MaxPartitions)
	case c.BatchSize < 1:
		return invalidf("subscription %s: SubscriptionConfig.BatchSize must be positive", c.Name)
	case c.Lease < 100*time.Millisecond:
		return invalidf("subscription %s: SubscriptionConfig.Lease %s: want at least 100ms", c.Name, c.Lease)
	case c.PollInterval < time.Millisecond:
		return invalidf("subscription %s: SubscriptionConfig.PollInterval must be at least 1ms", c.Name)
	case c.MaxAttempts < 1:
		return invalidf("subscription %s: SubscriptionConfig.MaxAttempts must be positive", c.Name)
	case c.RetryBackoff < 0 || c.RetryBackoffMax < c.RetryBackoff:
		return invalidf("subscription %s: want 0 <= SubscriptionConfig.RetryBackoff <= RetryBackoffMax", c.Name)
	case c.OnFailure != Park && c.OnFailure != StopSubscription:
		return invalidf("subscription %s: unknown SubscriptionConfig.OnFailure %d", c.Name, c.OnFailure)
	}
	return nil
}

// Subscription is one process's worker of a named subscription. Any number
// of processes (or Subscription values) can run the same subscription: its
// partitions are shared among them through leases, and a partition is only
// ever processed by the worker that holds it.
//
// A Subscription value is the public face of the worker: it starts and
// stops it and reports how it ended. The work itself is done in the
// background by a coordinator (coordinator.go), which shares the partitions
// out, and by one partitionRunner per partition held (partition.go).
type Subscription[TTx any] struct {
	store  *Store[TTx]
	config *SubscriptionConfig[TTx]
	worker string
	logger *slog.Logger
	done   chan struct{} // closed once the coordinator has returned

	// mu guards the subscription's lifecycle, which Start, Stop, Err and a
	// failing runner may touch from different goroutines. It guards
	// nothing of the coordinator's or the runners' own state.
	mu       sync.Mutex
	started  bool
	stopping context.CancelFunc // ends fetching and waiting
	abort    context.CancelFunc // ends in-flight handlers
	err      error
}

// Subscribe returns a worker of the subscription config describes. Start it
// with Start.
func (s *Store[TTx]) Subscribe(config SubscriptionConfig[TTx]) (*Subscription[TTx], error) {
	if s.closed.Load() {
		return nil, ErrClosed
	}
	cfg := config.withDefaults(s.config)
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	var b [4]byte
	_, _ = rand.Read(b[:])
	host, _ := os.Hostname()
	worker := fmt.Sprintf("%s:%d:%s", host, os.Getpid(), hex.EncodeToString(b[:]))
	return &Subscription[TTx]{
		store:  s,
		config: cfg,
		worker: worker,
		logger: cfg.Logger.With(slog.String("subscription", cfg.Name), slog.String("worker", worker)),
		done:   make(chan struct{}),
	}, nil
}

// Worker returns the name this worker holds leases under.
func (sub *Subscription[TTx]) Worker() string { return sub.worker }

// Start creates the subscription if it does not exist and starts working in
// the background until ctx ends or Stop is called. It fails if the stored
// subscription has another number of partitions or another filter.
func (sub *Subscription[TTx]) Start(ctx context.Context) error {
	if err := sub.store.checkUsable(ctx); err != nil {
		return err
	}
	sub.mu.Lock()
	defer sub.mu.Unlock()
	if sub.started {
		return fmt.Errorf("meowmx: subscription %s: already started", sub.config.Name)
	}
	if err := sub.init(ctx); err != nil {
		return err
	}
	sub.started = true
	runCtx, stopping := context.WithCancel(context.WithoutCancel(ctx))
	workCtx, abort := context.WithCancel(context.WithoutCancel(ctx))
	sub.stopping, sub.abort = stopping, abort
	stopWithParent := context.AfterFunc(ctx, stopping)
	c := newCoordinator(sub, testsignal.From(ctx))
	unregister := sub.store.hub.register(sub.config.Categories, c.wakeAll)
	go func() {
		defer close(sub.done)
		defer stopWithParent()
		defer unregister()
		c.run(runCtx, workCtx)
	}()
	return nil
}

// init creates the subscription in the database if it does not exist, and
// checks that the stored one has the configured partitions and filter.
func (sub *Subscription[TTx]) init(ctx context.Context) error {
	cfg := sub.config
	exec := sub.store.driver.Executor()
	after, err := sub.store.startPosition(ctx, exec, cfg.From)
	if err != nil {
		return fmt.Errorf("meowmx: subscription %s: %w", cfg.Name, err)
	}
	rows, err := exec.InitSubscription(ctx, &meowmxdriver.InitSubscriptionParams{
		Schema: sub.store.config.Schema, Name: cfg.Name, Partitions: cfg.Partitions,
		Categories: cfg.Categories, Types: cfg.Types, Tags: cfg.Tags, AfterTxID: after.TransactionID, AfterSeq: after.Seq,
	})
	if err != nil {
		return fmt.Errorf("meowmx: subscription %s: %w", cfg.Name, err)
	}
	if len(rows) == 0 {
		return fmt.Errorf("meowmx: subscription %s: not created", cfg.Name)
	}
	stored := rows[0]
	slices.Sort(stored.Categories)
	slices.Sort(stored.Types)
	slices.Sort(stored.Tags)
	switch {
	case stored.Partitions != cfg.Partitions:
		return invalidf("subscription %s exists with %d partitions, not %d", cfg.Name, stored.Partitions, cfg.Partitions)
	case !slices.Equal(stored.Categories, cfg.Categories) && !(len(stored.Categories) == 0 && len(cfg.Categories) == 0):
		return invalidf("subscription %s exists with categories %q, not %q", cfg.Name, stored.Categories, cfg.Categories)
	case !slices.Equal(stored.Types, cfg.Types) && !(len(stored.Types) == 0 && len(cfg.Types) == 0):
		return invalidf("subscription %s exists with types %q, not %q", cfg.Name, stored.Types, cfg.Types)
	case !slices.Equal(stored.Tags, cfg.Tags) && !(len(stored.Tags) == 0 && len(cfg.Tags) == 0):
		return invalidf("subscription %s exists with tags %q, not %q", cfg.Name, stored.Tags, cfg.Tags)
	}
	return nil
}

// Stop stops the subscription gracefully: no new batch starts, the batch in
// flight finishes and commits, the worker's partitions are released for
// other workers, and Stop returns. If ctx ends first, the batch in flight is
// cancelled and rolled back (nothing is half-committed) and Stop returns
// ctx's error once the worker has stopped. Stop may be called more than
// once, and before Start.
func (sub *Subscription[TTx]) Stop(ctx context.Context) error {
	sub.mu.Lock()
	started := sub.started
	stopping, abort := sub.stopping, sub.abort
	sub.mu.Unlock()
	if !started {
		return nil
	}
	stopping()
	select {
	case <-sub.done:
		return nil
	case <-ctx.Done():
		abort()
		<-sub.done
		return ctx.Err()
	}
}

// Stopped is closed once the subscription has stopped, through Stop, its
// context, or its failure policy.
func (sub *Subscription[TTx]) Stopped() <-chan struct{} { return sub.done }

// Err returns why the subscription stopped by itself (ErrSubscriptionStopped
// wrapping the handler's error), or nil.
func (sub *Subscription[TTx]) Err() error {
	sub.mu.Lock()
	defer sub.mu.Unlock()
	return sub.err
}

// fail stops the subscription by itself, under the StopSubscription policy:
// the first error is the one Err reports.
func (sub *Subscription[TTx]) fail(err error) {
	sub.mu.Lock()
	if sub.err == nil {
		sub.err = err
	}
	stopping := sub.stopping
	sub.mu.Unlock()
	stopping()
}

// retryBackoff spaces the retries of a failing batch, read or outage.
func (c *SubscriptionConfig[TTx]) retryBackoff() retrypolicy.Backoff {
	return retrypolicy.Backoff{Base: c.RetryBackoff, Ceiling: c.RetryBackoffMax}
}
