package pgdriver

import (
	"context"
	"errors"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/meowmx/meowmx/meowmxdriver"
	"github.com/meowmx/meowmx/meowmxtype"
)

type executor struct {
	driver *Driver
	tx     Conn // the caller's transaction; nil to use the pool
	// replica, for an executor of a Replica, is what it reads for; its
	// connections are checked by it instead of ensureCluster.
	replica *replicaOf
}

// conn returns what the executor's statements run on, unchecked: the
// caller's transaction, or a pooled connection to release after use.
func (e *executor) conn(ctx context.Context) (Querier, func(), error) {
	if e.tx != nil {
		return e.tx, func() {}, nil
	}
	conn, err := e.driver.pool.Acquire(ctx)
	if err != nil {
		return nil, nil, mapError(err)
	}
	return conn, conn.Release, nil
}

// acquire returns what the executor's statements for schema run on: the
// caller's transaction, or a pooled connection to release after use. Either
// way its cluster was checked first (see cluster.go).
func (e *executor) acquire(ctx context.Context, schema string) (Querier, func(), error) {
	if e.tx != nil {
		if err := e.driver.ensureClusterInTx(ctx, e.tx, schema); err != nil {
			return nil, nil, err
		}
		return e.tx, func() {}, nil
	}
	check := func(conn PooledConn) error { return e.driver.ensureCluster(ctx, conn, schema) }
	if e.replica != nil {
		primary, err := e.replica.prepare(ctx)
		if err != nil {
			return nil, nil, err
		}
		check = func(conn PooledConn) error { return e.replica.ensure(ctx, conn, schema, primary) }
	}
	conn, err := e.driver.pool.Acquire(ctx)
	if err != nil {
		return nil, nil, mapError(err)
	}
	if err := check(conn); err != nil {
		conn.Release()
		return nil, nil, err
	}
	return conn, conn.Release, nil
}

