package pgdriver

import (
	"context"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Querier is what the driver's statements run on: a connection or a
// transaction, of pgx or of database/sql through an adapter. Its methods
// mean what pgx's do: a batch ends at its first failed statement, whose
// error is a *pgconn.PgError when the server refused it.
type Querier interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
	Begin(ctx context.Context) (pgx.Tx, error)
	SendBatch(ctx context.Context, b *pgx.Batch) pgx.BatchResults
}

// Conn is a Querier on one server session: a pooled connection, or the
// caller's transaction.
type Conn interface {
	Querier
	// Data is what the driver remembers of the connection (its cluster),
	// kept for as long as the connection lives; a fresh map where the
	// connection cannot keep one.
	Data() map[string]any
}

// PooledConn is an idle connection taken from a Pool.
type PooledConn interface {
	Conn
	BeginTx(ctx context.Context, opts pgx.TxOptions) (pgx.Tx, error)
	// Release gives the connection back to its pool.
	Release()
}

// Pool is where the driver takes its connections.
type Pool interface {
	Acquire(ctx context.Context) (PooledConn, error)
	// ListenConfig returns the configuration of a connection made like
	// the pool's, for LISTEN, or nil when it cannot tell.
	ListenConfig(ctx context.Context) (*pgx.ConnConfig, error)
}

// PgxPool is a pgx pool as a Pool.
type PgxPool struct{ *pgxpool.Pool }

func (p PgxPool) Acquire(ctx context.Context) (PooledConn, error) {
	conn, err := p.Pool.Acquire(ctx)
	if err != nil {
		return nil, err
	}
	return pgxConn{conn}, nil
}

func (p PgxPool) ListenConfig(context.Context) (*pgx.ConnConfig, error) {
	config := p.Config().ConnConfig.Copy()
	// pgx's own, which buffers the notifications Listen waits for.
	config.OnNotification = nil
	return config, nil
}

type pgxConn struct{ *pgxpool.Conn }

func (c pgxConn) Data() map[string]any { return c.Conn.Conn().PgConn().CustomData() }

// PgxTx is a pgx transaction as a Conn.
type PgxTx struct{ pgx.Tx }

func (t PgxTx) Data() map[string]any { return t.Conn().PgConn().CustomData() }
