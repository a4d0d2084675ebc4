package meowmx

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"github.com/meowmx/meowmx/internal/retrypolicy"
	"github.com/meowmx/meowmx/internal/testsignal"
	"github.com/meowmx/meowmx/meowmxdriver"
)

// errLeaseLost: the worker no longer holds the partition (another took it,
// or the subscription was reset); the batch was rolled back.
var errLeaseLost = errors.New("meowmx: partition lease lost")

// partitionRunner processes one partition while its worker holds it. It
// holds no transaction while it waits: each batch is read outside any
// transaction, then handled and checkpointed in one short transaction.
//
// Only the runner's goroutine touches its checkpoint; the coordinator calls
// only wake, stop, extendLease, abortBatch and overran, safe from any goroutine.
type partitionRunner[TTx any] struct {
	sub        *Subscription[TTx]
	hooks      *testsignal.Hooks
	partition  int
	generation int64
	checkpoint Position

	wakeC chan struct{}
	// busySince is when the batch in flight began (UnixNano), 0 when idle.
	busySince atomic.Int64
	// cancelBatch cancels the batch in flight.
	cancelBatch atomic.Pointer[context.CancelFunc]

	stopC    chan struct{}
	stopOnce sync.Once

	// mu guards leaseEnd, which the coordinator extends at each renewal
	// and the runner at each commit.
	mu       sync.Mutex
	leaseEnd time.Time
}

// newPartitionRunner returns a runner of row's partition, held until leaseEnd.
func newPartitionRunner[TTx any](sub *Subscription[TTx], hooks *testsignal.Hooks, row *meowmxdriver.SubscriptionRow, leaseEnd time.Time) *partitionRunner[TTx] {
	return &partitionRunner[TTx]{
		sub:        sub,
		hooks:      hooks,
		partition:  row.Partition,
		generation: row.Generation,
		checkpoint: Position{TransactionID: row.TransactionID, Seq: row.Seq},
		wakeC:      make(chan struct{}, 1),
		leaseEnd:   leaseEnd,
		stopC:      make(chan struct{}),
	}
}

// wake makes the runner look for events now if it is waiting for new ones,
// or else as soon as it next would; wake-ups meanwhile collapse into one.
func (r *partitionRunner[TTx]) wake() {
	select {
	case r.wakeC <- struct{}{}:
	default:
	}
}

// stop asks the runner to return once its batch in flight, if any, is done.
// It may be called any number of times.
func (r *partitionRunner[TTx]) stop() { r.stopOnce.Do(func() { close(r.stopC) }) }

// stopped reports whether stop has been called.
func (r *partitionRunner[TTx]) stopped() bool {
	select {
	case <-r.stopC:
		return true
	default:
		return false
	}
}

// extendLease moves the end of the runner's view of its lease to end, if
// that is later.
func (r *partitionRunner[TTx]) extendLease(end time.Time) {
	r.mu.Lock()
	if end.After(r.leaseEnd) {
		r.leaseEnd = end
	}
	r.mu.Unlock()
}

// abortBatch cancels the batch in flight, if any: its transaction rolls back.
func (r *partitionRunner[TTx]) abortBatch() {
	if cancel := r.cancelBatch.Load(); cancel != nil {
		(*cancel)()
	}
}

// overran reports whether the batch in flight has run longer than limit.
func (r *partitionRunner[TTx]) overran(limit time.Duration) bool {
	since := r.busySince.Load()
	return since != 0 && time.Since(time.Unix(0, since)) > limit
}

// leaseValid reports whether the lease, as the worker last renewed it, is
// still running: only then may the runner start a batch.
func (r *partitionRunner[TTx]) leaseValid() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return time.Now().Before(r.leaseEnd)
}

// sleep waits for d, a wake-up (if wakeable), or the end; ok is false at the
// end, woken true after a wake-up.
func (r *partitionRunner[TTx]) sleep(ctx context.Context, d time.Duration, wakeable bool) (ok, woken bool) {
	timer := time.NewTimer(d)
	defer timer.Stop()
	var wakeC chan struct{}
	if wakeable {
		wakeC = r.wakeC
	}
	select {
	case <-ctx.Done():
		return false, false
	case <-r.stopC:
		return false, false
	case <-wakeC:
		return true, true
	case <-timer.C:
		return true, false
	}
}

