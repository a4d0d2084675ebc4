package retrypolicy

import (
	"math"
	"testing"
	"time"
)

func TestBackoffBounds(t *testing.T) {
	b := Backoff{Base: 10 * time.Millisecond, Ceiling: time.Second}
	for _, c := range []struct {
		attempt int
		bound   time.Duration
	}{
		{0, 10 * time.Millisecond}, {1, 10 * time.Millisecond}, {2, 20 * time.Millisecond},
		{7, 640 * time.Millisecond}, {8, time.Second}, {63, time.Second}, {math.MaxInt, time.Second},
	} {
		var most time.Duration
		for range 2000 {
			w := b.Wait(c.attempt)
			if w < 0 || w >= c.bound {
				t.Fatalf("attempt %d waited %s, want within [0, %s)", c.attempt, w, c.bound)
			}
			most = max(most, w)
		}
		// Full jitter spreads the waits over the whole range.
		if most < c.bound/2 {
			t.Fatalf("attempt %d: the longest of 2000 waits was %s, want some over %s", c.attempt, most, c.bound/2)
		}
	}
	if w := (Backoff{Base: time.Hour << 20, Ceiling: time.Duration(math.MaxInt64)}).Wait(40); w < 0 {
		t.Fatalf("overflowing bound gave %s", w)
	}
	if w := (Backoff{}).Wait(3); w != 0 {
		t.Fatalf("zero backoff waited %s", w)
	}
}

func TestJitter(t *testing.T) {
	for range 2000 {
		if w := Jitter(time.Second); w < 800*time.Millisecond || w > 1200*time.Millisecond {
			t.Fatalf("jitter of 1s gave %s", w)
		}
	}
	if Jitter(0) != 0 {
		t.Fatal("jitter of zero is not zero")
	}
}
