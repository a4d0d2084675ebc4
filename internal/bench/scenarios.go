package bench

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"

	"github.com/meowmx/meowmx"
)

// payload is every scenario's event data, on both sides.
var payload = []byte(`{"order_id":"o-1042","customer":"c-77","amount_cents":4999,"currency":"EUR","items":3}`)

const eventType = "OrderPlaced"

// appendOps makes one op per writer for meowmx and for the baseline: writer
// w appends batches of n events to its own streams, each stream taking
// streamLen/n batches, with the exact expected version; the baseline
// inserts the same rows with one autocommit INSERT.
func (r *runner) appendOps(prefix string, writers, n int) (meowmxOps, baselineOps []op) {
	meowmxOps = storeAppendOps(r.store, prefix, writers, n)
	batches := max(streamLen/n, 1)
	for w := range writers {
		j := 0
		baselineOps = append(baselineOps, func(ctx context.Context) (int, error) {
			stream := fmt.Sprintf("bench-%s-%d-%d", prefix, w, j/batches)
			version := int64(j%batches) * int64(n)
			j++
			if err := r.db.raw.insert(ctx, stream, version, eventType, payload, n); err != nil {
				return 0, err
			}
			return n, nil
		})
	}
	return meowmxOps, baselineOps
}

// streamLen is how many events appendOps's writers append to each stream.
const streamLen = 100

// storeAppendOps makes appendOps's ops of a store: one per writer.
func storeAppendOps(store *side, prefix string, writers, n int) []op {
	batches := max(streamLen/n, 1)
	events := make([]meowmx.Event, n)
	for i := range events {
		events[i] = meowmx.Event{Type: eventType, Data: payload}
	}
	var ops []op
	for w := range writers {
		i := 0
		ops = append(ops, func(ctx context.Context) (int, error) {
			stream := meowmx.NewStream("bench", fmt.Sprintf("%s-%d-%d", prefix, w, i/batches))
			expected := meowmx.ExpectedVersion(int64(i%batches)*int64(n) - 1)
			i++
			if _, err := store.append(ctx, stream, expected, events...); err != nil {
				return 0, err
			}
			return n, nil
		})
	}
	return ops
}

// appendN: append-1 and append-100.
//
// Besides the ratio, the target asks that meowmx's p99 latency be at most
// 1.5 times the baseline's: a rate bought with a worse tail does not count.
func (r *runner) appendN(ctx context.Context, scenario string, n int, writerCounts []int, targetAt func(writers int) float64) error {
	for _, writers := range writerCounts {
		mOps, bOps := r.appendOps(fmt.Sprintf("%s-w%d", scenario, writers), writers, n)
		m, b, err := compare(ctx, r.o.Duration, mOps, bOps)
		if err != nil {
			return err
		}
		mp50, _, mp99 := latencyPercentiles(m.latencies)
		bp50, _, bp99 := latencyPercentiles(b.latencies)
		ratio, target := m.perSecond()/b.perSecond(), targetAt(writers)
		r.add(Result{
			Scenario: scenario, Setting: plural(writers, "writer"), Writers: writers,
			Metric: "events/s", Meowmx: m.perSecond(), Baseline: ptr(b.perSecond()),
			Target: fmt.Sprintf("ratio ≥ %.2g, p99 ≤ 1.5× baseline", target), Met: ptr(ratio >= target && mp99 <= 1.5*bp99),
			Extra: map[string]float64{
				"meowmx_p50_ms": mp50, "meowmx_p99_ms": mp99,
				"baseline_p50_ms": bp50, "baseline_p99_ms": bp99,
			},
		})
	}
	return nil
}

