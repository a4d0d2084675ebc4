package meowmxsqlite

import (
	"context"
	"database/sql"
	"errors"
	"time"

	"github.com/meowmx/meowmx/meowmxdriver"
)

func (e *executor) SaveSnapshot(ctx context.Context, p *meowmxdriver.SnapshotRow) (bool, error) {
	st := e.driver.statements(p.Schema)
	var n int64
	err := e.inWriteTx(ctx, func(q querier) error {
		res, err := q.ExecContext(ctx, st.saveSnapshot, p.Category, p.StreamID, p.Version, p.SchemaVersion, string(p.State), micros(time.Now()))
		if err != nil {
			return err
		}
		n, err = res.RowsAffected()
		return err
	})
	return n == 1, err
}

func (e *executor) LoadSnapshot(ctx context.Context, schema, category, streamID string, schemaVersion int) (*meowmxdriver.SnapshotRow, error) {
	row := &meowmxdriver.SnapshotRow{Schema: schema, Category: category, StreamID: streamID, SchemaVersion: schemaVersion}
	err := e.reader().QueryRowContext(ctx, e.driver.statements(schema).loadSnapshot, category, streamID, schemaVersion).Scan(&row.Version, &row.State)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, mapError(err)
	}
	return row, nil
}

func (e *executor) DeleteSnapshots(ctx context.Context, schema, category, streamID string) (int, error) {
	st := e.driver.statements(schema)
	var n int64
	err := e.inWriteTx(ctx, func(q querier) error {
		res, err := q.ExecContext(ctx, st.deleteSnapshots, category, streamID)
		if err != nil {
			return err
		}
		n, err = res.RowsAffected()
		return err
	})
	return int(n), err
}
