package meowmxpgxv5

import (
	"context"
	"errors"
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

	result := &meowmxdriver.AppendResult{}
	for rows.Next() {
		var (
			status  int
			current *int64
			row     meowmxdriver.EventRow
			txID    *uint64
			seq     *int64
			cat     *string
			sid     *string
			version *int64
			id      *[16]byte
			typ     *string
			at      *time.Time
		)
		if err := rows.Scan(&status, &current, &txID, &seq, &cat, &sid, &version, &id, &typ, &row.Data, &row.Metadata, &at); err != nil {
			return nil, mapError(err)
		}
		result.Status = meowmxdriver.AppendStatus(status)
		if current != nil {
			result.CurrentVersion = *current
		}
		if txID == nil { // conflict or too old: no event row
			continue
		}
		row.TransactionID, row.Seq, row.Version, row.ID, row.RecordedAt = *txID, *seq, *version, *id, *at
		if cat != nil {
			row.Category, row.StreamID = *cat, *sid
		} else {
			row.Category, row.StreamID = p.Category, p.StreamID
		}
		if typ != nil {
			row.Type = *typ
		}
		result.Rows = append(result.Rows, &row)
	}
	if err := rows.Err(); err != nil {
		return nil, mapError(err)
	}
	if result.Status == meowmxdriver.AppendRecorded && len(result.Rows) != n {
		return nil, errors.New("append returned no rows")
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
