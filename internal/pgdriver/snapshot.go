package pgdriver

import (
	"context"
	"errors"

	"github.com/jackc/pgx/v5"

	"github.com/meowmx/meowmx/meowmxdriver"
)

func (e *executor) SaveSnapshot(ctx context.Context, p *meowmxdriver.SnapshotRow) (bool, error) {
	n, err := e.exec(ctx, p.Schema, func(st *statements) (string, []any) {
		return st.saveSnapshot, []any{pgx.StrictNamedArgs{
			"category": p.Category, "stream_id": p.StreamID, "version": p.Version, "schema_version": p.SchemaVersion, "state": p.State,
		}}
	})
	return n == 1, err
}

func (e *executor) LoadSnapshot(ctx context.Context, schema, category, streamID string, schemaVersion int) (*meowmxdriver.SnapshotRow, error) {
	row := &meowmxdriver.SnapshotRow{Schema: schema, Category: category, StreamID: streamID, SchemaVersion: schemaVersion}
	err := e.row(ctx, schema, func(st *statements) (string, []any) {
		return st.loadSnapshot, []any{pgx.StrictNamedArgs{"category": category, "stream_id": streamID, "schema_version": schemaVersion}}
	}, &row.Version, &row.State)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return row, nil
}

func (e *executor) DeleteSnapshots(ctx context.Context, schema, category, streamID string) (int, error) {
	n, err := e.exec(ctx, schema, func(st *statements) (string, []any) {
		return st.deleteSnapshots, []any{pgx.StrictNamedArgs{"category": category, "stream_id": streamID}}
	})
	return int(n), err
}
