package meowmxpgxv5

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/meowmx/meowmx/meowmxdriver"
	"github.com/meowmx/meowmx/meowmxtype"
)

// querier is what a pooled connection and a transaction have in common.
type querier interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
	Begin(ctx context.Context) (pgx.Tx, error)
}

type executor struct {
	driver *Driver
	tx     pgx.Tx // the caller's transaction; nil to use the pool
}

// acquire returns what the executor's statements for schema run on: the
// caller's transaction, or a pooled connection to release after use. Either
// way its cluster was checked first (see cluster.go).
func (e *executor) acquire(ctx context.Context, schema string) (querier, func(), error) {
	if e.tx != nil {
		if err := e.driver.ensureCluster(ctx, e.tx.Conn(), schema, e.tx); err != nil {
			return nil, nil, err
		}
		return e.tx, func() {}, nil
	}
	conn, err := e.driver.pool.Acquire(ctx)
	if err != nil {
		return nil, nil, mapError(err)
	}
	if err := e.driver.ensureCluster(ctx, conn.Conn(), schema, nil); err != nil {
		conn.Release()
		return nil, nil, err
	}
	return conn, conn.Release, nil
}

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
	recorded := func(rows []meowmxtype.RecordedEvent) *meowmxdriver.AppendResult {
		return &meowmxdriver.AppendResult{Status: meowmxdriver.AppendRecorded, Rows: rows}
	}

	inTx := e.tx != nil
	query := st.append
	switch {
	case inTx:
		query = st.appendTx
	case p.Expected >= -1:
		// An exact version, in a transaction of its own: the indexes
		// check, and the verdict says why if they refuse.
		var rows []meowmxtype.RecordedEvent
		var err error
		if n == 1 {
			rows, err = scanRecorded(ctx, db, p, ids, st.appendAt1, p.Category, p.StreamID, p.StreamHash, p.Expected, ids[0], types[0], data[0], metadata[0])
		} else {
			rows, err = scanRecorded(ctx, db, p, ids, st.appendAt, p.Category, p.StreamID, p.StreamHash, p.Expected, ids, types, data, metadata)
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
		rows, err := scanRecorded(ctx, db, p, ids, query, p.Category, p.StreamID, p.StreamHash, p.Expected, ids, types, data, metadata)
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
func appendVerdict(ctx context.Context, db querier, st *statements, p *meowmxdriver.AppendParams, ids [][16]byte, inTx bool) (*meowmxdriver.AppendResult, error) {
	var status int
	var current int64
	if err := db.QueryRow(ctx, st.appendVerdict, p.Category, p.StreamID, ids[0], p.Expected, inTx).Scan(&status, &current); err != nil {
		return nil, mapError(err)
	}
	result := &meowmxdriver.AppendResult{Status: meowmxdriver.AppendStatus(status), CurrentVersion: current}
	if result.Status == meowmxdriver.AppendExisting {
		rows, err := queryEvents(ctx, db, st.existingFrom, ids[0], len(ids))
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
func scanRecorded(ctx context.Context, db querier, p *meowmxdriver.AppendParams, ids [][16]byte, query string, args ...any) ([]meowmxtype.RecordedEvent, error) {
	rows, err := db.Query(ctx, query, args...)
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

func (e *executor) ReadStream(ctx context.Context, p *meowmxdriver.ReadStreamParams) ([]meowmxtype.RecordedEvent, error) {
	return e.events(ctx, p.Schema, func(st *statements) (string, []any) {
		query := st.readStreamFwd
		if p.Backward {
			query = st.readStreamBack
		}
		var limit any
		if p.Limit > 0 {
			limit = p.Limit
		}
		return query, []any{p.Category, p.StreamID, p.From, limit}
	})
}

func (e *executor) ReadGlobal(ctx context.Context, p *meowmxdriver.ReadGlobalParams) ([]meowmxtype.RecordedEvent, error) {
	return e.events(ctx, p.Schema, func(st *statements) (string, []any) {
		if p.Category == "" {
			return st.readAll, []any{p.AfterTxID, p.AfterSeq, nonNil(p.Types), p.Limit}
		}
		return st.readCategory, []any{p.AfterTxID, p.AfterSeq, nonNil(p.Types), p.Limit, p.Category}
	})
}

// events runs the query of eventColumns that query gives for schema.
func (e *executor) events(ctx context.Context, schema string, query func(st *statements) (string, []any)) ([]meowmxtype.RecordedEvent, error) {
	db, release, err := e.acquire(ctx, schema)
	if err != nil {
		return nil, err
	}
	defer release()
	sql, args := query(e.driver.statements(schema))
	return queryEvents(ctx, db, sql, args...)
}

// queryEvents runs a query of eventColumns and returns its rows. The rows
// of one call share their allocations: the repeated category, stream and
// type strings once each, and the data and metadata in blocks of bytes (so
// a caller keeping one event keeps its block).
func queryEvents(ctx context.Context, db querier, query string, args ...any) ([]meowmxtype.RecordedEvent, error) {
	rows, err := db.Query(ctx, query, args...)
	if err != nil {
		return nil, mapError(err)
	}
	defer rows.Close()
	var (
		events        []meowmxtype.RecordedEvent
		bytes         []byte
		strs          = map[string]string{}
		cat, sid, typ pgtype.DriverBytes
		data, meta    pgtype.DriverBytes
		row           meowmxtype.RecordedEvent
		dest          = []any{&row.Position.TransactionID, &row.Position.Seq, &cat, &sid, &row.Version, (*[16]byte)(&row.ID), &typ, &data, &meta, &row.RecordedAt}
		intern        = func(b []byte) string {
			if s, ok := strs[string(b)]; ok {
				return s
			}
			s := string(b)
			strs[s] = s
			return s
		}
		keep = func(b []byte) []byte {
			if b == nil {
				return nil
			}
			if len(bytes)+len(b) > cap(bytes) {
				bytes = make([]byte, 0, max(len(b), 32<<10))
			}
			start := len(bytes)
			bytes = append(bytes, b...)
			return bytes[start:len(bytes):len(bytes)]
		}
	)
	for rows.Next() {
		if err := rows.Scan(dest...); err != nil {
			return nil, mapError(err)
		}
		row.Stream.Category, row.Stream.ID, row.Type = intern(cat), intern(sid), intern(typ)
		row.Data, row.Metadata = keep(data), keep(meta)
		events = append(events, row)
	}
	if err := rows.Err(); err != nil {
		return nil, mapError(err)
	}
	return events, nil
}

func (e *executor) StreamVersion(ctx context.Context, schema, category, streamID string) (int64, error) {
	var version int64
	err := e.row(ctx, schema, func(st *statements) (string, []any) {
		return st.streamVersion, []any{category, streamID}
	}, &version)
	return version, err
}

// row runs the one-row query that query gives for schema and scans it into
// dest; no row is pgx.ErrNoRows.
func (e *executor) row(ctx context.Context, schema string, query func(st *statements) (string, []any), dest ...any) error {
	db, release, err := e.acquire(ctx, schema)
	if err != nil {
		return err
	}
	defer release()
	sql, args := query(e.driver.statements(schema))
	err = db.QueryRow(ctx, sql, args...).Scan(dest...)
	if errors.Is(err, pgx.ErrNoRows) {
		return err
	}
	return mapError(err)
}

// exec runs the statement that query gives for schema and returns the
// number of rows it affected.
func (e *executor) exec(ctx context.Context, schema string, query func(st *statements) (string, []any)) (int64, error) {
	db, release, err := e.acquire(ctx, schema)
	if err != nil {
		return 0, err
	}
	defer release()
	sql, args := query(e.driver.statements(schema))
	tag, err := db.Exec(ctx, sql, args...)
	if err != nil {
		return 0, mapError(err)
	}
	return tag.RowsAffected(), nil
}

func (e *executor) Horizon(ctx context.Context) (*meowmxtype.Horizon, error) {
	h := &meowmxtype.Horizon{}
	var txID int64
	var db querier = e.driver.pool
	if e.tx != nil {
		db = e.tx
	}
	err := db.QueryRow(ctx, horizonQuery).Scan(&h.PID, &txID, &h.Age, &h.Database, &h.State, &h.Query)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, mapError(err)
	}
	h.TransactionID = uint64(txID)
	return h, nil
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// query runs the query that query gives for schema and hands its rows to
// scan.
func (e *executor) query(ctx context.Context, schema string, query func(st *statements) (string, []any), scan func(pgx.Rows) error) error {
	db, release, err := e.acquire(ctx, schema)
	if err != nil {
		return err
	}
	defer release()
	sql, args := query(e.driver.statements(schema))
	rows, err := db.Query(ctx, sql, args...)
	if err != nil {
		return mapError(err)
	}
	defer rows.Close()
	return mapError(scan(rows))
}
