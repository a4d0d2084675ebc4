package meowmxhttp

import (
	"testing"
	"time"
)

// TestNextLook: after a wake-up that found nothing, a tail looks again
// soon and less often each time, but at least once a second whatever its
// poll interval, so that events behind a long-held visibility horizon show
// within a second of its end; otherwise it waits for the poll interval.
func TestNextLook(t *testing.T) {
	for _, poll := range []time.Duration{time.Hour, time.Second, 300 * time.Millisecond} {
		wait, chase := nextLook(poll, chaseFirst, true)
		if wait != min(chaseFirst, poll) {
			t.Errorf("poll %v: first look after %v, want %v", poll, wait, chaseFirst)
		}
		for range 40 { // far past any doubling to the poll interval
			prev := chase
			if wait, chase = nextLook(poll, chase, true); wait != prev {
				t.Fatalf("poll %v: waited %v, want the chase %v", poll, wait, prev)
			}
		}
		if want := min(time.Second, poll); wait != want {
			t.Errorf("poll %v: still waiting %v between looks behind the horizon, want %v", poll, wait, want)
		}
		if wait, chase = nextLook(poll, chase, false); wait != poll || chase != 0 {
			t.Errorf("poll %v: after finding events, wait %v and chase %v, want the poll interval and none", poll, wait, chase)
		}
		if wait, _ = nextLook(poll, 0, true); wait != poll {
			t.Errorf("poll %v: with no wake-up, wait %v, want the poll interval", poll, wait)
		}
	}
}
