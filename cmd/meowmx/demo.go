package main

import (
	"context"
	crand "crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"

	"github.com/meowmx/meowmx"
)

// cmdDemo runs "meowmx demo": the order workflow, with its writers, workers
// and the final check of the read model.
func cmdDemo(e *env) error {
	fs := newFlagSet(e, "demo", `Usage: meowmx demo [--events N] [--writers N]

Runs an order workflow on the store (the default SQLite file needs no
set-up): concurrent writers place, pay and ship orders, retrying their
optimistic-concurrency conflicts, while three subscription workers keep an
order-summary read model, schedule shipments and track activity. It ends
with a summary and checks that the read model matches the event streams
(exit status 1 if not). Running it again adds new orders.

Examples:
  meowmx demo
  meowmx demo --events 10000 --writers 8
  meowmx demo --db postgres://postgres@127.0.0.1:5432/test`)
	events := fs.Int("events", 3000, "order events to write (placed, paid, shipped)")
	writers := fs.Int("writers", 4, "concurrent writers")
	args, err := parse(fs, e.args)
	if err != nil {
		return err
	}
	if len(args) > 0 {
		return usagef("unexpected argument %q", args[0])
	}
	if *events < 3 || *writers < 1 {
		return usagef("--events must be at least 3 and --writers at least 1")
	}
	b, err := open(e)
	if err != nil {
		return err
	}
	defer b.close()
	if err := b.api.Migrate(e.ctx); err != nil {
		return err
	}
	d := &demo{env: e, db: b.db, label: b.label, orders: *events / 3, writers: *writers}
	if b.pg != nil {
		return runDemo(d, b.pg, pgAdapter(b))
	}
	return runDemo(d, b.lite, liteAdapter(b))
}

// demo is one run of the demo: its settings and the counters its progress
// and summary print.
type demo struct {
	env     *env
	db      *database
	label   string
	orders  int
	writers int

	written, conflicts        atomic.Int64
	summarized, shipped, seen atomic.Int64
}

type orderPlaced struct {
	Items []string `json:"items"`
	Total int64    `json:"total"`
}

var menu = []string{"tea", "cake", "scone", "jam", "biscuits", "milk", "honey"}

