package meowmx

import (
	"context"
	"log/slog"
	"maps"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/meowmx/meowmx/internal/retrypolicy"
	"github.com/meowmx/meowmx/internal/testsignal"
	"github.com/meowmx/meowmx/meowmxdriver"
)

// coordinator keeps one worker's share of a subscription's partitions: it
// renews the worker's heartbeat and leases, claims the partitions that fall
// to it, gives back those above its share, and runs one partitionRunner per
// partition held.
//
// It runs in a single goroutine, which alone owns its runners and the
// partitions waiting to be released, so none of that state needs a lock. A
// runner that returns hands itself back on exited and the coordinator
// forgets it; the notification hub, which wakes the runners from its own
// goroutine, reads them from a snapshot the coordinator publishes instead of
// from the map.
type coordinator[TTx any] struct {
	sub   *Subscription[TTx]
	exec  meowmxdriver.Executor
	hooks *testsignal.Hooks

	// runners holds the runner of each partition the worker works on, from
	// its start until the coordinator has collected it from exited. While a
	// partition has a runner here, no other runner starts on it.
	runners map[int]*partitionRunner[TTx]
	// releaseWhenDone holds the partitions above the worker's share whose
	// runner was still finishing a batch: each is released once its runner
	// has returned.
	releaseWhenDone map[int]bool
	// suspended is set when a batch has run longer than the lease: the
	// worker stays out of the subscription until its runners have returned.
	suspended bool
	// exited receives each runner once its run has returned.
	exited chan *partitionRunner[TTx]
	// wg counts the runners' goroutines, joined when the coordinator stops.
	wg sync.WaitGroup
	// wakeList is the runners as of their last change, for wakeAll.
	wakeList atomic.Pointer[[]*partitionRunner[TTx]]
}

// newCoordinator returns the coordinator of sub's worker; its runners call
// hooks, if set.
func newCoordinator[TTx any](sub *Subscription[TTx], hooks *testsignal.Hooks) *coordinator[TTx] {
	return &coordinator[TTx]{
		sub:             sub,
		exec:            sub.store.driver.Executor(),
		hooks:           hooks,
		runners:         map[int]*partitionRunner[TTx]{},
		releaseWhenDone: map[int]bool{},
		exited:          make(chan *partitionRunner[TTx]),
	}
}

// run is the coordinator's goroutine. It balances at a third of the lease
// (with jitter, so that workers do not all renew at once), sooner after a
// failure, and at once after runners return, so that a partition they leave
// is started again or taken up without waiting. When ctx ends it stops the
// runners, lets them finish their batch (workCtx ends those early) and frees
// the worker's partitions.
func (c *coordinator[TTx]) run(ctx, workCtx context.Context) {
	cfg := c.sub.config
	failures := 0
	for {
		wait := retrypolicy.Jitter(cfg.Lease / 3)
		if err := c.balance(ctx, workCtx); err != nil {
			if ctx.Err() != nil {
				break
			}
			failures++
			wait = min(wait, cfg.retryBackoff().Wait(failures))
			c.sub.logger.WarnContext(ctx, "meowmx: subscription lease renewal failed", slog.String("err", err.Error()), slog.Duration("retry_in", wait))
		} else {
			failures = 0
		}
		select {
		case <-ctx.Done():
		case r := <-c.exited:
			c.collect(workCtx, r)
			continue
		case <-time.After(wait):
			continue
		}
		break
	}
	c.shutdown(workCtx)
}

// shutdown stops every runner, waits until each has finished its batch and
// returned, and then frees the worker's partitions for the other workers.
func (c *coordinator[TTx]) shutdown(workCtx context.Context) {
	for _, r := range c.runners {
		r.stop()
	}
	for len(c.runners) > 0 {
		c.collect(workCtx, <-c.exited)
	}
	c.wg.Wait()
	cfg := c.sub.config
	cleanup, cancel := context.WithTimeout(context.WithoutCancel(workCtx), 5*time.Second)
	defer cancel()
	if err := c.exec.RemoveWorker(cleanup, c.sub.store.config.Schema, cfg.Name, c.sub.worker); err != nil {
		c.sub.logger.WarnContext(cleanup, "meowmx: could not release partitions; they free up when the lease ends", slog.String("err", err.Error()))
	}
}

