package pgdriver

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/meowmx/meowmx/meowmxdriver"
	"github.com/meowmx/meowmx/meowmxtype"
)

func (e *executor) Append(ctx context.Context, p *meowmxdriver.AppendParams) (*meowmxdriver.AppendResult, error) {
	db, release, err := e.acquire(ctx, p.Schema)
	if err != nil {
		return nil, err
	}
	defer release()
	st := e.driver.statements(p.Schema)
	n := len(p.Events)
	ids := make([][16]byte, n)
	types := make([]string, n)
	data := make([][]byte, n)
	metadata := make([][]byte, n)
	for i, ev := range p.Events {
		ids[i], types[i], data[i], metadata[i] = ev.ID, ev.Type, ev.Data, ev.Metadata
	}
	// Appends of tagged events take the statements that store tags, with
	// the tags as their last argument.
	appendAt, appendAt1, appendAny, appendTx := st.appendAt, st.appendAt1, st.append, st.appendTx
	if p.Condition != nil {
		return e.appendConditional(ctx, db, st, p, ids, types, data, metadata)
	}
	inTx := e.tx != nil
	withTags := func(args ...any) []any { return args }  // of the array statements
	withTags1 := func(args ...any) []any { return args } // of appendAt1
	if slices.ContainsFunc(p.Events, hasTags) {
		tags := make([][]byte, n)
		for i, ev := range p.Events {
			if tags[i], err = tagsJSON(ev.Tags); err != nil {
				return nil, err
			}
		}
		// In a transaction of its own, the statement takes the tags' locks
		// (sharedTagLocks); in the caller's, a statement before it does, so
		// that the append's snapshot sees what a conditional append it
		// waited for committed (tagsNotTooOld).
		keys := eventTagKeys(p.Schema, p.Events)
		last := any(keys)
		if inTx {
			if _, err := db.Exec(ctx, st.lockTags, keys, make([]bool, len(keys))); err != nil {
				return nil, mapError(err)
			}
			last = eventTags(p.Events)
		}
		withTags = func(args ...any) []any { return append(args, tags, last) }
		withTags1 = func(args ...any) []any { return append(args, p.Events[0].Tags, keys) }
		appendAt, appendAt1, appendAny, appendTx = st.appendAtTagged, st.appendAt1Tagged, st.appendTagged, st.appendTxTagged
	}
	recorded := func(rows []meowmxtype.RecordedEvent) *meowmxdriver.AppendResult {
		return &meowmxdriver.AppendResult{Status: meowmxdriver.AppendRecorded, Rows: rows}
	}

	if !inTx && n >= copyThreshold {
		return appendCopy(ctx, db, st, p, ids)
	}
	query := appendAny
	switch {
	case inTx:
		query = appendTx
	case p.Expected >= -1:
		// An exact version, in a transaction of its own: the indexes
		// check, and the verdict says why if they refuse.
		var rows []meowmxtype.RecordedEvent
		var err error
		if n == 1 {
			rows, err = scanRecorded(ctx, db, p, ids, appendAt1, withTags1(p.Category, p.StreamID, p.StreamHash, p.Expected, ids[0], types[0], data[0], metadata[0])...)
		} else {
			rows, err = scanRecorded(ctx, db, p, ids, appendAt, withTags(p.Category, p.StreamID, p.StreamHash, p.Expected, ids, types, data, metadata)...)
		}
		if err == nil && len(rows) > 0 {
			return recorded(rows), nil
		}
		if err != nil && !errors.Is(err, meowmxdriver.ErrVersionTaken) && !errors.Is(err, meowmxtype.ErrDuplicateEventID) {
			return nil, err
		}
		result, err := appendVerdict(ctx, db, st, p, ids, inTx)
		if err != nil || result.Status != meowmxdriver.AppendRecorded {
			return result, err
		}
		// Nothing in the way any more, or an event ID after the first is
		// recorded: the general statement tells.
	}

	// The verdict runs only when the append records nothing; if by then
	// nothing stands in the way (another writer moved the stream between
	// the two statements), the append runs again.
	for attempt := 0; ; attempt++ {
		rows, err := scanRecorded(ctx, db, p, ids, query, withTags(p.Category, p.StreamID, p.StreamHash, p.Expected, ids, types, data, metadata)...)
		if err != nil {
			return nil, err
		}
		if len(rows) > 0 {
			return recorded(rows), nil
		}
		result, err := appendVerdict(ctx, db, st, p, ids, inTx)
		if err != nil || result.Status != meowmxdriver.AppendRecorded {
			return result, err
		}
		if attempt >= 10 {
			return nil, errors.New("append recorded nothing, with nothing in its way, 10 times")
		}
	}
}

