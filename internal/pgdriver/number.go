package pgdriver

import (
	"context"
	"errors"
	"fmt"
	"strconv"

	"github.com/meowmx/meowmx/meowmxtype"
)

// A position's number is its transaction ID shifted left by numberBits,
// plus the distance of its sequence number from the first one its
// transaction wrote. Transactions are in commit order's place in the global
// order, and within one the sequence numbers increase, so the numbers
// increase in global order; below 2^53 they are exact in a JSON number.
const (
	numberBits = 21
	// maxNumberTx is the first transaction ID whose numbers reach 2^53.
	maxNumberTx = 1 << (53 - numberBits)
)

// transactionStarts returns, for each transaction ID, the sequence number of
// its first event, or 0 when it wrote none.
func (e *executor) transactionStarts(ctx context.Context, schema string, txs []uint64) ([]int64, error) {
	db, release, err := e.acquire(ctx, schema)
	if err != nil {
		return nil, err
	}
	defer release()
	ids := make([]string, len(txs))
	for i, tx := range txs {
		ids[i] = strconv.FormatUint(tx, 10)
	}
	rows, err := db.Query(ctx, fmt.Sprintf(`SELECT coalesce((SELECT e.seq FROM %s.events e
   WHERE e.transaction_id = u.tx::xid8 ORDER BY e.seq LIMIT 1), 0)
  FROM unnest($1::text[]) WITH ORDINALITY AS u(tx, i) ORDER BY u.i`, e.driver.statements(schema).ident), ids)
	if err != nil {
		return nil, mapError(err)
	}
	defer rows.Close()
	starts := make([]int64, 0, len(txs))
	for rows.Next() {
		var seq int64
		if err := rows.Scan(&seq); err != nil {
			return nil, mapError(err)
		}
		starts = append(starts, seq)
	}
	if err := rows.Err(); err != nil {
		return nil, mapError(err)
	}
	if len(starts) != len(txs) {
		return nil, fmt.Errorf("transaction starts: %d rows for %d transactions", len(starts), len(txs))
	}
	return starts, nil
}

func (e *executor) PositionNumbers(ctx context.Context, schema string, positions []meowmxtype.Position) ([]int64, error) {
	numbers := make([]int64, len(positions))
	index := map[uint64]int{}
	var txs []uint64
	for _, p := range positions {
		if p == meowmxtype.Start {
			continue
		}
		if p.TransactionID >= maxNumberTx {
			return nil, fmt.Errorf("%w: position %s has no number: its transaction ID is 2^%d or more", errors.ErrUnsupported, p, 53-numberBits)
		}
		if _, ok := index[p.TransactionID]; !ok {
			index[p.TransactionID] = len(txs)
			txs = append(txs, p.TransactionID)
		}
	}
	if len(txs) == 0 {
		return numbers, nil
	}
	starts, err := e.transactionStarts(ctx, schema, txs)
	if err != nil {
		return nil, err
	}
	for i, p := range positions {
		if p == meowmxtype.Start {
			continue
		}
		first := starts[index[p.TransactionID]]
		offset := p.Seq - first
		if first == 0 || offset < 0 {
			return nil, meowmxtype.Invalid("position %s has no number: it is not an event's", p)
		}
		if offset >= 1<<numberBits {
			return nil, fmt.Errorf("%w: position %s has no number: %d sequence numbers from its transaction's first", errors.ErrUnsupported, p, offset)
		}
		numbers[i] = int64(p.TransactionID<<numberBits) | offset
	}
	return numbers, nil
}

func (e *executor) NumberPosition(ctx context.Context, schema string, n int64) (meowmxtype.Position, error) {
	if n <= 0 {
		return meowmxtype.Start, nil
	}
	tx, offset := uint64(n)>>numberBits, n&(1<<numberBits-1)
	starts, err := e.transactionStarts(ctx, schema, []uint64{tx})
	if err != nil {
		return meowmxtype.Position{}, err
	}
	if starts[0] == 0 {
		// No event has a number of this transaction's: the start of the
		// transaction is as good a place as any within it.
		return meowmxtype.Position{TransactionID: tx}, nil
	}
	return meowmxtype.Position{TransactionID: tx, Seq: starts[0] + offset}, nil
}
