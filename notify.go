package meowmx

import (
	"context"
	"errors"
	"log/slog"
	"math/rand/v2"
	"slices"
	"sync"

	"github.com/meowmx/meowmx/meowmxdriver"
)

func randInt64N(n int64) int64 {
	if n <= 0 {
		return 0
	}
	return rand.Int64N(n)
}

// hub wakes the subscriptions of this process when events of their
// categories are appended: by this process (after Append commits), or by any
// process when the driver has notifications (one LISTEN connection per
// store, held while at least one subscription runs).
type hub struct {
	listen func(ctx context.Context, wake func(category string)) error
	logger *slog.Logger

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

func newHub(listen func(ctx context.Context, wake func(string)) error, logger *slog.Logger) *hub {
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
			err := h.listen(ctx, h.notify)
			if err != nil && !errors.Is(err, meowmxdriver.ErrNoListen) {
				h.logger.Warn("meowmx: listening for appends stopped; subscriptions poll", slog.String("err", err.Error()))
			}
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