// appendVerdict says why an append recorded nothing. AppendRecorded means
// nothing stands in the way now.
func appendVerdict(ctx context.Context, db Querier, st *statements, p *meowmxdriver.AppendParams, ids [][16]byte, inTx bool) (*meowmxdriver.AppendResult, error) {
	var status int
	var current int64
	tags := []string{}
	if inTx {
		tags = eventTags(p.Events)
	}
	if err := db.QueryRow(ctx, st.appendVerdict, p.Category, p.StreamID, ids[0], p.Expected, inTx, tags).Scan(&status, &current); err != nil {
		return nil, mapError(err)
	}
	result := &meowmxdriver.AppendResult{Status: meowmxdriver.AppendStatus(status), CurrentVersion: current}
	if result.Status == meowmxdriver.AppendExisting {
		rows, err := queryEvents(ctx, db, len(ids), st.existingFrom, ids[0], len(ids))
		if err != nil {
			return nil, err
		}
		if len(rows) == 0 {
			return nil, errors.New("append found the first event ID recorded, then could not read it")
		}
		result.Rows = rows
	}
	return result, nil
}

// scanRecorded runs an append statement with args and returns the recorded
// rows, in the batch's order (checked by their versions).
func scanRecorded(ctx context.Context, db Querier, p *meowmxdriver.AppendParams, ids [][16]byte, query string, args ...any) ([]meowmxtype.RecordedEvent, error) {
	rows, err := db.Query(ctx, query, args...)
	return scanRows(rows, err, p, ids)
}

// scanRows is scanRecorded of rows that a query returned with err.
func scanRows(rows pgx.Rows, err error, p *meowmxdriver.AppendParams, ids [][16]byte) ([]meowmxtype.RecordedEvent, error) {
	if err != nil {
		return nil, mapError(err)
	}
	defer rows.Close()
	var out []meowmxtype.RecordedEvent
	for rows.Next() {
		row := meowmxtype.RecordedEvent{Stream: meowmxtype.Stream{Category: p.Category, ID: p.StreamID}}
		if err := rows.Scan(&row.Position.TransactionID, &row.Position.Seq, &row.Version, &row.RecordedAt); err != nil {
			return nil, mapError(err)
		}
		if i := len(out); i < len(ids) {
			row.ID = ids[i]
		}
		out = append(out, row)
	}
	if err := rows.Err(); err != nil {
		return nil, mapError(err)
	}
	if len(out) > 0 {
		if len(out) != len(ids) {
			return nil, fmt.Errorf("append returned %d rows for %d events", len(out), len(ids))
		}
		for i, row := range out {
			if row.Version != out[0].Version+int64(i) {
				return nil, fmt.Errorf("append returned version %d at row %d after version %d", row.Version, i, out[0].Version)
			}
		}
	}
	return out, nil
}

