// Package retrypolicy is meowmx's one way of waiting before trying again:
// exponential backoff with full jitter, and a jittered period for polls and
// heartbeats, so that processes that failed together do not retry together.
package retrypolicy

import (
	"math/rand/v2"
	"time"
)

// Backoff waits Base before the first retry and doubles the bound at each
// retry up to Ceiling; each wait is drawn uniformly between zero and the
// bound ("full jitter").
type Backoff struct {
	Base, Ceiling time.Duration
}

// Wait returns the wait before retry number attempt, from 1.
func (b Backoff) Wait(attempt int) time.Duration {
	attempt = max(attempt, 1)
	bound := b.Ceiling
	if attempt <= 62 {
		if d := b.Base << (attempt - 1); d > 0 && d>>(attempt-1) == b.Base && d < bound {
			bound = d
		}
	}
	return uniform(bound)
}

// Jitter returns d scaled by a random factor between 0.8 and 1.2, for
// periodic work (polls, lease renewals) that many processes run.
func Jitter(d time.Duration) time.Duration {
	return d*8/10 + uniform(d*4/10)
}

// uniform returns a duration drawn uniformly from [0, d).
func uniform(d time.Duration) time.Duration {
	if d <= 0 {
		return 0
	}
	return time.Duration(rand.Int64N(int64(d)))
}
