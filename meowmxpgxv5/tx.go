package meowmxpgxv5

import (
	"context"
	"errors"

	"github.com/jackc/pgx/v5"
)

// Begin starts a transaction on the pool. Unless synchronous, its commit
// does not wait for the WAL flush (synchronous_commit = off): a crash can
// lose the last such commits, all of whose writes then vanish together.
func (d *Driver) Begin(ctx context.Context, synchronous bool) (pgx.Tx, error) {
	tx, err := d.pool.Begin(ctx)
	if err != nil {
		return nil, mapError(err)
	}
	if !synchronous {
		if _, err := tx.Exec(ctx, "SET LOCAL synchronous_commit = off"); err != nil {
			_ = tx.Rollback(ctx)
			return nil, mapError(err)
		}
	}
	return tx, nil
}

// Commit commits tx.
func (d *Driver) Commit(ctx context.Context, tx pgx.Tx) error { return mapError(tx.Commit(ctx)) }

// Rollback rolls tx back.
func (d *Driver) Rollback(ctx context.Context, tx pgx.Tx) error {
	err := tx.Rollback(ctx)
	if errors.Is(err, pgx.ErrTxClosed) {
		return nil
	}
	return err
}
