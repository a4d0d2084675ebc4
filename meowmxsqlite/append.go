package meowmxsqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"

	"github.com/meowmx/meowmx/meowmxdriver"
	"github.com/meowmx/meowmx/meowmxtype"
)

func (e *executor) Append(ctx context.Context, p *meowmxdriver.AppendParams) (result *meowmxdriver.AppendResult, err error) {
	st := e.driver.statements(p.Schema)
	if e.tx == nil {
		err = e.driver.writeTx(ctx, func(q querier) error {
			result, err = appendEvents(ctx, q, st, p)
			return err
		})
		return result, mapError(err)
	}
	// In the caller's transaction, a savepoint keeps a failed batch from
	// leaving some of its events behind.
	if _, err := e.tx.ExecContext(ctx, "SAVEPOINT meowmx_append"); err != nil {
		return nil, mapError(err)
	}
	result, err = appendEvents(ctx, e.tx, st, p)
	if err != nil {
		_, _ = e.tx.ExecContext(context.WithoutCancel(ctx), "ROLLBACK TO meowmx_append")
	}
	if _, relErr := e.tx.ExecContext(context.WithoutCancel(ctx), "RELEASE meowmx_append"); relErr != nil && err == nil {
		err = relErr
	}
	return result, mapError(err)
}

func appendEvents(ctx context.Context, q querier, st *statements, p *meowmxdriver.AppendParams) (*meowmxdriver.AppendResult, error) {
	var (
		foundCat, foundID string
		foundVersion      int64
	)
	err := q.QueryRowContext(ctx, st.findEventID, uuid.UUID(p.Events[0].ID).String()).Scan(&foundCat, &foundID, &foundVersion)
	switch {
	case err == nil:
		rows, err := queryEvents(ctx, q, st.existingFrom, foundCat, foundID, foundVersion, len(p.Events))
		if err != nil {
			return nil, err
		}
		return &meowmxdriver.AppendResult{Status: meowmxdriver.AppendExisting, Rows: rows}, nil
	case !errors.Is(err, sql.ErrNoRows):
		return nil, err
	}

	var current int64
	if err := q.QueryRowContext(ctx, st.lastVersion, p.Category, p.StreamID).Scan(&current); err != nil {
		return nil, err
	}
	if !p.Expected.Matches(current) {
		return &meowmxdriver.AppendResult{Status: meowmxdriver.AppendConflict, CurrentVersion: current}, nil
	}

	now := time.Now().UTC().Truncate(time.Microsecond)
	result := &meowmxdriver.AppendResult{Status: meowmxdriver.AppendRecorded, CurrentVersion: current}
	// Multi-row INSERTs of up to insertChunk events: one statement per
	// chunk instead of one per event. Writers are serialized, so the
	// AUTOINCREMENT seqs of one statement are consecutive, ending at the
	// last insert id.
	for start := 0; start < len(p.Events); start += insertChunk {
		chunk := p.Events[start:min(start+insertChunk, len(p.Events))]
		args := make([]any, 0, 9*len(chunk))
		ids := make([]string, len(chunk))
		for i, ev := range chunk {
			var metadata any
			if ev.Metadata != nil {
				metadata = string(ev.Metadata)
			}
			ids[i] = uuid.UUID(ev.ID).String()
			args = append(args, p.Category, p.StreamID, p.StreamHash, current+1+int64(start+i), ids[i], ev.Type,
				string(ev.Data), metadata, now.UnixMicro())
		}
		res, err := q.ExecContext(ctx, st.insertEvents(len(chunk)), args...)
		if err != nil {
			return nil, uniqueViolation(ctx, q, st, ids, err)
		}
		last, err := res.LastInsertId()
		if err != nil {
			return nil, err
		}
		for i, ev := range chunk {
			result.Rows = append(result.Rows, meowmxtype.RecordedEvent{
				Position: meowmxtype.Position{Seq: last - int64(len(chunk)-1-i)},
				Stream:   meowmxtype.Stream{Category: p.Category, ID: p.StreamID},
				Version:  current + 1 + int64(start+i), ID: ev.ID, RecordedAt: now,
			})
		}
	}
	return result, nil
}

// insertChunk is the most events one INSERT statement records (9 parameters
// each, well under SQLite's limit of 32,766).
const insertChunk = 100

// uniqueViolation tells a duplicate event ID from a taken version: SQLite's
// error code says a unique constraint failed, not which one.
func uniqueViolation(ctx context.Context, q querier, st *statements, ids []string, err error) error {
	if !errors.Is(mapError(err), errUniqueViolation) {
		return err
	}
	for _, id := range ids {
		var n int
		if qErr := q.QueryRowContext(ctx, st.eventIDExists, id).Scan(&n); qErr != nil {
			return err
		}
		if n > 0 {
			return fmt.Errorf("%w: %w", meowmxtype.ErrDuplicateEventID, err)
		}
	}
	return fmt.Errorf("%w: %w", meowmxdriver.ErrVersionTaken, err)
}

// AppendGroup records appends in one write transaction, so that the group
// costs one commit (one disk flush) instead of one each. An append that a
// unique index refuses is rolled back alone (by its statement, or by a
// savepoint when it takes several) and returned as nil, to be made alone;
// any other error fails the group; a conflict or a recorded first event ID is
// returned as it was found (writers are serialized, so it is final).
func (e *executor) AppendGroup(ctx context.Context, group []*meowmxdriver.AppendParams) ([]*meowmxdriver.AppendResult, error) {
	results := make([]*meowmxdriver.AppendResult, len(group))
	if len(group) == 0 {
		return results, nil
	}
	if e.tx != nil {
		return nil, errors.New("meowmxsqlite: AppendGroup in the caller's transaction")
	}
	err := e.driver.writeTx(ctx, func(q querier) error {
		for i, p := range group {
			// An append of one INSERT statement needs no savepoint: a
			// statement that fails leaves nothing behind.
			savepoint := len(p.Events) > insertChunk
			if savepoint {
				if _, err := q.ExecContext(ctx, "SAVEPOINT meowmx_group"); err != nil {
					return err
				}
			}
			result, err := appendEvents(ctx, q, e.driver.statements(p.Schema), p)
			if err != nil {
				// A unique index refused a row: this append alone is made
				// again alone. Any other error (the disk, an interrupt)
				// may have ended the transaction: the group fails.
				if err := mapError(err); !errors.Is(err, meowmxdriver.ErrVersionTaken) && !errors.Is(err, meowmxtype.ErrDuplicateEventID) {
					return err
				}
				result = nil
				if savepoint {
					if _, err := q.ExecContext(ctx, "ROLLBACK TO meowmx_group"); err != nil {
						return err
					}
				}
			}
			if savepoint {
				if _, err := q.ExecContext(ctx, "RELEASE meowmx_group"); err != nil {
					return err
				}
			}
			results[i] = result
		}
		return nil
	})
	if err != nil {
		return nil, mapError(err)
	}
	return results, nil
}
