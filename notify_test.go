package meowmx

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/meowmx/meowmx/internal/testdb"
)

// TestAnnouncerCloseBounded: closing sends what is pending, but gives up on
// a notification that hangs (an unreachable database) after its bound,
// cancelling it, and says so.
func TestAnnouncerCloseBounded(t *testing.T) {
	t.Parallel()
	var (
		mu   sync.Mutex
		sent [][]string
		log  bytes.Buffer
	)
	hang := make(chan struct{})
	a := newAnnouncer(func(ctx context.Context, categories []string) error {
		mu.Lock()
		sent = append(sent, categories)
		mu.Unlock()
		if categories[0] == "hang" {
			close(hang)
			<-ctx.Done() // never answers until cancelled
			return ctx.Err()
		}
		return nil
	}, slog.New(slog.NewTextHandler(&log, nil)))

	a.add("order")
	a.close(time.Hour) // returns once sent
	mu.Lock()
	if len(sent) != 1 || sent[0][0] != "order" {
		t.Fatalf("sent %v before closing, want [order]", sent)
	}
	mu.Unlock()

	b := newAnnouncer(a.send, a.logger)
	b.add("hang")
	<-hang
	b.close(10 * time.Millisecond) // must return: the hanging send is cancelled
	if !strings.Contains(log.String(), "closed before other processes could be notified") {
		t.Fatalf("no warning about the lost notification: %q", log.String())
	}
	b.add("late") // after close: nothing is sent, nothing blocks
	b.close(time.Hour)
	mu.Lock()
	defer mu.Unlock()
	if len(sent) != 2 {
		t.Fatalf("sent %v, want nothing after close", sent)
	}
}

// TestHubListenOutage: a listening session that fails is started again; the
// outage is logged once when it begins and once when it ends, and every
// subscriber is woken each time a session starts.
func TestHubListenOutage(t *testing.T) {
	t.Parallel()
	var log testdb.Buffer
	sessions := make(chan int, 10)
	n := 0
	h := newHub(func(ctx context.Context, listening func(), wake func(string)) error {
		n++
		sessions <- n
		switch n {
		case 1:
			listening()
			return errors.New("connection reset") // the outage begins
		case 2, 3:
			return errors.New("connection refused") // and goes on
		}
		listening() // it ends
		wake("order")
		<-ctx.Done()
		return nil
	}, slog.New(slog.NewTextHandler(&log, nil)))
	woken := make(chan struct{}, 10)
	unregister := h.register([]string{"order"}, func() { woken <- struct{}{} })
	for range 3 { // session 1's start, session 4's start, and its notification
		testdb.Recv(t, woken, "a wake-up")
	}
	unregister() // ends session 4 and waits for it
	if n != 4 {
		t.Fatalf("%d sessions, want 4", n)
	}
	warns, infos := strings.Count(log.String(), "cannot listen for appends"), strings.Count(log.String(), "listening for appends again")
	if warns != 1 || infos != 1 {
		t.Fatalf("logged %d warnings and %d recoveries, want 1 and 1: %s", warns, infos, log.String())
	}
}
