package bench

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
)

// op is one operation of one writer: it returns how many events it wrote or
// read. Each writer calls its own op in turn, so an op may keep state.
type op func(ctx context.Context) (int, error)

// tally is what a throughput run measured.
type tally struct {
	events    int
	ops       int
	elapsed   time.Duration
	latencies []time.Duration // one per op
}

func (t *tally) add(o tally) {
	t.events += o.events
	t.ops += o.ops
	t.elapsed += o.elapsed
	t.latencies = append(t.latencies, o.latencies...)
}

// perSecond is events per second.
func (t *tally) perSecond() float64 {
	if t.elapsed <= 0 {
		return 0
	}
	return float64(t.events) / t.elapsed.Seconds()
}

// run calls ops concurrently (one goroutine each) for d, and counts. Each
// op is called at least once, however late its goroutine starts.
func run(ctx context.Context, ops []op, d time.Duration) (tally, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		mu       sync.Mutex
		total    tally
		firstErr error
		stop     atomic.Bool
		wg       sync.WaitGroup
	)
	start := time.Now()
	deadline := start.Add(d)
	for _, o := range ops {
		wg.Go(func() {
			var mine tally
			for calls := 0; !stop.Load() && (calls == 0 || time.Now().Before(deadline)); calls++ {
				began := time.Now()
				n, err := o(ctx)
				if err != nil {
					mu.Lock()
					if firstErr == nil {
						firstErr = err
					}
					mu.Unlock()
					stop.Store(true)
					cancel()
					return
				}
				mine.latencies = append(mine.latencies, time.Since(began))
				mine.events += n
				mine.ops++
			}
			mu.Lock()
			total.events += mine.events
			total.ops += mine.ops
			total.latencies = append(total.latencies, mine.latencies...)
			mu.Unlock()
		})
	}
	wg.Wait()
	total.elapsed = time.Since(start)
	return total, firstErr
}

// compare measures meowmx and the baseline with the same number of
// concurrent ops, in alternating rounds (baseline, meowmx, meowmx,
// baseline) so that a drift of the machine during the run, and anything
// the side that goes second in a round would pay for the first, falls on
// both. A short warm-up of
// each side (connections, prepared statements) is not counted.
func compare(ctx context.Context, d time.Duration, meowmxOps, baselineOps []op) (m, b tally, err error) {
	return compareRounds(ctx, d, 2, meowmxOps, baselineOps)
}

// compareRounds is compare in rounds, each of d/rounds for each side,
// whose order alternates: baseline first in even rounds, meowmx first in
// odd ones. More rounds spread the drift of a noisy machine (a disk's
// flush times) over both sides.
func compareRounds(ctx context.Context, d time.Duration, rounds int, meowmxOps, baselineOps []op) (m, b tally, err error) {
	warmUp := min(d/10, 500*time.Millisecond)
	if _, err := run(ctx, baselineOps, warmUp); err != nil {
		return m, b, fmt.Errorf("baseline: %w", err)
	}
	if _, err := run(ctx, meowmxOps, warmUp); err != nil {
		return m, b, fmt.Errorf("meowmx: %w", err)
	}
	sides := [2]struct {
		name string
		ops  []op
		t    *tally
	}{{"baseline", baselineOps, &b}, {"meowmx", meowmxOps, &m}}
	for round := range rounds {
		for i := range sides {
			s := sides[(i+round)%2]
			t, err := run(ctx, s.ops, d/time.Duration(rounds))
			if err != nil {
				return m, b, fmt.Errorf("%s: %w", s.name, err)
			}
			s.t.add(t)
		}
	}
	return m, b, nil
}

// percentile of sorted durations, in milliseconds.
func percentile(sorted []time.Duration, p float64) float64 {
	if len(sorted) == 0 {
		return 0
	}
	i := int(p*float64(len(sorted)) + 0.5)
	i = min(max(i-1, 0), len(sorted)-1)
	return float64(sorted[i]) / float64(time.Millisecond)
}

func latencyPercentiles(d []time.Duration) (p50, p95, p99 float64) {
	sorted := slices.Clone(d)
	slices.Sort(sorted)
	return percentile(sorted, 0.50), percentile(sorted, 0.95), percentile(sorted, 0.99)
}

// pacedLatency sends one event every 1/perSecond for warmUp+d, each in a
// goroutine of its own (so that a slow send does not delay the next), and
// times each from just before its send to its receipt. Events of the
// warm-up are not counted. It fails if an event is not received within 10
// seconds of the last send.
func pacedLatency(ctx context.Context, perSecond int, warmUp, d time.Duration,
	send func(ctx context.Context, key string, data []byte) error,
	start func(received func(key string)) (stop func() error, err error),
) ([]time.Duration, error) {
	var (
		mu        sync.Mutex
		sent      = map[string]time.Time{}
		latencies []time.Duration
		pending   int
		allIn     = make(chan struct{})
		closed    bool
		sendErr   error
	)
	received := func(key string) {
		now := time.Now()
		mu.Lock()
		defer mu.Unlock()
		at, ok := sent[key]
		if !ok {
			return
		}
		delete(sent, key)
		latencies = append(latencies, now.Sub(at))
		pending--
		if pending == 0 && closed {
			close(allIn)
		}
	}
	stop, err := start(received)
	if err != nil {
		return nil, err
	}
	stopped := false
	defer func() {
		if !stopped {
			_ = stop()
		}
	}()

	interval := time.Second / time.Duration(perSecond)
	warm := int(warmUp / interval)
	total := warm + int(d/interval)
	ticker := time.NewTicker(interval)
	defer ticker.Stop()
	var wg sync.WaitGroup
	for i := range total {
		select {
		case <-ctx.Done():
			wg.Wait()
			return nil, ctx.Err()
		case <-ticker.C:
		}
		key := uuid.NewString()
		data := fmt.Appendf(nil, `{"tick":%d,"sent":"%s"}`, i, time.Now().UTC().Format(time.RFC3339Nano))
		measured := i >= warm
		wg.Go(func() {
			if measured {
				mu.Lock()
				sent[key] = time.Now()
				pending++
				mu.Unlock()
			}
			if err := send(ctx, key, data); err != nil {
				mu.Lock()
				if sendErr == nil {
					sendErr = err
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	mu.Lock()
	closed = true
	if pending == 0 {
		close(allIn)
	}
	err = sendErr
	mu.Unlock()
	if err != nil {
		return nil, err
	}
	select {
	case <-allIn:
	case <-time.After(10 * time.Second):
		mu.Lock()
		missing := pending
		mu.Unlock()
		return nil, fmt.Errorf("%d events not received 10 s after the last was sent", missing)
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	stopped = true
	if err := stop(); err != nil {
		return nil, err
	}
	mu.Lock()
	defer mu.Unlock()
	return latencies, nil
}