func (e *executor) ReadStream(ctx context.Context, p *meowmxdriver.ReadStreamParams) ([]meowmxtype.RecordedEvent, error) {
	return e.events(ctx, p.Schema, p.Limit, func(st *statements) (string, []any) {
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
	return e.events(ctx, p.Schema, p.Limit, func(st *statements) (string, []any) {
		if p.Category == "" {
			return st.readAll, []any{p.AfterTxID, p.AfterSeq, nonNil(p.Types), p.Limit}
		}
		return st.readCategory, []any{p.AfterTxID, p.AfterSeq, nonNil(p.Types), p.Limit, p.Category}
	})
}

// maxPreallocated bounds the rows queryEvents makes room for at once.
const maxPreallocated = 10_000

// events runs the query of eventColumns that query gives for schema, which
// returns at most limit rows (0 for no limit).
func (e *executor) events(ctx context.Context, schema string, limit int, query func(st *statements) (string, []any)) ([]meowmxtype.RecordedEvent, error) {
	db, release, err := e.acquire(ctx, schema)
	if err != nil {
		return nil, err
	}
	defer release()
	sql, args := query(e.driver.statements(schema))
	return queryEvents(ctx, db, limit, sql, args...)
}

// queryEvents runs a query of eventColumns and returns its rows. The rows
// of one call share their allocations: the repeated category, stream and
// type strings once each, and the data and metadata in blocks of bytes (so
// a caller keeping one event keeps its block).
//
// limit, when above zero, is the most rows the query returns: the slice is
// made that large at the first row, and never grown.
func queryEvents(ctx context.Context, db Querier, limit int, query string, args ...any) ([]meowmxtype.RecordedEvent, error) {
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
		dest          = []any{&row.Position.TransactionID, &row.Position.Seq, &cat, &sid, &row.Version, (*[16]byte)(&row.ID), &typ, &data, &meta, &row.RecordedAt, &row.Tags}
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
		row.Tags = nil // each event its own slice
		if err := rows.Scan(dest...); err != nil {
			return nil, mapError(err)
		}
		row.Stream.Category, row.Stream.ID, row.Type = intern(cat), intern(sid), intern(typ)
		row.Data, row.Metadata = keep(data), keep(meta)
		if events == nil && limit > 0 {
			events = make([]meowmxtype.RecordedEvent, 0, min(limit, maxPreallocated))
		}
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
	db, release, err := e.conn(ctx)
	if err != nil {
		return nil, err
	}
	defer release()
	var ageMicros int64 // a number, whatever the session's IntervalStyle
	err = db.QueryRow(ctx, horizonQuery).Scan(&h.PID, &txID, &ageMicros, &h.Database, &h.State, &h.Query)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, mapError(err)
	}
	h.TransactionID = uint64(txID)
	h.Age = time.Duration(ageMicros) * time.Microsecond
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

func (e *executor) Streams(ctx context.Context, p *meowmxdriver.StreamsParams) ([]meowmxtype.StreamInfo, error) {
	var infos []meowmxtype.StreamInfo
	err := e.query(ctx, p.Schema, func(st *statements) (string, []any) {
		if p.Category != "" {
			return st.categoryStreams, []any{p.Category, p.After.ID, p.Limit}
		}
		return st.streams, []any{p.After.Category, p.After.ID, p.Limit}
	}, func(rows pgx.Rows) error {
		for rows.Next() {
			var in meowmxtype.StreamInfo
			if err := rows.Scan(&in.Stream.Category, &in.Stream.ID, &in.Version,
				&in.LastPosition.TransactionID, &in.LastPosition.Seq, &in.LastRecordedAt); err != nil {
				return err
			}
			infos = append(infos, in)
		}
		return rows.Err()
	})
	return infos, err
}

// categoryCountsSaveAfter is how many events a listing of categories
// counts after a category's stored counts before it stores them again: a
// listing writes rarely, and counts at most about that many events more
// than the page holds.
const categoryCountsSaveAfter = 1000

func (e *executor) Categories(ctx context.Context, p *meowmxdriver.CategoriesParams) ([]meowmxtype.CategoryInfo, error) {
	var infos []meowmxtype.CategoryInfo
	save := &pgx.Batch{}
	st := e.driver.statements(p.Schema)
	scan := func(rows pgx.Rows) error {
		for rows.Next() {
			var (
				in              meowmxtype.CategoryInfo
				settledTx       *uint64
				settledSeq      *int64
				events, streams int64
				moved           int64
			)
			if err := rows.Scan(&in.Category, &in.Events, &in.Streams,
				&in.LastPosition.TransactionID, &in.LastPosition.Seq, &in.LastRecordedAt,
				&settledTx, &settledSeq, &events, &streams, &moved); err != nil {
				return err
			}
			infos = append(infos, in)
			if settledTx != nil && moved >= categoryCountsSaveAfter {
				save.Queue(st.saveCategoryCounts, in.Category, *settledTx, *settledSeq, events, streams)
			}
		}
		return rows.Err()
	}
	db, release, err := e.acquire(ctx, p.Schema)
	if err != nil {
		return nil, err
	}
	if e.tx != nil {
		err = scanQuery(ctx, db, scan, st.categories, p.After, p.Limit)
	} else {
		// Without JIT: the planner cannot know how few events follow the
		// stored counts, and compiling for the many it expects took 400
		// ms of a 1 ms listing.
		b := &pgx.Batch{}
		b.Queue("BEGIN READ ONLY")
		b.Queue("SET LOCAL jit = off")
		b.Queue(st.categories, p.After, p.Limit).Query(scan)
		b.Queue("COMMIT")
		err = db.SendBatch(ctx, b).Close()
	}
	release()
	if err != nil || save.Len() == 0 || e.tx != nil {
		return infos, mapError(err)
	}
	saver := e
	if e.replica != nil {
		// Counts made on a standby below its horizon hold on the primary:
		// those transactions ended there first, the same way.
		saver = &executor{driver: e.replica.primary}
	}
	saver.saveCategoryCounts(ctx, p.Schema, save)
	return infos, nil
}

// saveCategoryCounts stores the counts a listing made, if it can: they only
// spare later listings some counting, and the counts returned are right
// either way (a role that may not write, a read-only database, a lock
// timeout leave them unstored).
func (e *executor) saveCategoryCounts(ctx context.Context, schema string, save *pgx.Batch) {
	db, release, err := e.acquire(ctx, schema)
	if err != nil {
		return
	}
	defer release()
	_ = db.SendBatch(ctx, save).Close()
}

// scanQuery runs a query on db and hands its rows to scan.
func scanQuery(ctx context.Context, db Querier, scan func(pgx.Rows) error, sql string, args ...any) error {
	rows, err := db.Query(ctx, sql, args...)
	if err != nil {
		return err
	}
	defer rows.Close()
	return scan(rows)
}
