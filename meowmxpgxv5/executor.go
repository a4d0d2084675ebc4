package meowmxpgxv5

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/meowmx/meowmx/meowmxdriver"
)

// querier is what a pool and a transaction have in common.
type querier interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
	Begin(ctx context.Context) (pgx.Tx, error)
}

type executor struct {
	driver *Driver
	db     querier
	inTx   bool // db is the caller's transaction
}

func (e *executor) Append(ctx context.Context, p *meowmxdriver.AppendParams) (*meowmxdriver.AppendResult, error) {
	st := e.driver.statements(p.Schema)
	n := len(p.Events)
	ids := make([][16]byte, n)
	types := make([]string, n)
	data := make([][]byte, n)
	metadata := make([][]byte, n)
	for i, ev := range p.Events {
		ids[i], types[i], data[i], metadata[i] = ev.ID, ev.Type, ev.Data, ev.Metadata
	}
	query := st.append
	if e.inTx {
		query = st.appendTx
	}
	// The verdict runs only when the append records nothing; if by then
	// nothing stands in the way (another writer moved the stream between
	// the two statements), the append runs again.
	for attempt := 0; ; attempt++ {
		rows, err := e.insertEvents(ctx, query, p, ids, types, data, metadata)
		if err != nil {
			return nil, err
		}
		if len(rows) > 0 {
			return &meowmxdriver.AppendResult{Status: meowmxdriver.AppendRecorded, Rows: rows}, nil
		}
		var status int
		var current int64
		if err := e.db.QueryRow(ctx, st.appendVerdict, p.Category, p.StreamID, ids[0], p.Expected, e.inTx).Scan(&status, &current); err != nil {
			return nil, mapError(err)
		}
		result := &meowmxdriver.AppendResult{Status: meowmxdriver.AppendStatus(status), CurrentVersion: current}
		switch {
		case result.Status == meowmxdriver.AppendExisting:
			result.Rows, err = e.queryEvents(ctx, st.existingFrom, ids[0], n)
			if err != nil {
				return nil, err
			}
			if len(result.Rows) == 0 {
				return nil, errors.New("append found the first event ID recorded, then could not read it")
			}
			return result, nil
		case result.Status != meowmxdriver.AppendRecorded:
			return result, nil
		case attempt >= 10:
			return nil, errors.New("append recorded nothing, with nothing in its way, 10 times")
		}
	}
}

// insertEvents runs the append statement and returns the recorded rows, in
// the batch's order (checked by their versions).
func (e *executor) insertEvents(ctx context.Context, query string, p *meowmxdriver.AppendParams, ids [][16]byte, types []string, data, metadata [][]byte) ([]*meowmxdriver.EventRow, error) {
	rows, err := e.db.Query(ctx, query, p.Category, p.StreamID, p.StreamHash, p.Expected, ids, types, data, metadata)
	if err != nil {
		return nil, mapError(err)
	}
	defer rows.Close()
	var out []*meowmxdriver.EventRow
	for rows.Next() {
		row := &meowmxdriver.EventRow{Category: p.Category, StreamID: p.StreamID}
		if err := rows.Scan(&row.TransactionID, &row.Seq, &row.Version, &row.RecordedAt); err != nil {
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

func (e *executor) ReadStream(ctx context.Context, p *meowmxdriver.ReadStreamParams) ([]*meowmxdriver.EventRow, error) {
	st := e.driver.statements(p.Schema)
	query := st.readStreamFwd
	if p.Backward {
		query = st.readStreamBack
	}
	var limit any
	if p.Limit > 0 {
		limit = p.Limit
	}
	return e.queryEvents(ctx, query, p.Category, p.StreamID, p.From, limit)
}

func (e *executor) ReadGlobal(ctx context.Context, p *meowmxdriver.ReadGlobalParams) ([]*meowmxdriver.EventRow, error) {
	st := e.driver.statements(p.Schema)
	types := p.Types
	if types == nil {
		types = []string{}
	}
	if p.Category == "" {
		return e.queryEvents(ctx, st.readAll, p.AfterTxID, p.AfterSeq, types, p.Limit)
	}
	return e.queryEvents(ctx, st.readCategory, p.AfterTxID, p.AfterSeq, types, p.Limit, p.Category)
}

func (e *executor) queryEvents(ctx context.Context, query string, args ...any) ([]*meowmxdriver.EventRow, error) {
	rows, err := e.db.Query(ctx, query, args...)
	if err != nil {
		return nil, mapError(err)
	}
	defer rows.Close()
	var events []*meowmxdriver.EventRow
	for rows.Next() {
		row := &meowmxdriver.EventRow{}
		if err := rows.Scan(&row.TransactionID, &row.Seq, &row.Category, &row.StreamID, &row.Version,
			&row.ID, &row.Type, &row.Data, &row.Metadata, &row.RecordedAt); err != nil {
			return nil, mapError(err)
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
	err := e.db.QueryRow(ctx, e.driver.statements(schema).streamVersion, category, streamID).Scan(&version)
	if err != nil {
		return 0, mapError(err)
	}
	return version, nil
}

func (e *executor) Horizon(ctx context.Context) (*meowmxdriver.HorizonRow, error) {
	h := &meowmxdriver.HorizonRow{}
	var txID int64
	err := e.db.QueryRow(ctx, horizonQuery).Scan(&h.PID, &txID, &h.Age, &h.Database, &h.State, &h.Query, &h.Prepared)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, mapError(err)
	}
	h.TransactionID = uint64(txID)
	return h, nil
}