func runDemo[TTx any](d *demo, store *meowmx.Store[TTx], sqlx *sqlAdapter[TTx]) error {
	ctx := d.env.ctx
	summary, tracking := sqlx.table("demo_order_summary"), sqlx.table("demo_tracking")
	for _, q := range []string{
		`CREATE TABLE IF NOT EXISTS ` + summary + ` (order_id TEXT PRIMARY KEY, status TEXT NOT NULL, total BIGINT NOT NULL, version BIGINT NOT NULL)`,
		`CREATE TABLE IF NOT EXISTS ` + tracking + ` (category TEXT PRIMARY KEY, events BIGINT NOT NULL)`,
	} {
		if err := sqlx.execDB(ctx, q); err != nil {
			return fmt.Errorf("demo tables: %w", err)
		}
	}

	var run [3]byte
	_, _ = crand.Read(run[:])
	runID := hex.EncodeToString(run[:])
	fmt.Fprintf(d.env.stdout, "meowmx demo on %s: %d orders by %d writers (run %s)\n", d.label, d.orders, d.writers, runID)

	// The three workers.
	handlers := []meowmx.SubscriptionConfig[TTx]{
		{
			Name: "demo-order-summary", Categories: []string{"order"},
			Handler: meowmx.HandleEach(func(ctx context.Context, tx TTx, ev meowmx.RecordedEvent) error {
				var err error
				switch ev.Type {
				case "OrderPlaced":
					var placed orderPlaced
					if err := json.Unmarshal(ev.Data, &placed); err != nil {
						return err
					}
					err = sqlx.exec(ctx, tx, `INSERT INTO `+summary+` (order_id, status, total, version) VALUES ($1, 'placed', $2, $3)`, ev.Stream.ID, placed.Total, ev.Version)
				case "OrderPaid":
					err = sqlx.exec(ctx, tx, `UPDATE `+summary+` SET status = 'paid', version = $2 WHERE order_id = $1`, ev.Stream.ID, ev.Version)
				case "OrderShipped":
					err = sqlx.exec(ctx, tx, `UPDATE `+summary+` SET status = 'shipped', version = $2 WHERE order_id = $1`, ev.Stream.ID, ev.Version)
				}
				if err == nil {
					d.summarized.Add(1)
				}
				return err
			}),
		},
		{
			// Each paid order gets a shipment stream, written in the
			// worker's transaction: exactly once, even when retried.
			Name: "demo-shipping", Categories: []string{"order"}, Types: []string{"OrderPaid"},
			Handler: meowmx.HandleEach(func(ctx context.Context, tx TTx, ev meowmx.RecordedEvent) error {
				data, _ := json.Marshal(map[string]string{"order_id": ev.Stream.ID, "carrier": "cat-express"})
				_, err := store.AppendTx(ctx, tx, meowmx.NewStream("shipment", ev.Stream.ID), meowmx.NoStream, meowmx.Event{
					ID:   uuid.NewSHA1(ev.ID, []byte("shipment")),
					Type: "ShipmentScheduled", Data: data,
					Metadata: json.RawMessage(fmt.Sprintf(`{"causation_id":%q}`, ev.ID)),
				})
				if err == nil {
					d.shipped.Add(1)
				}
				return err
			}),
		},
		{
			Name: "demo-tracking",
			Handler: func(ctx context.Context, tx TTx, events []meowmx.RecordedEvent) error {
				counts := map[string]int64{}
				for _, ev := range events {
					counts[ev.Stream.Category]++
				}
				for category, n := range counts {
					if err := sqlx.exec(ctx, tx, `INSERT INTO `+tracking+` (category, events) VALUES ($1, $2)
ON CONFLICT (category) DO UPDATE SET events = `+tracking+`.events + excluded.events`, category, n); err != nil {
						return err
					}
				}
				d.seen.Add(int64(len(events)))
				return nil
			},
		},
	}
	var subs []*meowmx.Subscription[TTx]
	defer func() {
		for _, sub := range subs {
			stopCtx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			_ = sub.Stop(stopCtx)
			cancel()
		}
	}()
	for _, cfg := range handlers {
		cfg.PollInterval = 100 * time.Millisecond
		cfg.Logger = logger(d.env)
		sub, err := store.Subscribe(cfg)
		if err != nil {
			return err
		}
		if err := sub.Start(context.WithoutCancel(ctx)); err != nil {
			return err
		}
		subs = append(subs, sub)
	}

	// The writers.
	started := time.Now()
	progressDone := make(chan struct{})
	progressStopped := make(chan struct{})
	go d.progress(progressDone, progressStopped)
	err := d.write(ctx, runID, store)
	if err == nil {
		err = d.waitCaughtUp(ctx, store)
	}
	close(progressDone)
	<-progressStopped
	if err != nil {
		if ctx.Err() != nil {
			// Interrupted: say how far it went.
			fmt.Fprintf(d.env.stdout, "\ninterrupted: %d order events written, %d handled by order-summary, %d shipments scheduled, %d events tracked; nothing was checked\n",
				d.written.Load(), d.summarized.Load(), d.shipped.Load(), d.seen.Load())
		}
		return err
	}
	elapsed := time.Since(started)

	// The summary, and the check.
	mismatches, orders, err := d.verify(ctx, store, sqlx.query, summary)
	if err != nil {
		return err
	}
	out := d.env.stdout
	fmt.Fprintf(out, "\nwritten:    %d order events in %s (%.0f events/s), %d conflicts retried\n",
		d.written.Load(), elapsed.Round(time.Millisecond), float64(d.written.Load())/elapsed.Seconds(), d.conflicts.Load())
	fmt.Fprintf(out, "processed:  order-summary %d, shipping %d shipments, tracking %d events (the orders' and the shipments')\n",
		d.summarized.Load(), d.shipped.Load(), d.seen.Load())
	if mismatches > 0 {
		fmt.Fprintf(out, "read model: %d of %d orders do NOT match their event streams\n", mismatches, orders)
		return fmt.Errorf("the read model does not match the event streams for %d orders", mismatches)
	}
	fmt.Fprintf(out, "read model: all %d orders match their event streams\n", orders)
	fmt.Fprintf(out, "\nTry next:\n")
	for _, words := range [][]string{
		{"status"},
		{"read --category order --format text | tail"},
		{"streams --category order --limit 5"},
		{"subscriptions"},
	} {
		fmt.Fprintf(out, "  %s\n", commandLine(d.env, d.db, words...))
	}
	return nil
}