// balance brings the worker's runners in line with its share of the
// partitions. Each step is one method below, in this order.
func (c *coordinator[TTx]) balance(ctx, workCtx context.Context) error {
	if out, err := c.leaveIfOverrun(ctx); out || err != nil {
		return err
	}
	workers, err := c.heartbeat(ctx)
	if err != nil {
		return err
	}
	held, surplus, leaseEnd, err := c.claim(ctx, c.shareOf(workers))
	if err != nil {
		return err
	}
	c.renewRunners(held, leaseEnd)
	c.startRunners(ctx, workCtx, held, leaseEnd)
	return c.releaseSurplus(ctx, surplus)
}

// leaveIfOverrun takes a batch that has run longer than the lease for a hung
// handler: the worker then acts as a crashed one would. It cancels its
// batches (their transactions roll back, and cannot commit anyway once the
// partitions are gone) and leaves the subscription, so that the other
// workers share its partitions; it comes back once its runners have all
// returned. It reports whether the worker is out of the subscription, in
// which case there is nothing more to balance.
func (c *coordinator[TTx]) leaveIfOverrun(ctx context.Context) (out bool, err error) {
	cfg := c.sub.config
	if c.suspended && len(c.runners) > 0 {
		return true, nil
	}
	c.suspended = false
	for partition, r := range c.runners {
		if r.overran(cfg.Lease - cfg.Lease/10) {
			c.sub.logger.ErrorContext(ctx, "meowmx: a batch has run longer than the lease; leaving the subscription to the other workers until it returns",
				slog.Int("partition", partition), slog.Duration("lease", cfg.Lease))
			c.suspended = true
		}
	}
	if !c.suspended {
		return false, nil
	}
	for _, r := range c.runners {
		r.stop()
		r.abortBatch()
	}
	return true, c.exec.RemoveWorker(ctx, c.sub.store.config.Schema, cfg.Name, c.sub.worker)
}

// heartbeat records that the worker is alive for another lease and returns
// the live workers, sorted by name: the partitions are shared among them.
func (c *coordinator[TTx]) heartbeat(ctx context.Context) ([]string, error) {
	cfg := c.sub.config
	return c.exec.Heartbeat(ctx, c.sub.store.config.Schema, cfg.Name, c.sub.worker, cfg.Lease)
}

// shareOf returns how many partitions this worker should hold among the live
// workers. Shares sum to the partition count: every live worker gets
// partitions/workers, and the first partitions%workers of them (in name
// order) one more. A worker missing from the list counts as the first.
func (c *coordinator[TTx]) shareOf(workers []string) int {
	partitions := c.sub.config.Partitions
	live := max(len(workers), 1)
	rank := max(slices.Index(workers, c.sub.worker), 0)
	share := partitions / live
	if rank < partitions%live {
		share++
	}
	return share
}

// claim renews the leases of the partitions the worker holds and claims free
// or expired ones until it holds share, in one call. It returns the
// partitions to keep, those above the share (the highest, which a worker
// that joined should have), and when the worker's view of the leases ends:
// a little before the database's, so that a runner never starts a batch it
// might not be allowed to commit.
func (c *coordinator[TTx]) claim(ctx context.Context, share int) (held map[int]*meowmxdriver.SubscriptionRow, surplus []int, leaseEnd time.Time, err error) {
	cfg := c.sub.config
	claimedAt := time.Now()
	rows, err := c.exec.Claim(ctx, &meowmxdriver.ClaimParams{Schema: c.sub.store.config.Schema, Name: cfg.Name, Worker: c.sub.worker, Lease: cfg.Lease, Want: share})
	if err != nil {
		return nil, nil, time.Time{}, err
	}
	leaseEnd = claimedAt.Add(cfg.Lease - cfg.Lease/10)
	held = map[int]*meowmxdriver.SubscriptionRow{}
	for _, row := range rows {
		held[row.Partition] = row
	}
	if len(rows) > share {
		for _, row := range rows[share:] {
			surplus = append(surplus, row.Partition)
			delete(held, row.Partition)
		}
	}
	return held, surplus, leaseEnd, nil
}