// run reads and handles the partition's events until the runner is
// stopped, ctx ends, the lease is lost, or an event stops the subscription;
// batches run under workCtx, so that a stop lets the one in flight commit.
func (r *partitionRunner[TTx]) run(ctx, workCtx context.Context) {
	sub := r.sub
	cfg := sub.config
	store := sub.store
	exec := store.driver.Executor()
	logger := sub.logger.With(slog.Int("partition", r.partition))
	logger.DebugContext(ctx, "meowmx: partition claimed", slog.String("checkpoint", r.checkpoint.String()))
	defer logger.DebugContext(ctx, "meowmx: partition left")

	failures := 0
	lastReplayCheck := time.Time{}
	// chase counts reads since a wake-up that found nothing: the commit
	// that woke us may still be hidden behind the visibility horizon (a
	// transaction of any database of the cluster still running), so look
	// again with chaseBackoff, chaseReads times (about 10 s), before
	// falling back to PollInterval.
	chase := 0
	for !r.stopped() && ctx.Err() == nil {
		if !r.leaseValid() {
			// The lease could not be renewed (database unreachable?):
			// another worker may hold the partition by now.
			if ok, _ := r.sleep(ctx, cfg.Lease/10, false); !ok {
				return
			}
			continue
		}
		if time.Since(lastReplayCheck) >= cfg.PollInterval {
			lastReplayCheck = time.Now()
			if err := r.replayParked(ctx, workCtx, exec); err != nil {
				if errors.Is(err, errLeaseLost) || ctx.Err() != nil {
					return
				}
				logger.WarnContext(ctx, "meowmx: replaying parked events failed", slog.String("err", err.Error()))
			}
		}
		// From the replica when there is one: the checkpoint only ever
		// moves to events read, so a standby behind it reads nothing and
		// the checkpoint stays.
		rows, err := store.reads.ReadSubscription(ctx, &meowmxdriver.ReadSubscriptionParams{
			Schema: store.config.Schema, Categories: cfg.Categories, Types: cfg.Types, Tags: cfg.Tags,
			Partitions: cfg.Partitions, Partition: r.partition,
			AfterTxID: r.checkpoint.TransactionID, AfterSeq: r.checkpoint.Seq, Limit: cfg.BatchSize,
		})
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			failures++
			wait := cfg.retryBackoff().Wait(failures)
			logger.WarnContext(ctx, "meowmx: reading events failed", slog.String("err", err.Error()), slog.Duration("retry_in", wait))
			if ok, _ := r.sleep(ctx, wait, false); !ok {
				return
			}
			continue
		}
		failures = 0
		if len(rows) == 0 {
			wait := retrypolicy.Jitter(cfg.PollInterval)
			if chase > 0 {
				wait = min(wait, chaseBackoff.Wait(chase))
				if chase++; chase > chaseReads {
					chase = 0
				}
			} else if r.hooks.Idle != nil {
				r.hooks.Idle(r.partition)
			}
			ok, woken := r.sleep(ctx, wait, true)
			if !ok {
				return
			}
			if woken {
				chase = 1
			}
			continue
		}
		chase = 0
		if err := r.process(ctx, workCtx, rows); err != nil {
			if !errors.Is(err, errLeaseLost) && ctx.Err() == nil && workCtx.Err() == nil {
				sub.fail(err)
			}
			return
		}
	}
}

// process handles a batch, retrying with backoff. Once a batch has failed,
// its events are handled one at a time, so that only the failing one is
// parked: the batch's failure counts as the first attempt of each, and each
// is tried alone at least once.
//
// Only the handler's own failures count as attempts. When the database
// cannot begin or commit the batch (it is down, a serialization failure),
// or the handler fails with a retryable database error, the batch is
// retried with backoff for as long as it takes: an event is never parked or
// skipped because of an outage.
//
// The batches left wait on a stack, the next on top: first the batch; if
// handleBatch says to split it, its events as batches of one, the first on
// top. Events are thus handled and checkpointed in order; an error ends all.
func (r *partitionRunner[TTx]) process(ctx, workCtx context.Context, events []RecordedEvent) error {
	type pending struct {
		events       []RecordedEvent
		firstAttempt int
	}
	stack := []pending{{events: events, firstAttempt: 1}}
	for len(stack) > 0 {
		next := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		split, err := r.handleBatch(ctx, workCtx, next.events, next.firstAttempt)
		if err != nil {
			return err
		}
		if split {
			for i := len(next.events) - 1; i >= 0; i-- {
				stack = append(stack, pending{events: []RecordedEvent{next.events[i]}, firstAttempt: 2})
			}
		}
	}
	return nil
}

