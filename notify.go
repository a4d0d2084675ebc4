package meowmx

import (
	"context"
	"errors"
	"log/slog"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/meowmx/meowmx/internal/retrypolicy"
	"github.com/meowmx/meowmx/meowmxdriver"
)

// hub wakes the subscriptions of this process when events of their
// categories are appended: by this process (after Append commits), or by any
// process when the driver has notifications (one LISTEN connection per
// store, held while at least one subscription runs).
type hub struct {
	listen func(ctx context.Context, listening func(), wake func(category string)) error
	logger *slog.Logger
	// failed, when set, is told of every failure to listen.
	failed func(err error)

	mu     sync.Mutex
	next   int
	subs   map[int]hubSub
	cancel context.CancelFunc
	done   chan struct{}
}

type hubSub struct {
	categories []string // empty: all
	wake       func()
}

func newHub(listen func(ctx context.Context, listening func(), wake func(string)) error, logger *slog.Logger) *hub {
	return &hub{listen: listen, logger: logger, subs: map[int]hubSub{}}
}

// register adds a subscriber and returns the function that removes it.
func (h *hub) register(categories []string, wake func()) func() {
	h.mu.Lock()
	defer h.mu.Unlock()
	id := h.next
	h.next++
	h.subs[id] = hubSub{categories: categories, wake: wake}
	if h.cancel == nil {
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		h.cancel, h.done = cancel, done
		go func() {
			defer close(done)
			h.run(ctx)
		}()
	}
	return func() {
		h.mu.Lock()
		delete(h.subs, id)
		var cancel context.CancelFunc
		var done chan struct{}
		if len(h.subs) == 0 && h.cancel != nil {
			cancel, done = h.cancel, h.done
			h.cancel, h.done = nil, nil
		}
		h.mu.Unlock()
		if cancel != nil {
			cancel()
			<-done
		}
	}
}

// listenBackoff spaces the attempts to listen again after a session failed.
var listenBackoff = retrypolicy.Backoff{Base: 100 * time.Millisecond, Ceiling: 10 * time.Second}

// run listens until ctx ends, starting a new session with listenBackoff
// after each failure. Subscriptions poll meanwhile; an outage is logged
// once, when it begins, and its end once. Every subscriber is woken each
// time a session starts, for what was appended while none listened.
func (h *hub) run(ctx context.Context) {
	failures := 0
	listening := func() {
		if failures > 0 {
			h.logger.Info("meowmx: listening for appends again")
		}
		failures = 0
		h.notify("")
	}
	for {
		err := h.listen(ctx, listening, h.notify)
		if ctx.Err() != nil {
			return
		}
		if errors.Is(err, meowmxdriver.ErrNoListen) {
			if err != meowmxdriver.ErrNoListen {
				// A driver that could listen but is configured not to.
				h.logger.Warn("meowmx: not listening for appends of other processes", slog.String("err", err.Error()))
			}
			return
		}
		if err == nil {
			err = errors.New("the listening session ended")
		}
		if h.failed != nil {
			h.failed(err)
		}
		if failures++; failures == 1 {
			h.logger.Warn("meowmx: cannot listen for appends of other processes; subscriptions poll until it works again",
				slog.String("err", err.Error()))
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(listenBackoff.Wait(failures)):
		}
	}
}

// notify wakes the subscribers of category; "" wakes everyone.
func (h *hub) notify(category string) {
	h.mu.Lock()
	var wakes []func()
	for _, s := range h.subs {
		if category == "" || len(s.categories) == 0 || slices.Contains(s.categories, category) {
			wakes = append(wakes, s.wake)
		}
	}
	h.mu.Unlock()
	for _, wake := range wakes {
		wake()
	}
}

// Changes returns a channel that receives a value whenever events of one
// of categories (of any category when none are given) may have been
// committed: at once for this store's appends, and, on PostgreSQL, for
// other processes' through LISTEN/NOTIFY (which other processes send while
// a subscription worker is alive in the schema, see notifyWhileListened).
// Values do not queue: one waits
// at most, standing for every change since the last was received. A
// notification can be lost (a connection dropped, an AppendTx rolled
// back after its notice went out, or a commit still hidden behind the
// visibility horizon when it arrives), so a reader that waits on the
// channel also reads again after a timeout of its choosing. stop ends
// the deliveries; the channel is not closed.
func (s *Store[TTx]) Changes(categories ...string) (changes <-chan struct{}, stop func()) {
	ch := make(chan struct{}, 1)
	unregister := s.hub.register(slices.Clone(categories), func() {
		select {
		case ch <- struct{}{}:
		default:
		}
	})
	var once sync.Once
	return ch, func() { once.Do(unregister) }
}

// announce tells the subscriptions of category that an append was made: at
// once those of this process, and through the driver's notifications those
// of every process. After AppendTx the notification may arrive before the
// caller commits; subscriptions that find nothing new look again shortly
// after (see the worker's chase), so the early notice costs a re-read, not a
// missed event.
func (s *Store[TTx]) announce(category string) {
	s.hub.notify(category)
	s.out.add(category)
}

