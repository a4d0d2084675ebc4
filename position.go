package meowmx

import "github.com/meowmx/meowmx/meowmxtype"

// Position is a place in the store's global order: every event has one, and
// reads "after a position" return the events that follow it. On PostgreSQL
// it is the pair (id of the transaction that wrote the event, sequence
// number); on SQLite the transaction part is always zero. Its string form,
// "TX/SEQ" (such as "7615/120"), parses back with ParsePosition.
type Position = meowmxtype.Position

// Start is the position before every event.
var Start = meowmxtype.Start

// ParsePosition parses the "TX/SEQ" form that Position.String returns.
func ParsePosition(s string) (Position, error) { return meowmxtype.ParsePosition(s) }
