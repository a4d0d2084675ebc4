package meowmxsqlite

import (
	"context"
	"database/sql"
	"encoding/json"
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
		if e.driver.immediate && guardable(p) {
			result, err = e.driver.appendGuarded(ctx, st, p)
			return result, mapError(err)
		}
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
	result, current, err := checkAppend(ctx, q, st, p)
	if err != nil || result != nil {
		return result, err
	}
	results, err := recordAppends(ctx, q, st, []*meowmxdriver.AppendParams{p}, []int64{current}, false)
	if err != nil {
		return nil, err
	}
	return results[0], nil
}

// checkAppend returns what an append finds before it records anything: an
// idempotent retry (its first event ID recorded already), a failed
// condition or a conflict, as a result; or none, and the stream's current
// version, when it may record.
func checkAppend(ctx context.Context, q querier, st *statements, p *meowmxdriver.AppendParams) (*meowmxdriver.AppendResult, int64, error) {
	var (
		foundCat, foundID string
		foundVersion      int64
	)
	err := q.QueryRowContext(ctx, st.findEventID, uuid.UUID(p.Events[0].ID).String()).Scan(&foundCat, &foundID, &foundVersion)
	switch {
	case err == nil:
		rows, err := queryEvents(ctx, q, st.existingFrom, foundCat, foundID, foundVersion, len(p.Events))
		if err != nil {
			return nil, 0, err
		}
		return &meowmxdriver.AppendResult{Status: meowmxdriver.AppendExisting, Rows: rows}, 0, nil
	case !errors.Is(err, sql.ErrNoRows):
		return nil, 0, err
	}

	if c := p.Condition; c != nil {
		// Writers are serialized: what the check sees stays true until the
		// commit. In the caller's deferred transaction, a write committed
		// since its first read makes the insert below fail (the snapshot is
		// stale), so the append never commits on a stale check.
		if c.After.TransactionID != 0 {
			return nil, 0, meowmxtype.Invalid("condition after %s, a PostgreSQL position: SQLite's positions have no transaction id", c.After)
		}
		query, args := readQuerySQL(st.prefix, &meowmxdriver.ReadQueryParams{Query: c.FailIfEventsMatch, AfterSeq: c.After.Seq, Limit: 1})
		match, err := queryEvents(ctx, q, query, args...)
		if err != nil {
			return nil, 0, err
		}
		if len(match) > 0 {
			return &meowmxdriver.AppendResult{Status: meowmxdriver.AppendConditionFailed, Rows: match}, 0, nil
		}
	}

	var current int64
	if err := q.QueryRowContext(ctx, st.lastVersion, p.Category, p.StreamID).Scan(&current); err != nil {
		return nil, 0, err
	}
	if !p.Expected.Matches(current) {
		return &meowmxdriver.AppendResult{Status: meowmxdriver.AppendConflict, CurrentVersion: current}, current, nil
	}
	return nil, current, nil
}

// guardable reports whether an append in a transaction of its own can be
// one guarded INSERT (appendGuarded): an exact expected version (or
// NoStream), no condition, at most one statement's events.
func guardable(p *meowmxdriver.AppendParams) bool {
	return p.Condition == nil && p.Expected >= meowmxtype.NoStream && len(p.Events) <= insertChunk
}

// errGuardRefused: the guarded INSERT of appendGuarded recorded nothing
// (it never leaves appendGuarded).
var errGuardRefused = errors.New("meowmxsqlite: the guarded insert recorded nothing")