// handleBatch retries one of process's batches until it commits, its event
// is parked, or the runner gives it up; firstAttempt is 1 for a batch read,
// 2 for an event of a failed batch. A batch of several events that the
// handler rejects is not retried: handleBatch reports that it must be split.
func (r *partitionRunner[TTx]) handleBatch(ctx, workCtx context.Context, events []RecordedEvent, firstAttempt int) (split bool, _ error) {
	cfg := r.sub.config
	attempt, outages := firstAttempt, 0
	var park *meowmxdriver.ParkParams
	for {
		err := r.commitBatch(workCtx, events, park, attempt)
		if err == nil {
			return false, nil
		}
		if errors.Is(err, errLeaseLost) || workCtx.Err() != nil {
			return false, err
		}
		if ctx.Err() != nil || r.stopped() {
			return false, errLeaseLost // stopping: the batch rolled back; leave it for later
		}
		var handlerErr *handlerError
		var wait time.Duration
		if park == nil && errors.As(err, &handlerErr) && !IsRetryable(handlerErr.err) && !errors.Is(handlerErr.err, ErrUnavailable) {
			if len(events) > 1 {
				r.sub.logger.InfoContext(ctx, "meowmx: batch failed; handling its events one at a time",
					slog.Int("partition", r.partition), slog.Int("events", len(events)), slog.String("err", err.Error()))
				return true, nil
			}
			ev := events[0]
			if attempt >= cfg.MaxAttempts {
				if cfg.OnFailure == StopSubscription {
					r.sub.logger.ErrorContext(ctx, "meowmx: stopping subscription on a failing event",
						slog.Int("partition", r.partition), slog.String("event_id", ev.ID.String()), slog.String("err", err.Error()))
					return false, fmt.Errorf("%w: event %s (%s version %d) failed %d times: %w", ErrSubscriptionStopped, ev.ID, ev.Stream, ev.Version, attempt, handlerErr.err)
				}
				r.sub.logger.ErrorContext(ctx, "meowmx: parking a failing event",
					slog.Int("partition", r.partition), slog.String("event_id", ev.ID.String()),
					slog.String("stream", ev.Stream.String()), slog.Int("attempts", attempt), slog.String("err", err.Error()))
				park = &meowmxdriver.ParkParams{
					Schema: r.sub.store.config.Schema, Name: cfg.Name, Partition: r.partition,
					EventID: ev.ID, Error: err.Error(), Attempts: attempt,
				}
				continue
			}
			wait = cfg.retryBackoff().Wait(attempt)
			r.sub.logger.WarnContext(ctx, "meowmx: handler failed; retrying",
				slog.Int("partition", r.partition), slog.String("event_id", ev.ID.String()),
				slog.Int("attempt", attempt), slog.Duration("retry_in", wait), slog.String("err", err.Error()))
			attempt++
		} else {
			outages++
			wait = cfg.retryBackoff().Wait(outages)
			r.sub.logger.WarnContext(ctx, "meowmx: could not commit a batch; retrying",
				slog.Int("partition", r.partition), slog.Int("events", len(events)),
				slog.Duration("retry_in", wait), slog.String("err", err.Error()))
		}
		if ok, _ := r.sleep(ctx, wait, false); !ok {
			return false, errLeaseLost
		}
	}
}

// handlerError is a failure of the handler itself, as opposed to the
// database's around it.
type handlerError struct{ err error }

func (e *handlerError) Error() string { return e.err.Error() }
func (e *handlerError) Unwrap() error { return e.err }

// commitBatch runs the handler on events (or, with park, records the event
// as parked instead) and advances the checkpoint past them, in one
// transaction. attempt counts the handler's calls with these events.
func (r *partitionRunner[TTx]) commitBatch(ctx context.Context, events []RecordedEvent, park *meowmxdriver.ParkParams, attempt int) (err error) {
	sub := r.sub
	store := sub.store
	driver := store.driver
	ctx, cancel := context.WithCancel(ctx)
	r.cancelBatch.Store(&cancel)
	r.busySince.Store(time.Now().UnixNano())
	defer func() {
		r.busySince.Store(0)
		r.cancelBatch.Store(nil)
		cancel()
	}()
	// The observer's deferred calls run before the cancel above, after the
	// rollback below.
	if obs := store.config.Observer; obs != nil {
		if park == nil {
			var end func(error)
			ctx, end = r.observeBatch(ctx, obs, events, attempt, false)
			defer func() { end(err) }()
		} else {
			parkCtx := ctx
			defer func() {
				if err == nil {
					obs.EventParked(parkCtx, &EventParkedData{
						Subscription: sub.config.Name, Partition: r.partition,
						Event: events[0], Attempts: park.Attempts, Err: park.Error,
					})
				}
			}()
		}
	}
	tx, err := driver.Begin(ctx, sub.config.SynchronousCommit)
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			_ = driver.Rollback(context.WithoutCancel(ctx), tx)
		}
	}()
	exec := driver.UnwrapExecutor(tx)
	if park == nil {
		if err := callHandler(ctx, sub.config.Handler, tx, events); err != nil {
			return &handlerError{err: err}
		}
	} else if err := exec.Park(ctx, park); err != nil {
		return err
	}
	last := events[len(events)-1].Position
	ok, err := exec.Advance(ctx, &meowmxdriver.AdvanceParams{
		Schema: store.config.Schema, Name: sub.config.Name, Partition: r.partition,
		Worker: sub.worker, Generation: r.generation,
		TxID: last.TransactionID, Seq: last.Seq, Lease: sub.config.Lease,
	})
	if err != nil {
		return err
	}
	if !ok {
		return errLeaseLost
	}
	renewed := time.Now()
	if err := driver.Commit(ctx, tx); err != nil {
		return err
	}
	r.checkpoint = last
	r.extendLease(renewed.Add(sub.config.Lease - sub.config.Lease/10))
	return nil
}