// contention: 8 writers on 10 hot streams, each appending with the version
// it last saw and, on a conflict, taking the current version and trying
// again. The baseline does the same in raw SQL: INSERT the next version,
// and on a unique violation read the stream's last version and try again.
func (r *runner) contention(ctx context.Context) error {
	const writers, streams = 8, 10
	var mConflicts, bConflicts, mAttempts, bAttempts atomic.Int64
	var mOps, bOps []op
	for w := range writers {
		rng := rand.New(rand.NewPCG(uint64(w), 1))
		known := make([]int64, streams)
		for i := range known {
			known[i] = -1
		}
		mOps = append(mOps, func(ctx context.Context) (int, error) {
			s := rng.IntN(streams)
			stream := meowmx.NewStream("hot", fmt.Sprint(s))
			for {
				mAttempts.Add(1)
				got, err := r.store.append(ctx, stream, meowmx.ExpectedVersion(known[s]), meowmx.Event{Type: eventType, Data: payload})
				var vc *meowmx.VersionConflictError
				if errors.As(err, &vc) {
					mConflicts.Add(1)
					known[s] = vc.Actual
					continue
				}
				if err != nil {
					return 0, err
				}
				known[s] = got[0].Version
				return 1, nil
			}
		})
		bKnown := make([]int64, streams)
		for i := range bKnown {
			bKnown[i] = -1
		}
		bRng := rand.New(rand.NewPCG(uint64(w), 1))
		bOps = append(bOps, func(ctx context.Context) (int, error) {
			s := bRng.IntN(streams)
			stream := fmt.Sprint("hot-", s)
			for {
				bAttempts.Add(1)
				err := r.db.raw.insert(ctx, stream, bKnown[s]+1, eventType, payload, 1)
				if isUniqueViolation(err) {
					bConflicts.Add(1)
					v, err := r.db.raw.lastVersion(ctx, stream)
					if err != nil {
						return 0, err
					}
					bKnown[s] = v
					continue
				}
				if err != nil {
					return 0, err
				}
				bKnown[s]++
				return 1, nil
			}
		})
	}
	m, b, err := compare(ctx, r.o.Duration, mOps, bOps)
	if err != nil {
		return err
	}
	rate := func(conflicts, attempts *atomic.Int64) float64 {
		return float64(conflicts.Load()) / float64(max(attempts.Load(), 1))
	}
	r.add(Result{
		Scenario: "contention", Setting: "8 writers, 10 streams", Writers: writers,
		Metric: "appends/s", Meowmx: m.perSecond(), Baseline: ptr(b.perSecond()),
		Extra: map[string]float64{
			"meowmx_conflict_rate": rate(&mConflicts, &mAttempts), "baseline_conflict_rate": rate(&bConflicts, &bAttempts),
		},
	})
	fmt.Fprintf(r.o.Out, "%-12s %-30s %22s %22s\n", "", "conflicts per attempt",
		fmt.Sprintf("%.1f%%", 100*rate(&mConflicts, &mAttempts)), fmt.Sprintf("%.1f%%", 100*rate(&bConflicts, &bAttempts)))
	return nil
}

// readStreamOps: one reader of a stream of streamLength events, through
// ReadStream and through the plain SELECT of the same rows.
func (r *runner) readStreamOps(stream meowmx.Stream, length int) (mOps, bOps []op) {
	mOps = []op{func(ctx context.Context) (int, error) {
		events, err := r.store.readStream(ctx, stream)
		if err == nil && len(events) != length {
			err = fmt.Errorf("read %d events of %s, want %d", len(events), stream, length)
		}
		return len(events), err
	}}
	bOps = []op{func(ctx context.Context) (int, error) {
		n, err := r.db.raw.readStream(ctx, stream.Category, stream.ID)
		if err == nil && n != length {
			err = fmt.Errorf("selected %d rows of %s, want %d", n, stream, length)
		}
		return n, err
	}}
	return mOps, bOps
}

// writeStream appends length events to stream in batches of 100.
func (r *runner) writeStream(ctx context.Context, stream meowmx.Stream, length int) error {
	for done := 0; done < length; {
		n := min(100, length-done)
		batch := make([]meowmx.Event, n)
		for i := range batch {
			batch[i] = meowmx.Event{Type: eventType, Data: payload}
		}
		if _, err := r.store.append(ctx, stream, meowmx.ExpectedVersion(done-1), batch...); err != nil {
			return err
		}
		done += n
	}
	return nil
}