// AppendGroup records appends to distinct streams in one statement
// (appendGroupSQL), in a transaction of its own. An append whose expected
// version does not match gets its conflict; one that shares a stream or an
// event ID with an append before it gets nil, to be made alone; every append is made alone when a unique index refused a
// row of the group (a racing writer, a recorded event ID), since the
// statement then recorded nothing.
func (e *executor) AppendGroup(ctx context.Context, group []*meowmxdriver.AppendParams) ([]*meowmxdriver.AppendResult, error) {
	results := make([]*meowmxdriver.AppendResult, len(group))
	if len(group) == 0 {
		return results, nil
	}
	if e.tx != nil {
		return nil, errors.New("meowmx: AppendGroup in the caller's transaction")
	}
	schema := group[0].Schema
	db, release, err := e.acquire(ctx, schema)
	if err != nil {
		return nil, err
	}
	defer release()

	type place struct{ append, event int }
	var (
		events                     int
		categories, streams, types []string
		hashes, expected           []int64
		ids                        [][16]byte
		data, metadata, tags       [][]byte
		ord                        []int32
		tagged                     bool
		places                     = map[[16]byte]place{}
	)
	for _, p := range group {
		events += len(p.Events)
	}
	categories, streams, types = make([]string, 0, events), make([]string, 0, events), make([]string, 0, events)
	hashes, expected, ord = make([]int64, 0, events), make([]int64, 0, events), make([]int32, 0, events)
	ids, data, metadata = make([][16]byte, 0, events), make([][]byte, 0, events), make([][]byte, 0, events)
	tags = make([][]byte, 0, events)
	inGroup := map[meowmxtype.Stream]bool{}
	var (
		grouped    []meowmxdriver.EventInsert // the events of the appends in the statement
		members    = make([]int32, 0, events) // each one's append, from 1
		conditions groupConditions
		mode       = map[int64]bool{} // lock keys: exclusive or not
	)
	for i, p := range group {
		if p.Schema != schema {
			return nil, fmt.Errorf("meowmx: a group of appends across schemas %s and %s", schema, p.Schema)
		}
		// Rows come back by event ID: an append that shares an ID or a
		// stream with one before it stays out of the statement (nil), to be
		// made alone, as does a conditional append.
		stream := meowmxtype.Stream{Category: p.Category, ID: p.StreamID}
		if inGroup[stream] || slices.ContainsFunc(p.Events, func(ev meowmxdriver.EventInsert) bool { _, taken := places[ev.ID]; return taken }) {
			continue
		}
		if c := p.Condition; c != nil {
			// A condition that covers an event of an append before it in
			// the group would not see it (one snapshot): made alone, after
			// the group commits, it fails as it should. One with an item
			// without tags locks the table: alone too.
			if !meowmxdriver.GroupableCondition(c) || slices.ContainsFunc(grouped, func(ev meowmxdriver.EventInsert) bool { return c.FailIfEventsMatch.Matches(ev.Type, ev.Tags) }) {
				continue
			}
			conditions.add(int32(i+1), c)
		}
		grouped = append(grouped, p.Events...)
		l := locksOf(schema, p)
		for i, k := range l.keys {
			mode[k] = mode[k] || l.exclusive[i]
		}
		inGroup[stream] = true
		for j, ev := range p.Events {
			members = append(members, int32(i+1))
			categories, streams = append(categories, p.Category), append(streams, p.StreamID)
			hashes, expected = append(hashes, p.StreamHash), append(expected, int64(p.Expected))
			ids, types, ord = append(ids, ev.ID), append(types, ev.Type), append(ord, int32(j+1))
			data, metadata = append(data, ev.Data), append(metadata, ev.Metadata)
			evTags, err := tagsJSON(ev.Tags)
			if err != nil {
				return nil, err
			}
			tags = append(tags, evTags)
			tagged = tagged || evTags != nil
			places[ev.ID] = place{i, j}
		}
	}
	// One round trip: the statement in a transaction of its own that plans
	// it generically. A custom plan for its arrays costs more to make than
	// to run (0.3 ms against 0.1 ms for a few events, measured with
	// EXPLAIN ANALYZE), and the generic plan is the same plan.
	batch := &pgx.Batch{}
	batch.Queue(beginReadCommitted)
	locks := appendLocksOf(mode)
	switch st := e.driver.statements(schema); {
	case len(conditions.members) > 0:
		// The locks first, in a statement of their own (with the
		// transaction's settings), so that the group's snapshot sees what
		// committed while it waited for them.
		batch.Queue(groupLocksSQL, locks.keys, locks.exclusive)
		c := &conditions
		// (The statement's own shared locks are taken already.)
		batch.Queue(st.appendGroupCond, categories, streams, hashes, expected, ids, types, data, metadata, ord, tags, []int64{},
			members, c.members, c.tags, c.afterTx, c.afterSeq, c.rest, c.types)
	case tagged:
		batch.Queue(genericPlanSQL)
		batch.Queue(st.appendGroupTagged, categories, streams, hashes, expected, ids, types, data, metadata, ord, tags, locks.keys)
	default:
		batch.Queue(genericPlanSQL)
		batch.Queue(st.appendGroup, categories, streams, hashes, expected, ids, types, data, metadata, ord)
	}
	batch.Queue("COMMIT")
	br := db.SendBatch(ctx, batch)
	err = func() error {
		for range 2 {
			if _, err := br.Exec(); err != nil {
				return err
			}
		}
		rows, err := br.Query()
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var (
				id         [16]byte
				txID       *uint64
				seq        *int64
				recordedAt *time.Time
				row        meowmxtype.RecordedEvent
			)
			if err := rows.Scan(&id, &txID, &seq, &row.Version, &recordedAt); err != nil {
				return err
			}
			at, ok := places[id]
			if !ok {
				return fmt.Errorf("meowmx: the group's statement returned event %x, not of the group", id)
			}
			if txID == nil || seq == nil || recordedAt == nil {
				// Its expected version did not match: a conflict.
				results[at.append] = &meowmxdriver.AppendResult{Status: meowmxdriver.AppendConflict, CurrentVersion: row.Version}
				continue
			}
			row.Position.TransactionID, row.Position.Seq, row.RecordedAt = *txID, *seq, *recordedAt
			p := group[at.append]
			if results[at.append] == nil {
				results[at.append] = &meowmxdriver.AppendResult{Status: meowmxdriver.AppendRecorded, Rows: make([]meowmxtype.RecordedEvent, len(p.Events))}
			}
			row.ID, row.Stream = id, meowmxtype.Stream{Category: p.Category, ID: p.StreamID}
			results[at.append].Rows[at.event] = row
		}
		if err := rows.Err(); err != nil {
			return err
		}
		rows.Close()
		_, err = br.Exec() // COMMIT
		return err
	}()
	if refused, err := finishBatch(ctx, db, br, err); err != nil {
		if errors.Is(err, meowmxdriver.ErrVersionTaken) || errors.Is(err, meowmxtype.ErrDuplicateEventID) {
			clear(results) // nothing was recorded: each append alone
			return results, nil
		}
		if refused {
			return nil, err
		}
		return nil, fmt.Errorf("meowmx: the group's outcome is unknown, its events may be recorded (retrying with the same event IDs is safe): %w", err)
	}
	return results, nil
}