// appendGuarded makes an append with an exact expected version as one
// autocommit statement in the process's write turn: an INSERT that records
// the events only if the stream's last version is the expected one. SQLite
// runs a writing statement under the write lock from its first read, so
// the check and the insert are one atomic step, and the statement is all or
// nothing. One statement instead of five (BEGIN, the event ID's and the
// stream's look-ups, the INSERT, COMMIT): an append that would be recorded
// costs the INSERT alone. Anything the statement refuses (the version
// moved, an event ID recorded already) has written nothing: in the same
// turn, checkAppend then tells a conflict from an idempotent retry or a
// duplicate, with two reads and no transaction.
func (d *Driver) appendGuarded(ctx context.Context, st *statements, p *meowmxdriver.AppendParams) (*meowmxdriver.AppendResult, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if err := d.lock(ctx); err != nil {
		return nil, err
	}
	defer d.unlock()
	d.cache.prepareWanted(ctx)
	results, err := recordAppends(ctx, d.cache.onPool(), st, []*meowmxdriver.AppendParams{p}, []int64{int64(p.Expected)}, true)
	if err == nil {
		return results[0], nil
	}
	if !errors.Is(err, errGuardRefused) {
		return nil, err
	}
	// Why it was refused, read outside a transaction: a retry's recorded
	// events or a stream's version are final once seen. Checks that now
	// pass (another process's write between the two) go to a transaction.
	result, _, err := checkAppend(ctx, d.cache.onPool(), st, p)
	if err != nil || result != nil {
		return result, err
	}
	err = d.writeTxHeld(ctx, func(q querier) error {
		result, err = appendEvents(ctx, q, st, p)
		return err
	})
	return result, err
}

// recordAppends inserts the events of appends whose checks have passed,
// each after its stream's last version, current[i], in multi-row INSERTs of
// up to insertChunk events: one statement per chunk instead of one per
// event. Writers are serialized, so the AUTOINCREMENT seqs of one statement
// are consecutive, ending at the last insert id.
//
// guarded (one append, one statement's events) makes the INSERT check
// that the stream's last version is still current[0], and return
// errGuardRefused when it or a unique index refuses the events.
func recordAppends(ctx context.Context, q querier, st *statements, appends []*meowmxdriver.AppendParams, current []int64, guarded bool) ([]*meowmxdriver.AppendResult, error) {
	type place struct{ append, event int }
	var places []place
	results := make([]*meowmxdriver.AppendResult, len(appends))
	for i, p := range appends {
		results[i] = &meowmxdriver.AppendResult{Status: meowmxdriver.AppendRecorded, CurrentVersion: current[i], Rows: make([]meowmxtype.RecordedEvent, len(p.Events))}
		for j := range p.Events {
			places = append(places, place{i, j})
		}
	}
	now := time.Now().UTC().Truncate(time.Microsecond)
	for start := 0; start < len(places); start += insertChunk {
		chunk := places[start:min(start+insertChunk, len(places))]
		args := make([]any, 0, 10*len(chunk))
		ids := make([]string, len(chunk))
		for k, at := range chunk {
			p, ev := appends[at.append], appends[at.append].Events[at.event]
			var metadata any
			if ev.Metadata != nil {
				metadata = string(ev.Metadata)
			}
			var tags any
			if ev.Tags != nil {
				encoded, err := json.Marshal(ev.Tags)
				if err != nil {
					return nil, err
				}
				tags = string(encoded)
			}
			ids[k] = uuid.UUID(ev.ID).String()
			args = append(args, p.Category, p.StreamID, p.StreamHash, current[at.append]+1+int64(at.event), ids[k], ev.Type,
				string(ev.Data), metadata, now.UnixMicro(), tags)
		}
		query := st.insertEvents(len(chunk))
		if guarded {
			query = st.insertGuardedEvents(len(chunk))
			args = append(args, appends[0].Category, appends[0].StreamID, current[0])
		}
		res, err := q.ExecContext(ctx, query, args...)
		if guarded && errors.Is(mapError(err), errUniqueViolation) {
			return nil, errGuardRefused
		}
		if err != nil {
			return nil, uniqueViolation(ctx, q, st, ids, err)
		}
		if guarded {
			if n, err := res.RowsAffected(); err != nil {
				return nil, err
			} else if n != int64(len(chunk)) {
				return nil, errGuardRefused
			}
		}
		last, err := res.LastInsertId()
		if err != nil {
			return nil, err
		}
		for k, at := range chunk {
			p := appends[at.append]
			results[at.append].Rows[at.event] = meowmxtype.RecordedEvent{
				Position: meowmxtype.Position{Seq: last - int64(len(chunk)-1-k)},
				Stream:   meowmxtype.Stream{Category: p.Category, ID: p.StreamID},
				Version:  current[at.append] + 1 + int64(at.event), ID: p.Events[at.event].ID, RecordedAt: now,
			}
		}
	}
	return results, nil
}