func (r *runner) readStream(ctx context.Context) error {
	stream := meowmx.NewStream("read", "1")
	if err := r.writeStream(ctx, stream, r.o.StreamLength); err != nil {
		return err
	}
	if err := r.db.raw.analyze(ctx); err != nil {
		return err
	}
	res, err := r.measureRead(ctx, stream, r.o.StreamLength)
	if err != nil {
		return err
	}
	r.add(res)
	return nil
}

func (r *runner) measureRead(ctx context.Context, stream meowmx.Stream, length int) (Result, error) {
	mOps, bOps := r.readStreamOps(stream, length)
	m, b, err := compare(ctx, r.o.Duration, mOps, bOps)
	if err != nil {
		return Result{}, err
	}
	mp50, mp95, mp99 := latencyPercentiles(m.latencies)
	bp50, bp95, bp99 := latencyPercentiles(b.latencies)
	return Result{
		Scenario: "read-stream", Setting: fmt.Sprintf("%s events, 1 reader", group(int64(length))), Writers: 1,
		Metric: "ms per read", Meowmx: mp50, Baseline: ptr(bp50), lowerIsBetter: true,
		Extra: map[string]float64{
			"meowmx_reads_per_s": float64(m.ops) / m.elapsed.Seconds(), "baseline_reads_per_s": float64(b.ops) / b.elapsed.Seconds(),
			"meowmx_p95_ms": mp95, "meowmx_p99_ms": mp99, "baseline_p95_ms": bp95, "baseline_p99_ms": bp99,
		},
	}, nil
}