// finishBatch closes br, a batch of BEGIN, statements and COMMIT whose
// results were read with err. After a failure it ends the transaction,
// which a failed statement left open and aborted, before the connection
// goes back to the pool (which would close it otherwise), and returns the
// error mapped. refused says the server refused a statement: it skips the
// rest of the batch, COMMIT included, so nothing was written; any other
// failure (the connection, the client) can come after the COMMIT ran.
func finishBatch(ctx context.Context, db Querier, br pgx.BatchResults, err error) (refused bool, _ error) {
	if closeErr := br.Close(); err == nil {
		err = closeErr
	}
	if err == nil {
		return false, nil
	}
	rollbackCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), rollbackTimeout)
	_, _ = db.Exec(rollbackCtx, "ROLLBACK")
	cancel()
	return errors.As(err, new(*pgconn.PgError)), mapError(err)
}

// rollbackTimeout bounds the ROLLBACK after a failed group.
const rollbackTimeout = 5 * time.Second

// copyThreshold is the smallest batch written with COPY, which costs more
// round trips (begin, check, copy, read back, commit) and less per event
// than an INSERT of arrays. Measured with BenchmarkAppendBatch: the INSERT
// is faster up to 1,000 events (68,000 against 60,000 events/s), COPY from
// 5,000 (75,000 against 67,000). A variable only so that the benchmark can
// compare both ways.
var copyThreshold = 5000

// appendCopy records a large batch with COPY, in a transaction of its own
// that writes nothing before it: the check reads the stream's last version,
// the COPY inserts after it, and a writer that recorded the same versions
// or event IDs meanwhile makes the unique indexes refuse the COPY, exactly
// as they refuse appendSQL. The transaction takes its id at the COPY, after
// its check's snapshot, so no event the check saw can have a higher id.
func appendCopy(ctx context.Context, db Querier, st *statements, p *meowmxdriver.AppendParams, ids [][16]byte) (*meowmxdriver.AppendResult, error) {
	var result *meowmxdriver.AppendResult
	err := pgx.BeginFunc(ctx, db, func(tx pgx.Tx) error {
		verdict, err := appendVerdict(ctx, tx, st, p, ids, false)
		if err != nil {
			return err
		}
		if verdict.Status != meowmxdriver.AppendRecorded {
			result = verdict
			return nil
		}
		if keys := eventTagKeys(p.Schema, p.Events); len(keys) > 0 {
			// Before the transaction takes its id, at the COPY.
			if _, err := tx.Exec(ctx, st.lockTags, keys, make([]bool, len(keys))); err != nil {
				return mapError(err)
			}
		}
		first := verdict.CurrentVersion + 1
		n, err := tx.CopyFrom(ctx, pgx.Identifier{st.schema, "events"}, copyColumns, pgx.CopyFromSlice(len(p.Events), func(i int) ([]any, error) {
			ev := p.Events[i]
			var metadata any
			if ev.Metadata != nil {
				metadata = ev.Metadata
			}
			return []any{p.Category, p.StreamID, p.StreamHash, first + int64(i), ev.ID, ev.Type, ev.Data, metadata, ev.Tags}, nil
		}))
		if err != nil {
			return mapError(err)
		}
		if int(n) != len(p.Events) {
			return fmt.Errorf("meowmx: COPY recorded %d of %d events", n, len(p.Events))
		}
		if slices.ContainsFunc(p.Events, hasTags) {
			if _, err := tx.Exec(ctx, st.copiedTags, p.Category, p.StreamID, first); err != nil {
				return mapError(err)
			}
		}
		rows, err := scanRecorded(ctx, tx, p, ids, st.copiedFrom, p.Category, p.StreamID, first)
		if err != nil {
			return err
		}
		result = &meowmxdriver.AppendResult{Status: meowmxdriver.AppendRecorded, Rows: rows}
		return nil
	})
	if err != nil {
		return nil, mapError(err)
	}
	return result, nil
}

var copyColumns = []string{"category", "stream_id", "stream_hash", "version", "event_id", "type", "data", "metadata", "tags"}

func hasTags(ev meowmxdriver.EventInsert) bool { return len(ev.Tags) > 0 }

// tagsJSON is an event's tags as the array statements take them: a JSON
// array, or nil (NULL) for none.
func tagsJSON(tags []string) ([]byte, error) {
	if len(tags) == 0 {
		return nil, nil
	}
	return json.Marshal(tags)
}