// renewRunners extends the lease of each runner whose partition the worker
// still holds at the runner's generation, and stops the others: their
// partition was lost to another worker, is to be given back, or was reset.
// A stopped runner finishes its batch and returns.
func (c *coordinator[TTx]) renewRunners(held map[int]*meowmxdriver.SubscriptionRow, leaseEnd time.Time) {
	for partition, r := range c.runners {
		row, ok := held[partition]
		if !ok || row.Generation != r.generation {
			r.stop()
			continue
		}
		r.extendLease(leaseEnd)
	}
}

// startRunners starts a runner for each partition held that has none. A
// partition whose runner is still finishing (stopped, or returned but not
// yet collected) gets a new one only at the balance after the old one is
// collected, so that two runners never work on one partition. The new
// runners are published for wakeAll before they start: a notification
// either wakes them or comes before their first read.
func (c *coordinator[TTx]) startRunners(ctx, workCtx context.Context, held map[int]*meowmxdriver.SubscriptionRow, leaseEnd time.Time) {
	var started []*partitionRunner[TTx]
	for partition, row := range held {
		if _, running := c.runners[partition]; running {
			continue
		}
		r := newPartitionRunner(c.sub, c.hooks, row, leaseEnd)
		c.runners[partition] = r
		started = append(started, r)
	}
	if len(started) == 0 {
		return
	}
	c.publish()
	for _, r := range started {
		c.wg.Go(func() {
			r.run(ctx, workCtx)
			c.exited <- r
		})
	}
}

// releaseSurplus gives back the partitions above the worker's share, so that
// the worker that joined can claim them. A partition whose runner is still
// working is released only once the runner (stopped by renewRunners) has
// finished its batch and returned, so that the batch can still commit; the
// others are released now.
func (c *coordinator[TTx]) releaseSurplus(ctx context.Context, surplus []int) error {
	var idle []int
	for _, partition := range surplus {
		if _, running := c.runners[partition]; running {
			c.releaseWhenDone[partition] = true
		} else {
			idle = append(idle, partition)
		}
	}
	if len(idle) == 0 {
		return nil
	}
	return c.exec.Release(ctx, c.sub.store.config.Schema, c.sub.config.Name, c.sub.worker, idle)
}

// collect forgets r, a runner that has returned, and any other that has
// returned meanwhile, then releases those of their partitions that were
// waiting for it. Until a runner is collected its partition counts as
// running, so no new runner starts on a partition about to be released.
func (c *coordinator[TTx]) collect(workCtx context.Context, r *partitionRunner[TTx]) {
	var release []int
	for r != nil {
		delete(c.runners, r.partition)
		if c.releaseWhenDone[r.partition] {
			delete(c.releaseWhenDone, r.partition)
			release = append(release, r.partition)
		}
		r = nil
		select {
		case r = <-c.exited:
		default:
		}
	}
	c.publish()
	if len(release) == 0 {
		return
	}
	releaseCtx, cancel := context.WithTimeout(context.WithoutCancel(workCtx), 5*time.Second)
	defer cancel()
	if err := c.exec.Release(releaseCtx, c.sub.store.config.Schema, c.sub.config.Name, c.sub.worker, release); err != nil {
		c.sub.logger.WarnContext(releaseCtx, "meowmx: could not release partitions", slog.Any("partitions", release), slog.String("err", err.Error()))
	}
}

// publish makes the current runners the ones wakeAll wakes.
func (c *coordinator[TTx]) publish() {
	list := slices.Collect(maps.Values(c.runners))
	c.wakeList.Store(&list)
}

// wakeAll makes every partition runner look for events now. The
// notification hub calls it from its own goroutine, so it reads the runners
// from the last snapshot published, never from the coordinator's map; waking
// a runner that has just returned is harmless.
func (c *coordinator[TTx]) wakeAll() {
	if list := c.wakeList.Load(); list != nil {
		for _, r := range *list {
			r.wake()
		}
	}
}