// write has the writers place, pay and ship the run's orders. They work on
// a small window of orders at once, so that they collide: a conflict reloads
// the order and decides again.
func (d *demo) write(ctx context.Context, runID string, store interface {
	ReadStream(context.Context, meowmx.Stream, *meowmx.ReadStreamOpts) ([]meowmx.RecordedEvent, error)
	Append(context.Context, meowmx.Stream, meowmx.ExpectedVersion, ...meowmx.Event) ([]meowmx.RecordedEvent, error)
}) error {
	var (
		mu     sync.Mutex
		next   int   // next order to open
		window []int // orders in progress
	)
	const windowSize = 8
	pick := func() (int, bool) {
		mu.Lock()
		defer mu.Unlock()
		for len(window) < windowSize && next < d.orders {
			window = append(window, next)
			next++
		}
		if len(window) == 0 {
			return 0, false
		}
		return window[rand.IntN(len(window))], true
	}
	finish := func(order int) {
		mu.Lock()
		defer mu.Unlock()
		if i := indexOf(window, order); i >= 0 {
			window = append(window[:i], window[i+1:]...)
		}
	}
	errs := make(chan error, d.writers)
	var wg sync.WaitGroup
	for range d.writers {
		wg.Go(func() {
			for ctx.Err() == nil {
				order, ok := pick()
				if !ok {
					return
				}
				stream := meowmx.NewStream("order", fmt.Sprintf("%s-%05d", runID, order))
				// It decides on what it reads: from the primary, never
				// from a --replica that may lag.
				events, err := store.ReadStream(ctx, stream, &meowmx.ReadStreamOpts{Primary: true})
				if err != nil {
					errs <- err
					return
				}
				var ev meowmx.Event
				switch len(events) {
				case 0:
					items := []string{menu[rand.IntN(len(menu))], menu[rand.IntN(len(menu))]}
					data, _ := json.Marshal(orderPlaced{Items: items, Total: int64(100 + rand.IntN(900))})
					ev = meowmx.Event{Type: "OrderPlaced", Data: data}
				case 1:
					ev = meowmx.Event{Type: "OrderPaid", Data: json.RawMessage(`{"method":"card"}`)}
				case 2:
					ev = meowmx.Event{Type: "OrderShipped", Data: json.RawMessage(`{"parcels":1}`)}
				default:
					finish(order)
					continue
				}
				time.Sleep(time.Duration(rand.IntN(500)) * time.Microsecond) // think
				_, err = store.Append(ctx, stream, meowmx.ExpectedVersion(int64(len(events))-1), ev)
				switch {
				case errors.Is(err, meowmx.ErrVersionConflict):
					d.conflicts.Add(1) // another writer was first: reload and decide again
				case err != nil:
					errs <- err
					return
				default:
					d.written.Add(1)
					if ev.Type == "OrderShipped" {
						finish(order)
					}
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		return err
	}
	return ctx.Err()
}

func indexOf(s []int, v int) int {
	for i, x := range s {
		if x == v {
			return i
		}
	}
	return -1
}

// waitCaughtUp waits until every demo subscription has handled everything:
// shipping first, whose handler appends the shipments, then the others,
// which handle the shipments too.
func (d *demo) waitCaughtUp(ctx context.Context, store interface {
	WaitCaughtUp(context.Context, string) error
}) error {
	for _, name := range []string{"demo-shipping", "demo-order-summary", "demo-tracking"} {
		if err := store.WaitCaughtUp(ctx, name); err != nil {
			return err
		}
	}
	return nil
}

// verify compares every order of the read model, from every run, with its
// stream's last event.
func (d *demo) verify(ctx context.Context, store interface {
	LastEvent(context.Context, meowmx.Stream) (meowmx.RecordedEvent, error)
}, query func(context.Context, string) (rows, error), summary string) (mismatches, orders int, err error) {
	type row struct {
		id, status string
		version    int64
	}
	rs, err := query(ctx, `SELECT order_id, status, version FROM `+summary)
	if err != nil {
		return 0, 0, err
	}
	var stored []row
	for rs.Next() {
		var r row
		if err := rs.Scan(&r.id, &r.status, &r.version); err != nil {
			rs.Close()
			return 0, 0, err
		}
		stored = append(stored, r)
	}
	rs.Close()
	if err := rs.Err(); err != nil {
		return 0, 0, err
	}
	status := map[string]string{"OrderPlaced": "placed", "OrderPaid": "paid", "OrderShipped": "shipped"}
	for _, r := range stored {
		last, err := store.LastEvent(ctx, meowmx.NewStream("order", r.id))
		if err != nil {
			return 0, 0, err
		}
		if status[last.Type] != r.status || last.Version != r.version {
			mismatches++
			fmt.Fprintf(d.env.stderr, "order %s: read model says %s at version %d, the stream ends with %s at version %d\n",
				r.id, r.status, r.version, last.Type, last.Version)
		}
	}
	return mismatches, len(stored), nil
}

// progress shows a live counter on a terminal, plain lines otherwise.
func (d *demo) progress(done <-chan struct{}, stopped chan<- struct{}) {
	defer close(stopped)
	tty := false
	if f, ok := d.env.stdout.(*os.File); ok {
		if fi, err := f.Stat(); err == nil && fi.Mode()&os.ModeCharDevice != 0 {
			tty = true
		}
	}
	interval := time.Second
	if tty {
		interval = 100 * time.Millisecond
	}
	target := int64(d.orders * 3)
	line := func() string {
		return fmt.Sprintf("written %d/%d, conflicts %d | order-summary %d, shipping %d, tracking %d",
			d.written.Load(), target, d.conflicts.Load(), d.summarized.Load(), d.shipped.Load(), d.seen.Load())
	}
	ticker := time.NewTicker(interval)
	defer ticker.Stop()
	for {
		select {
		case <-done:
			if tty {
				fmt.Fprintf(d.env.stdout, "\r\033[K%s\n", line())
			} else {
				fmt.Fprintln(d.env.stdout, line())
			}
			return
		case <-ticker.C:
			if tty {
				fmt.Fprintf(d.env.stdout, "\r\033[K%s", line())
			} else {
				fmt.Fprintln(d.env.stdout, line())
			}
		}
	}
}