// announcer sends the driver's notifications outside the appends'
// transactions, so that appends do not wait for one another: on PostgreSQL a
// NOTIFY inside a transaction holds a lock, cluster-wide, from before its
// commit until after its commit record is flushed, which serializes every
// notifying commit and defeats group commit. Categories announced while a
// notification is being sent are gathered into the next one: one statement
// in flight per store, and at most one per notifyInterval, whatever the rate
// of appends.
type announcer struct {
	send   func(ctx context.Context, categories []string) error
	logger *slog.Logger
	// failed, when set, is told of every notification that failed.
	failed func(err error)
	// ctx ends the notification in flight when Close gives up waiting.
	ctx    context.Context
	cancel context.CancelFunc

	mu       sync.Mutex
	pending  map[string]struct{}
	running  bool
	disabled bool // the driver has no notifications
	failing  bool
	idle     chan struct{} // closed while no sender runs; a new, open one while one does
}

const (
	// notifyTimeout bounds one notification statement.
	notifyTimeout = 5 * time.Second
	// notifyInterval is the shortest time between the starts of two
	// notification statements of a store.
	notifyInterval = time.Millisecond
)

func newAnnouncer(send func(ctx context.Context, categories []string) error, logger *slog.Logger) *announcer {
	ctx, cancel := context.WithCancel(context.Background())
	idle := make(chan struct{})
	close(idle)
	return &announcer{send: send, logger: logger, ctx: ctx, cancel: cancel, pending: map[string]struct{}{}, idle: idle}
}

func (a *announcer) add(category string) {
	a.mu.Lock()
	if a.disabled || a.ctx.Err() != nil {
		a.mu.Unlock()
		return
	}
	a.pending[category] = struct{}{}
	if a.running {
		a.mu.Unlock()
		return
	}
	a.running = true
	a.idle = make(chan struct{})
	a.mu.Unlock()
	go a.flush()
}

func (a *announcer) flush() {
	for {
		a.mu.Lock()
		if len(a.pending) == 0 || a.disabled || a.ctx.Err() != nil {
			a.running = false
			close(a.idle)
			a.mu.Unlock()
			return
		}
		categories := slices.Sorted(maps.Keys(a.pending))
		clear(a.pending)
		a.mu.Unlock()

		began := time.Now()
		ctx, cancel := context.WithTimeout(a.ctx, notifyTimeout)
		err := a.send(ctx, categories)
		cancel()
		// Let the next appends gather for a moment: under a steady stream
		// of appends, one notification per millisecond at most.
		time.Sleep(notifyInterval - time.Since(began))

		if err != nil && a.failed != nil && a.ctx.Err() == nil && !errors.Is(err, meowmxdriver.ErrNoListen) {
			a.failed(err)
		}
		a.mu.Lock()
		switch {
		case errors.Is(err, meowmxdriver.ErrNoListen):
			a.disabled = true
		case err != nil && a.ctx.Err() != nil:
			a.logger.Warn("meowmx: the store was closed before other processes could be notified of its last appends; their subscriptions find them at their next poll",
				slog.String("err", err.Error()))
		case err != nil && !a.failing:
			// Subscriptions elsewhere still poll; say so once per outage.
			a.failing = true
			a.logger.Warn("meowmx: cannot notify other processes of appends; their subscriptions poll until it works again",
				slog.String("err", err.Error()))
		case err == nil && a.failing:
			a.failing = false
			a.logger.Info("meowmx: notifying other processes of appends again")
		}
		a.mu.Unlock()
	}
}

// close sends what is pending, waiting at most timeout, then stops: a
// notification still in flight is cancelled.
func (a *announcer) close(timeout time.Duration) {
	a.mu.Lock()
	idle := a.idle
	a.mu.Unlock()
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	select {
	case <-idle:
	case <-timer.C:
		a.cancel()
		<-idle
	}
	a.cancel()
}

// notifyWhileListened returns the announcer's send for a store: it notifies
// through the driver only while a subscription worker of the schema is
// alive in some process (looked up at most once per listenersCheckEvery). A
// notification costs the database a transaction, about a tenth of an
// append's throughput when sent every millisecond; a worker that starts
// reads at once and then polls, so the notifications it misses until the
// next look delay nothing it has not already read. A driver without
// notifications says so to a first, empty Notify, which ends the
// announcer's work for good.
func notifyWhileListened[TTx any](driver meowmxdriver.Driver[TTx], schema string) func(context.Context, []string) error {
	var (
		mu      sync.Mutex // held by the announcer's one sender at a time
		checked time.Time
		alive   bool
	)
	return func(ctx context.Context, categories []string) error {
		mu.Lock()
		defer mu.Unlock()
		if checked.IsZero() {
			// A driver without notifications says so to an empty Notify,
			// before anything is asked of its database.
			if err := driver.Notify(ctx, schema, nil); err != nil {
				return err
			}
		}
		if time.Since(checked) >= listenersCheckEvery {
			now, err := driver.Executor().WorkersAlive(ctx, schema)
			if err != nil {
				return err
			}
			alive, checked = now, time.Now()
		}
		if !alive {
			return nil
		}
		return driver.Notify(ctx, schema, categories)
	}
}

// listenersCheckEvery is how long a store trusts its last look for live
// subscription workers before notifying.
const listenersCheckEvery = time.Second