// replayParked handles again the parked events of this partition that were
// asked to be replayed, each in its own transaction that also unparks it.
// One that fails again stays parked with the new error.
func (r *partitionRunner[TTx]) replayParked(ctx, workCtx context.Context, exec meowmxdriver.Executor) error {
	sub := r.sub
	store := sub.store
	parked, err := exec.Parked(ctx, &meowmxdriver.ParkedParams{
		Schema: store.config.Schema, Name: sub.config.Name, OnlyReplay: true, Partition: r.partition, Limit: sub.config.BatchSize,
	})
	if err != nil || len(parked) == 0 {
		return err
	}
	for _, p := range parked {
		event := p.Event
		hctx, end := workCtx, func(error) {}
		if obs := store.config.Observer; obs != nil {
			hctx, end = r.observeBatch(workCtx, obs, []RecordedEvent{event}, 1, true)
		}
		err := r.inTx(hctx, func(tx TTx) error {
			if err := callHandler(hctx, sub.config.Handler, tx, []RecordedEvent{event}); err != nil {
				return &handlerError{err: err}
			}
			return store.driver.UnwrapExecutor(tx).Unpark(hctx, store.config.Schema, sub.config.Name, event.ID)
		})
		end(err)
		if herr := (*handlerError)(nil); errors.As(err, &herr) {
			err = herr.err
		}
		if err == nil {
			sub.logger.InfoContext(ctx, "meowmx: replayed a parked event", slog.Int("partition", r.partition), slog.String("event_id", event.ID.String()))
			continue
		}
		if workCtx.Err() != nil {
			return err
		}
		sub.logger.WarnContext(ctx, "meowmx: a replayed parked event failed again", slog.Int("partition", r.partition),
			slog.String("event_id", event.ID.String()), slog.String("err", err.Error()))
		if err := exec.Park(ctx, &meowmxdriver.ParkParams{
			Schema: store.config.Schema, Name: sub.config.Name, Partition: r.partition,
			EventID: event.ID, Error: err.Error(), Attempts: 1,
		}); err != nil {
			return err
		}
	}
	return nil
}

// observeBatch tells obs of a call of the handler with events and returns
// the context to call it with, and the function that tells obs how the
// call ended.
func (r *partitionRunner[TTx]) observeBatch(ctx context.Context, obs Observer, events []RecordedEvent, attempt int, replay bool) (context.Context, func(error)) {
	start := BatchStartData{
		Subscription: r.sub.config.Name, Partition: r.partition,
		Events: events, Attempt: attempt, Replay: replay,
	}
	began := time.Now()
	ctx = obs.BatchStart(ctx, &start)
	return ctx, func(err error) {
		end := BatchEndData{BatchStartData: start, Outcome: BatchHandled, Duration: time.Since(began), Err: err}
		var herr *handlerError
		switch {
		case err == nil:
		case ctx.Err() != nil:
			// The batch was given up (lease lost, overrun, stopping): the
			// handler's error, if any, is the cancellation's.
			end.Outcome = BatchAborted
		case errors.As(err, &herr):
			end.Outcome, end.Err = BatchFailed, herr.err
		default:
			end.Outcome = BatchAborted
		}
		obs.BatchEnd(ctx, &end)
	}
}

// inTx runs fn in a transaction of its own, committed if fn succeeds and
// rolled back otherwise.
func (r *partitionRunner[TTx]) inTx(ctx context.Context, fn func(tx TTx) error) (err error) {
	driver := r.sub.store.driver
	tx, err := driver.Begin(ctx, r.sub.config.SynchronousCommit)
	if err != nil {
		return err
	}
	if err := fn(tx); err != nil {
		_ = driver.Rollback(context.WithoutCancel(ctx), tx)
		return err
	}
	return driver.Commit(ctx, tx)
}

// callHandler runs the handler, turning a panic into an error.
func callHandler[TTx any](ctx context.Context, handler Handler[TTx], tx TTx, events []RecordedEvent) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("handler panicked: %v\n%s", p, debug.Stack())
		}
	}()
	return handler(ctx, tx, events)
}

// chaseBackoff spaces the reads after a wake-up that found nothing: the
// events that woke the partition may be behind the visibility horizon for a
// moment. chaseReads such reads take about 10 s.
var chaseBackoff = retrypolicy.Backoff{Base: time.Millisecond, Ceiling: time.Second}

const chaseReads = 30
