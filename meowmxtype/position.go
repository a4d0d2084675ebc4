package meowmxtype

import (
	"cmp"
	"math"
	"strconv"
	"strings"
)

// Position is a place in the store's global order: every event has one, and
// reads "after a position" return the events that follow it. On PostgreSQL
// it is the pair (id of the transaction that wrote the event, sequence
// number); on SQLite the transaction part is always zero.
//
// Its string form, "TX/SEQ" (such as "7615/120"), parses back with
// ParsePosition.
type Position struct {
	TransactionID uint64
	Seq           int64
}

// Start is the position before every event.
var Start = Position{}

// End is the position after every event, where a backward read starts.
var End = Position{TransactionID: math.MaxUint64, Seq: math.MaxInt64}

// String returns the position as "TX/SEQ".
func (p Position) String() string {
	return strconv.FormatUint(p.TransactionID, 10) + "/" + strconv.FormatInt(p.Seq, 10)
}

// Compare returns -1, 0 or +1 as p is before, equal to or after q.
func (p Position) Compare(q Position) int {
	if c := cmp.Compare(p.TransactionID, q.TransactionID); c != 0 {
		return c
	}
	return cmp.Compare(p.Seq, q.Seq)
}

// ParsePosition parses the "TX/SEQ" form that Position.String returns.
func ParsePosition(s string) (Position, error) {
	txText, seqText, ok := strings.Cut(s, "/")
	if !ok {
		return Position{}, Invalid("position %q: want TX/SEQ, such as 0/42", s)
	}
	tx, err := strconv.ParseUint(txText, 10, 64)
	if err != nil || txText[0] == '+' {
		return Position{}, Invalid("position %q: transaction part is not an unsigned integer", s)
	}
	seq, err := strconv.ParseInt(seqText, 10, 64)
	if err != nil || seq < 0 || seqText[0] == '+' {
		return Position{}, Invalid("position %q: sequence part is not an unsigned integer", s)
	}
	return Position{TransactionID: tx, Seq: seq}, nil
}

// MarshalText returns the position's string form.
func (p Position) MarshalText() ([]byte, error) { return []byte(p.String()), nil }

// UnmarshalText parses the position's string form.
func (p *Position) UnmarshalText(text []byte) error {
	parsed, err := ParsePosition(string(text))
	if err != nil {
		return err
	}
	*p = parsed
	return nil
}
