package meowmx

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
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

func (c *SubscriptionConfig[TTx]) withDefaults(store *Config) *SubscriptionConfig[TTx] {
	out := *c
	out.Categories = slices.Clone(c.Categories)
	out.Types = slices.Clone(c.Types)
	slices.Sort(out.Categories)
	slices.Sort(out.Types)
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

// ErrSubscriptionStopped: the subscription stopped because an event kept
// failing under the StopSubscription policy; the error wraps the handler's.
var ErrSubscriptionStopped = errors.New("meowmx: subscription stopped")

// errLeaseLost: the worker no longer holds the partition (another took it,
// or the subscription was reset); the batch was rolled back.
var errLeaseLost = errors.New("meowmx: partition lease lost")

// Subscription is one process's worker of a named subscription. Any number
// of processes (or Subscription values) can run the same subscription: its
// partitions are shared among them through leases, and a partition is only
// ever processed by the worker that holds it.
type Subscription[TTx any] struct {
	store  *Store[TTx]
	config *SubscriptionConfig[TTx]
	worker string
	logger *slog.Logger

	mu        sync.Mutex
	started   bool
	stopping  context.CancelFunc // ends fetching and waiting
	abort     context.CancelFunc // ends in-flight handlers
	done      chan struct{}
	err       error
	rebalance chan struct{}
	runners   map[int]*partitionRunner[TTx]
	suspended bool // a batch overran its lease: out of the subscription until its runners return
	hooks     *testsignal.Hooks
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
		store:     s,
		config:    cfg,
		worker:    worker,
		logger:    cfg.Logger.With(slog.String("subscription", cfg.Name), slog.String("worker", worker)),
		done:      make(chan struct{}),
		rebalance: make(chan struct{}, 1),
		runners:   map[int]*partitionRunner[TTx]{},
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
	sub.hooks = testsignal.From(ctx)
	runCtx, stopping := context.WithCancel(context.WithoutCancel(ctx))
	workCtx, abort := context.WithCancel(context.WithoutCancel(ctx))
	sub.stopping, sub.abort = stopping, abort
	stopWithParent := context.AfterFunc(ctx, stopping)
	unregister := sub.store.hub.register(sub.config.Categories, sub.wakeAll)
	go func() {
		defer close(sub.done)
		defer stopWithParent()
		defer unregister()
		sub.run(runCtx, workCtx)
	}()
	return nil
}

func (sub *Subscription[TTx]) init(ctx context.Context) error {
	cfg := sub.config
	exec := sub.store.driver.Executor()
	after, err := sub.store.startPosition(ctx, exec, cfg.From)
	if err != nil {
		return fmt.Errorf("meowmx: subscription %s: %w", cfg.Name, err)
	}
	rows, err := exec.InitSubscription(ctx, &meowmxdriver.InitSubscriptionParams{
		Schema: sub.store.config.Schema, Name: cfg.Name, Partitions: cfg.Partitions,
		Categories: cfg.Categories, Types: cfg.Types, AfterTxID: after.TransactionID, AfterSeq: after.Seq,
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
	switch {
	case stored.Partitions != cfg.Partitions:
		return invalidf("subscription %s exists with %d partitions, not %d", cfg.Name, stored.Partitions, cfg.Partitions)
	case !slices.Equal(stored.Categories, cfg.Categories) && !(len(stored.Categories) == 0 && len(cfg.Categories) == 0):
		return invalidf("subscription %s exists with categories %q, not %q", cfg.Name, stored.Categories, cfg.Categories)
	case !slices.Equal(stored.Types, cfg.Types) && !(len(stored.Types) == 0 && len(cfg.Types) == 0):
		return invalidf("subscription %s exists with types %q, not %q", cfg.Name, stored.Types, cfg.Types)
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

func (sub *Subscription[TTx]) fail(err error) {
	sub.mu.Lock()
	if sub.err == nil {
		sub.err = err
	}
	stopping := sub.stopping
	sub.mu.Unlock()
	stopping()
}

// wakeAll makes every partition runner look for events now.
func (sub *Subscription[TTx]) wakeAll() {
	sub.mu.Lock()
	defer sub.mu.Unlock()
	for _, r := range sub.runners {
		r.wake()
	}
}

// run is the coordinator: it keeps the worker's heartbeat and leases, and
// starts and stops one runner per partition held.
func (sub *Subscription[TTx]) run(ctx, workCtx context.Context) {
	cfg := sub.config
	exec := sub.store.driver.Executor()
	schema := sub.store.config.Schema
	var wg sync.WaitGroup
	failures := 0
	for {
		wait := retrypolicy.Jitter(cfg.Lease / 3)
		if err := sub.balance(ctx, workCtx, exec, &wg); err != nil {
			if ctx.Err() != nil {
				break
			}
			failures++
			wait = min(wait, cfg.retryBackoff().Wait(failures))
			sub.logger.WarnContext(ctx, "meowmx: subscription lease renewal failed", slog.String("err", err.Error()), slog.Duration("retry_in", wait))
		} else {
			failures = 0
		}
		select {
		case <-ctx.Done():
		case <-sub.rebalance:
			continue
		case <-time.After(wait):
			continue
		}
		break
	}
	// Stop: runners finish their batch, then the partitions are freed.
	sub.mu.Lock()
	for _, r := range sub.runners {
		r.stop()
	}
	sub.mu.Unlock()
	wg.Wait()
	cleanup, cancel := context.WithTimeout(context.WithoutCancel(workCtx), 5*time.Second)
	defer cancel()
	if err := exec.RemoveWorker(cleanup, schema, cfg.Name, sub.worker); err != nil {
		sub.logger.WarnContext(cleanup, "meowmx: could not release partitions; they free up when the lease ends", slog.String("err", err.Error()))
	}
}

// balance renews the worker's heartbeat and leases, claims its share of the
// partitions, gives back any above its share, and reconciles runners.
func (sub *Subscription[TTx]) balance(ctx, workCtx context.Context, exec meowmxdriver.Executor, wg *sync.WaitGroup) error {
	cfg := sub.config
	schema := sub.store.config.Schema

	// A batch that runs longer than the lease is taken for a hung handler:
	// the worker then acts as a crashed one would. It cancels its batches
	// (their transactions roll back, and cannot commit anyway once the
	// partitions are gone), leaves the subscription so that the other
	// workers share its partitions, and comes back once its runners have
	// all returned.
	sub.mu.Lock()
	if sub.suspended && len(sub.runners) > 0 {
		sub.mu.Unlock()
		return nil
	}
	sub.suspended = false
	for partition, r := range sub.runners {
		if r.overran(cfg.Lease - cfg.Lease/10) {
			sub.logger.ErrorContext(ctx, "meowmx: a batch has run longer than the lease; leaving the subscription to the other workers until it returns",
				slog.Int("partition", partition), slog.Duration("lease", cfg.Lease))
			sub.suspended = true
		}
	}
	if sub.suspended {
		for _, r := range sub.runners {
			r.stop()
			r.abortBatch()
		}
		sub.mu.Unlock()
		return exec.RemoveWorker(ctx, schema, cfg.Name, sub.worker)
	}
	sub.mu.Unlock()

	workers, err := exec.Heartbeat(ctx, schema, cfg.Name, sub.worker, cfg.Lease)
	if err != nil {
		return err
	}
	// Shares sum to the partition count: every live worker gets
	// partitions/workers, and the first partitions%workers of them (in
	// name order) one more.
	live := max(len(workers), 1)
	rank := max(slices.Index(workers, sub.worker), 0)
	share := cfg.Partitions / live
	if rank < cfg.Partitions%live {
		share++
	}
	claimedAt := time.Now()
	rows, err := exec.Claim(ctx, &meowmxdriver.ClaimParams{Schema: schema, Name: cfg.Name, Worker: sub.worker, Lease: cfg.Lease, Want: share})
	if err != nil {
		return err
	}
	// Our view of the lease ends a little before the database's, so a
	// runner never starts a batch it might not be allowed to commit.
	leaseEnd := claimedAt.Add(cfg.Lease - cfg.Lease/10)

	held := map[int]*meowmxdriver.SubscriptionRow{}
	for _, row := range rows {
		held[row.Partition] = row
	}
	// Above our share (a worker joined): give back the highest partitions.
	var extra []int
	if len(rows) > share {
		for _, row := range rows[share:] {
			extra = append(extra, row.Partition)
			delete(held, row.Partition)
		}
	}

	sub.mu.Lock()
	for partition, r := range sub.runners {
		row, ok := held[partition]
		if !ok || row.Generation != r.generation {
			r.stop() // lost, given back, or reset: the runner ends after its batch
			continue
		}
		r.extendLease(leaseEnd)
	}
	var toRelease []int
	for _, partition := range extra {
		if r, running := sub.runners[partition]; running {
			r.releaseWhenDone = true
		} else {
			toRelease = append(toRelease, partition)
		}
	}
	for partition, row := range held {
		if _, running := sub.runners[partition]; running {
			continue // running, or finishing: started again once it is gone
		}
		r := newPartitionRunner(sub, row, leaseEnd)
		sub.runners[partition] = r
		wg.Go(func() {
			r.run(ctx, workCtx)
			sub.mu.Lock()
			delete(sub.runners, partition)
			release := r.releaseWhenDone
			sub.mu.Unlock()
			if release {
				releaseCtx, cancel := context.WithTimeout(context.WithoutCancel(workCtx), 5*time.Second)
				if err := exec.Release(releaseCtx, schema, cfg.Name, sub.worker, []int{partition}); err != nil {
					sub.logger.WarnContext(releaseCtx, "meowmx: could not release partition", slog.Int("partition", partition), slog.String("err", err.Error()))
				}
				cancel()
			}
			select { // let the coordinator look again at once
			case sub.rebalance <- struct{}{}:
			default:
			}
		})
	}
	sub.mu.Unlock()
	if len(toRelease) > 0 {
		if err := exec.Release(ctx, schema, cfg.Name, sub.worker, toRelease); err != nil {
			return err
		}
	}
	return nil
}

// retryBackoff spaces the retries of a failing batch, read or outage.
func (c *SubscriptionConfig[TTx]) retryBackoff() retrypolicy.Backoff {
	return retrypolicy.Backoff{Base: c.RetryBackoff, Ceiling: c.RetryBackoffMax}
}