// insertChunk is the most events one INSERT statement records (10 parameters
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
		together, err := appendTogether(ctx, q, e.driver.statements(group[0].Schema), group)
		if err != nil || together != nil {
			copy(results, together)
			return err
		}
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

// appendTogether records a group with a few statements for the whole of it,
// whatever its size: one looks for the first event IDs, one reads the
// streams' last versions (one index search each), and multi-row INSERTs record the appends whose
// expected version matches (the others get their conflict). It returns nil,
// with nothing written, when the group has to go append by append: an
// append repeats a recorded event (a retry, or a duplicate), two appends
// share a stream or an ID, or an INSERT is refused.
func appendTogether(ctx context.Context, q querier, st *statements, group []*meowmxdriver.AppendParams) ([]*meowmxdriver.AppendResult, error) {
	streams := map[meowmxtype.Stream]int{}
	ids := map[[16]byte]bool{}
	firstIDs := make([]any, len(group))
	pairs := make([]any, 0, 2*len(group))
	for i, p := range group {
		stream := meowmxtype.Stream{Category: p.Category, ID: p.StreamID}
		if _, dup := streams[stream]; dup || p.Schema != group[0].Schema || p.Condition != nil {
			// One by one: a condition is checked after the appends before
			// it are recorded.
			return nil, nil
		}
		streams[stream] = i
		for _, ev := range p.Events {
			if ids[ev.ID] {
				return nil, nil
			}
			ids[ev.ID] = true
		}
		firstIDs[i] = uuid.UUID(p.Events[0].ID).String()
		pairs = append(pairs, p.Category, p.StreamID)
	}
	var recorded bool
	if err := q.QueryRowContext(ctx, st.recordedIDs(len(firstIDs)), firstIDs...).Scan(new(string)); err == nil {
		recorded = true
	} else if !errors.Is(err, sql.ErrNoRows) {
		return nil, err
	}
	if recorded {
		return nil, nil
	}
	current := make([]int64, len(group))
	rows, err := q.QueryContext(ctx, st.lastVersions(len(group)), pairs...)
	if err != nil {
		return nil, err
	}
	for rows.Next() {
		var stream meowmxtype.Stream
		var version int64
		if err := rows.Scan(&stream.Category, &stream.ID, &version); err != nil {
			rows.Close()
			return nil, err
		}
		if i, ok := streams[stream]; ok {
			current[i] = version
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, err
	}

	results := make([]*meowmxdriver.AppendResult, len(group))
	var ready []*meowmxdriver.AppendParams
	var readyAt []int
	var readyCurrent []int64
	for i, p := range group {
		if !p.Expected.Matches(current[i]) {
			results[i] = &meowmxdriver.AppendResult{Status: meowmxdriver.AppendConflict, CurrentVersion: current[i]}
			continue
		}
		ready, readyAt, readyCurrent = append(ready, p), append(readyAt, i), append(readyCurrent, current[i])
	}
	if len(ready) == 0 {
		return results, nil
	}
	// The INSERTs behind a savepoint: one refused takes the group's rows
	// back, and the group goes append by append.
	if _, err := q.ExecContext(ctx, "SAVEPOINT meowmx_together"); err != nil {
		return nil, err
	}
	recordedResults, err := recordAppends(ctx, q, st, ready, readyCurrent, false)
	if err != nil {
		if err := mapError(err); !errors.Is(err, meowmxdriver.ErrVersionTaken) && !errors.Is(err, meowmxtype.ErrDuplicateEventID) {
			return nil, err
		}
		if _, err := q.ExecContext(ctx, "ROLLBACK TO meowmx_together"); err != nil {
			return nil, err
		}
		if _, err := q.ExecContext(ctx, "RELEASE meowmx_together"); err != nil {
			return nil, err
		}
		return nil, nil
	}
	if _, err := q.ExecContext(ctx, "RELEASE meowmx_together"); err != nil {
		return nil, err
	}
	for k, r := range recordedResults {
		results[readyAt[k]] = r
	}
	return results, nil
}
