package meowmx

import (
	"context"
	"fmt"

	"github.com/meowmx/meowmx/meowmxtype"
)

// Position is a place in the store's global order: every event has one, and
// reads "after a position" return the events that follow it. On PostgreSQL
// it is the pair (id of the transaction that wrote the event, sequence
// number); on SQLite the transaction part is always zero. Its string form,
// "TX/SEQ" (such as "7615/120"), parses back with ParsePosition.
type Position = meowmxtype.Position

// Start is the position before every event.
var Start = meowmxtype.Start

// End is the position after every event, where a backward read starts (see
// ReadQueryOpts.Backward).
var End = meowmxtype.End

// ParsePosition parses the "TX/SEQ" form that Position.String returns.
func ParsePosition(s string) (Position, error) { return meowmxtype.ParsePosition(s) }

// PositionNumbers returns positions as numbers, for clients that need a
// position to be one number (JavaScript, the DCB HTTP contract that
// meowmxhttp serves): numbers increase in global order, Start is 0, and all
// are below 2^53, so a JSON number holds them exactly. NumberPosition turns
// a number back into a position.
//
// On SQLite the number is the sequence number. On PostgreSQL it is the
// transaction ID times 2^21 plus the distance of the sequence number from
// the first one of the event's transaction, which costs one primary-key
// lookup per distinct transaction, in one round trip to the primary. A
// position that is not an event's has no number (ErrInvalidInput), nor, on
// PostgreSQL, one whose transaction ID is 2^32 or more or that lies 2^21
// sequence numbers or more into its transaction (a transaction during
// which that many were drawn): an error matching errors.ErrUnsupported.
func (s *Store[TTx]) PositionNumbers(ctx context.Context, positions ...Position) ([]int64, error) {
	if err := s.checkUsable(ctx); err != nil {
		return nil, err
	}
	numbers, err := s.driver.Executor().PositionNumbers(ctx, s.config.Schema, positions)
	if err != nil {
		return nil, fmt.Errorf("meowmx: position numbers: %w", err)
	}
	return numbers, nil
}

// NumberPosition returns the position p of number n (see PositionNumbers):
// an event is after p exactly when its number is above n. 0 (or less) is
// Start.
func (s *Store[TTx]) NumberPosition(ctx context.Context, n int64) (Position, error) {
	if err := s.checkUsable(ctx); err != nil {
		return Position{}, err
	}
	p, err := s.driver.Executor().NumberPosition(ctx, s.config.Schema, n)
	if err != nil {
		return Position{}, fmt.Errorf("meowmx: position of number %d: %w", n, err)
	}
	return p, nil
}
