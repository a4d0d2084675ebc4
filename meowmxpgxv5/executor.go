package meowmxpgxv5

import (
	"context"
	"errors"
	"fmt"
	"time"

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
	rows, err := e.db.Query(ctx, st.append, p.Category, p.StreamID, p.StreamHash, p.Expected, ids, types, data, metadata)
	if err != nil {
		return nil, mapError(err)
	}
	defer rows.Close()

	result := &meowmxdriver.AppendResult{Rows: make([]*meowmxdriver.EventRow, 0, n)}
	var (
		status  int
		version int64
		txID    *uint64
		seq     *int64
		at      *time.Time
	)
	for rows.Next() {
		if err := rows.Scan(&status, &version, &txID, &seq, &at); err != nil {
			return nil, mapError(err)
		}
		result.Status = meowmxdriver.AppendStatus(status)
		if result.Status != meowmxdriver.AppendRecorded {
			result.CurrentVersion = version
			continue
		}
		result.Rows = append(result.Rows, &meowmxdriver.EventRow{
			TransactionID: *txID, Seq: *seq, Category: p.Category, StreamID: p.StreamID,
			Version: version, RecordedAt: *at,
		})
	}
	if err := rows.Err(); err != nil {
		return nil, mapError(err)
	}
	switch result.Status {
	case meowmxdriver.AppendRecorded:
		if len(result.Rows) != n {
			return nil, fmt.Errorf("append returned %d rows for %d events", len(result.Rows), n)
		}
		// The rows come in insertion order, which is the batch's; the
		// versions say so.
		first := result.Rows[0].Version
		for i, row := range result.Rows {
			if row.Version != first+int64(i) {
				return nil, fmt.Errorf("append returned version %d at row %d after version %d", row.Version, i, first)
			}
			row.ID = p.Events[i].ID
		}
	case meowmxdriver.AppendExisting:
		result.Rows, err = e.queryEvents(ctx, st.existingFrom, ids[0], n)
		if err != nil {
			return nil, err
		}
		if len(result.Rows) == 0 {
			return nil, errors.New("append found the first event ID recorded, then could not read it")
		}
	}
	return result, nil
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