// load appends events to meowmx's store in 1,000-event batches over streams
// of 1,000 (two loaders at once), showing progress.
func (r *runner) load(ctx context.Context, prefix string, events int) error {
	if events <= 0 {
		return nil
	}
	batch := make([]meowmx.Event, 1000)
	for i := range batch {
		batch[i] = meowmx.Event{Type: eventType, Data: payload}
	}
	p := r.progress(fmt.Sprintf("loading %s events", group(int64(events))), events)
	var (
		next, done atomic.Int64
		mu         sync.Mutex
		firstErr   error
		wg         sync.WaitGroup
	)
	for range 2 {
		wg.Go(func() {
			for {
				start := next.Add(1000) - 1000
				if start >= int64(events) || ctx.Err() != nil {
					return
				}
				n := min(1000, int64(events)-start)
				b := make([]meowmx.Event, n)
				copy(b, batch)
				stream := meowmx.NewStream("load", fmt.Sprintf("%s-%d", prefix, start/1000))
				if _, err := r.store.append(ctx, stream, meowmx.NoStream, b...); err != nil {
					mu.Lock()
					if firstErr == nil {
						firstErr = err
					}
					mu.Unlock()
					return
				}
				d := done.Add(n)
				mu.Lock()
				p.update(int(d))
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if firstErr != nil {
		return firstErr
	}
	return ctx.Err()
}

// catchUp: a new subscription with a no-op handler consumes every stored
// event in batches of 1,000; the baseline scans the table in global order
// in pages of 1,000. Two alternating rounds; the faster of each side counts.
func (r *runner) catchUp(ctx context.Context) error {
	total := r.o.CatchUpEvents
	if err := r.load(ctx, "catch-up", total); err != nil {
		return err
	}
	if err := r.db.raw.analyze(ctx); err != nil {
		return err
	}
	const page = 1000
	var best, bestBase float64
	for round := range 2 {
		start := time.Now()
		n, err := r.db.raw.scan(ctx, page)
		if err != nil {
			return fmt.Errorf("baseline: %w", err)
		}
		if n != total {
			return fmt.Errorf("baseline scanned %d events, want %d", n, total)
		}
		bestBase = max(bestBase, float64(n)/time.Since(start).Seconds())

		elapsed, err := consume(ctx, r.store, fmt.Sprint("catch_up_", round), total, page)
		if err != nil {
			return err
		}
		best = max(best, float64(total)/elapsed.Seconds())
	}
	ratio := best / bestBase
	r.add(Result{
		Scenario: "catch-up", Setting: fmt.Sprintf("%s events, batches of %d", group(int64(total)), page),
		Metric: "events/s", Meowmx: best, Baseline: ptr(bestBase),
		Target: "ratio ≥ 0.3", Met: ptr(ratio >= 0.3),
	})
	if r.db.replicated != nil {
		return r.catchUpReplica(ctx, total, page)
	}
	return nil
}

// catchUpReplica: the same subscription reading from the hot standby,
// against the store reading from the primary (the baseline), once the
// standby has replayed the log. Two alternating rounds; the faster of each
// side counts.
func (r *runner) catchUpReplica(ctx context.Context, total, page int) error {
	if err := r.db.replayed(ctx); err != nil {
		return fmt.Errorf("waiting for the standby: %w", err)
	}
	replicated, err := r.db.replicated()
	if err != nil {
		return err
	}
	defer replicated.close()
	var best, bestBase float64
	for round := range 2 {
		elapsed, err := consume(ctx, r.store, fmt.Sprint("catch_up_primary_", round), total, page)
		if err != nil {
			return err
		}
		bestBase = max(bestBase, float64(total)/elapsed.Seconds())
		// Each subscription's checkpoints are WAL the standby replays
		// too; let it catch up before timing it.
		if err := r.db.replayed(ctx); err != nil {
			return err
		}
		elapsed, err = consume(ctx, replicated, fmt.Sprint("catch_up_standby_", round), total, page)
		if err != nil {
			return err
		}
		best = max(best, float64(total)/elapsed.Seconds())
	}
	r.add(Result{
		Scenario: "catch-up", Setting: fmt.Sprintf("%s events from the standby, baseline the primary", group(int64(total))),
		Metric: "events/s", Meowmx: best, Baseline: ptr(bestBase),
	})
	return nil
}

// consume runs a new subscription of store, from the start, with a no-op
// handler taking batches of page, until it has seen total events, and
// returns how long that took.
func consume(ctx context.Context, store *side, name string, total, page int) (time.Duration, error) {
	var seen atomic.Int64
	done := make(chan struct{})
	start := time.Now()
	stop, err := store.subscribe(ctx, name, false, page, func(events []meowmx.RecordedEvent) {
		if seen.Add(int64(len(events))) == int64(total) {
			close(done)
		}
	})
	if err != nil {
		return 0, err
	}
	select {
	case <-done:
	case <-ctx.Done():
		_ = stop(context.WithoutCancel(ctx))
		return 0, ctx.Err()
	}
	elapsed := time.Since(start)
	return elapsed, stop(ctx)
}

// latency: events appended at a fixed rate through another store (as
// another process would, woken by its notifications; on SQLite the same
// store, woken in-process), each timed from just before its append to its
// subscription handler. The baseline is the raw push path: an INSERT with a
// NOTIFY in its transaction, received by a LISTEN connection.
func (r *runner) latency(ctx context.Context) error {
	writer, err := r.db.store()
	if err != nil {
		return err
	}
	warmUp := time.Second
	m, err := pacedLatency(ctx, r.o.LatencyRate, warmUp, r.o.Duration,
		func(ctx context.Context, key string, data []byte) error {
			id, err := uuid.Parse(key)
			if err != nil {
				return err
			}
			_, err = writer.append(ctx, meowmx.NewStream("tick", key[:2]), meowmx.Any, meowmx.Event{ID: id, Type: "Ticked", Data: data})
			return err
		},
		func(received func(string)) (func() error, error) {
			stop, err := r.store.subscribe(ctx, "latency", true, 100, func(events []meowmx.RecordedEvent) {
				for _, e := range events {
					received(e.ID.String())
				}
			})
			if err != nil {
				return nil, err
			}
			return func() error { return stop(ctx) }, nil
		})
	if err != nil {
		return err
	}
	b, err := r.db.raw.notifyLatency(ctx, r.o.LatencyRate, warmUp, r.o.Duration)
	if err != nil && !errors.Is(err, errNoNotify) {
		return fmt.Errorf("baseline: %w", err)
	}
	mp50, mp95, mp99 := latencyPercentiles(m)
	res := Result{
		Scenario: "latency", Setting: fmt.Sprintf("%s events/s, p99", group(int64(r.o.LatencyRate))),
		Metric: "ms", Meowmx: mp99, lowerIsBetter: true,
		Target: "p99 ≤ 10 ms", Met: ptr(mp99 <= 10),
		Extra: map[string]float64{"meowmx_p50_ms": mp50, "meowmx_p95_ms": mp95, "meowmx_p99_ms": mp99},
	}
	if b != nil {
		bp50, bp95, bp99 := latencyPercentiles(b)
		res.Baseline = ptr(bp99)
		res.Extra["baseline_p50_ms"], res.Extra["baseline_p95_ms"], res.Extra["baseline_p99_ms"] = bp50, bp95, bp99
	}
	r.add(res)
	for _, p := range []string{"p50", "p95"} {
		line := fmt.Sprintf("%-12s %-30s %22s", "", p, formatFigure(res.Extra["meowmx_"+p+"_ms"], "ms"))
		if v, ok := res.Extra["baseline_"+p+"_ms"]; ok {
			line += fmt.Sprintf(" %22s", formatFigure(v, "ms"))
		}
		fmt.Fprintln(r.o.Out, line)
	}
	return nil
}

// growth: append-1 throughput (GrowthWriters writers) and the read of a
// 1,000-event stream, with each of GrowthSizes events already stored (and
// as many rows in the baseline's table). The target is meowmx's figure at
// the largest size within 10% of its figure on the empty table.
func (r *runner) growth(ctx context.Context) error {
	stream := meowmx.NewStream("read", "growth")
	if err := r.writeStream(ctx, stream, 1000); err != nil {
		return err
	}
	stored := 0
	var emptyAppend, emptyRead, emptyAppendBase, emptyReadBase float64
	for i, size := range r.o.GrowthSizes {
		if size > stored {
			if err := r.load(ctx, fmt.Sprint("growth-", i), size-stored); err != nil {
				return err
			}
			p := r.progress(fmt.Sprintf("filling the baseline table to %s rows", group(int64(size))), size-stored)
			if err := r.db.raw.fill(ctx, size-stored, eventType, payload, p.update); err != nil {
				return err
			}
			stored = size
		}
		if err := r.db.raw.analyze(ctx); err != nil {
			return err
		}
		setting := fmt.Sprintf("%s stored", group(int64(size)))

		mOps, bOps := r.appendOps(fmt.Sprintf("growth-%d", i), r.o.GrowthWriters, 1)
		m, b, err := compare(ctx, r.o.Duration, mOps, bOps)
		if err != nil {
			return err
		}
		res := Result{
			Scenario: "growth", Setting: fmt.Sprintf("append-1, %d writers, %s", r.o.GrowthWriters, setting),
			Writers: r.o.GrowthWriters, Stored: ptr(size),
			Metric: "events/s", Meowmx: m.perSecond(), Baseline: ptr(b.perSecond()),
		}
		if i == 0 {
			emptyAppend, emptyAppendBase = m.perSecond(), b.perSecond()
		} else {
			// Also the baseline's own change, measured in the same rounds:
			// what PostgreSQL (and the machine) did with the larger table.
			vs := m.perSecond() / emptyAppend
			res.Extra = map[string]float64{"meowmx_vs_first": vs, "baseline_vs_first": b.perSecond() / emptyAppendBase}
			res.Target, res.Met = "≥ 0.9 of first", ptr(vs >= 0.9)
		}
		r.add(res)

		read, err := r.measureRead(ctx, stream, 1000)
		if err != nil {
			return err
		}
		read.Scenario, read.Setting, read.Stored = "growth", fmt.Sprintf("read-stream, %s", setting), ptr(size)
		if i == 0 {
			emptyRead, emptyReadBase = read.Meowmx, *read.Baseline
		} else {
			vs := emptyRead / read.Meowmx // a time: the first's over this one's
			read.Extra["meowmx_vs_first"] = vs
			read.Extra["baseline_vs_first"] = emptyReadBase / *read.Baseline
			read.Target, read.Met = "≥ 0.9 of first", ptr(vs >= 0.9)
		}
		r.add(read)
	}
	return nil
}

func plural(n int, word string) string {
	if n == 1 {
		return "1 " + word
	}
	return fmt.Sprintf("%d %ss", n, word)
}

// dcb: conditional appends (Dynamic Consistency Boundaries) against the
// same appends without a condition, both through meowmx, both of one event
// without a stream tagged like a reservation.
//
//   - disjoint tags: each append's tag is its own, and its condition is
//     that no event of its type carries that tag; no condition ever fails.
//     What the condition costs: the locks and the check.
//   - one hot tag: every writer appends events carrying the same tag, on
//     the condition that none came after the last one it knows of; a
//     writer whose condition fails takes the first newer event as known
//     and tries again. The rate counts the appends that committed; the
//     baseline appends the same events without a condition.
func (r *runner) dcb(ctx context.Context) error {
	const typ = "SeatReserved"
	for _, setting := range []struct {
		name    string
		writers int
		hot     bool
		target  float64 // 0: none
	}{
		{"disjoint tags, 1 writer", 1, false, 0},
		{"disjoint tags, 8 writers", 8, false, 0.9},
		{"one hot tag, 8 writers", 8, true, 0},
	} {
		var failed, attempts atomic.Int64
		var mOps, bOps []op
		for w := range setting.writers {
			var i, j int
			var known meowmx.Position
			// Each side has tags of its own.
			event := func(side string, n int) meowmx.Event {
				tag := fmt.Sprintf("seat:%s-%d-%d-%d", side, setting.writers, w, n)
				if setting.hot {
					tag = "flight:hot-" + side
				}
				return meowmx.Event{Type: typ, Data: payload, Tags: []string{tag, fmt.Sprint("writer:", w)}}
			}
			mOps = append(mOps, func(ctx context.Context) (int, error) {
				e := event("m", i)
				i++
				query := meowmx.Query{Items: []meowmx.QueryItem{{Types: []string{typ}, Tags: e.Tags[:1]}}}
				for {
					attempts.Add(1)
					recorded, err := r.store.appendEvents(ctx, &meowmx.AppendCondition{FailIfEventsMatch: query, After: known}, e)
					if errors.Is(err, meowmx.ErrAppendConditionFailed) {
						// Read what came since, as a decision would, and try
						// again.
						failed.Add(1)
						if known, err = r.store.lastOf(ctx, query, known); err != nil {
							return 0, err
						}
						continue
					}
					if err != nil {
						return 0, err
					}
					if setting.hot {
						known = recorded[0].Position
					}
					return 1, nil
				}
			})
			bOps = append(bOps, func(ctx context.Context) (int, error) {
				e := event("b", j)
				j++
				if _, err := r.store.appendEvents(ctx, nil, e); err != nil {
					return 0, err
				}
				return 1, nil
			})
		}
		m, b, err := compare(ctx, r.o.Duration, mOps, bOps)
		if err != nil {
			return err
		}
		res := Result{
			Scenario: "dcb", Setting: setting.name, Writers: setting.writers,
			Metric: "events/s", Meowmx: m.perSecond(), Baseline: ptr(b.perSecond()),
			Target: "-",
			Extra:  map[string]float64{"conditions_failed": float64(failed.Load()), "attempts": float64(attempts.Load())},
		}
		if setting.target > 0 {
			res.Target = fmt.Sprintf("ratio ≥ %.2g", setting.target)
			res.Met = ptr(m.perSecond()/b.perSecond() >= setting.target)
		}
		if setting.hot {
			res.Target = fmt.Sprintf("%d of %d conditions failed", failed.Load(), attempts.Load())
		}
		r.add(res)
	}
	return nil
}
