package meowmx

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"
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
