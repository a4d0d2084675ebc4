package testdb

import (
	"os"
	"testing"
	"time"
)

// StallTimeout is how long Eventually waits without seeing any progress:
// $MEOWMX_TEST_STALL, or two minutes.
func StallTimeout() time.Duration {
	if d, err := time.ParseDuration(os.Getenv("MEOWMX_TEST_STALL")); err == nil && d > 0 {
		return d
	}
	return 2 * time.Minute
}

// Eventually calls cond until it reports true. cond also describes the
// state it saw ("736 of 2000 events applied"): as long as that description
// keeps changing, the wait goes on, so a busy machine slows a test down
// instead of failing it. The test fails once the state has stayed the same
// for StallTimeout.
func Eventually(tb testing.TB, cond func() (ok bool, state string)) {
	tb.Helper()
	stall := StallTimeout()
	last, since := "", time.Now()
	wait := time.Millisecond
	for {
		ok, state := cond()
		if ok {
			return
		}
		if state != last {
			last, since = state, time.Now()
		} else if time.Since(since) > stall {
			tb.Fatalf("no progress for %s: %s", stall, state)
		}
		time.Sleep(wait)
		wait = min(2*wait, 50*time.Millisecond)
	}
}

// Recv receives from ch, failing the test if nothing arrives within
// StallTimeout; what says what was awaited.
func Recv[T any](tb testing.TB, ch <-chan T, what string) T {
	tb.Helper()
	timer := time.NewTimer(StallTimeout())
	defer timer.Stop()
	select {
	case v := <-ch:
		return v
	case <-timer.C:
		tb.Fatalf("waited %s for %s", StallTimeout(), what)
		panic("unreachable")
	}
}
