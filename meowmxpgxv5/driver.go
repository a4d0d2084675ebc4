// Package meowmxpgxv5 is the PostgreSQL driver for meowmx, on pgx v5.
//
//	pool, err := pgxpool.New(ctx, "postgres://localhost:5432/app")
//	store, err := meowmx.New(meowmxpgxv5.New(pool), nil)
//
// A caller's transaction is a pgx.Tx. PostgreSQL 14 or later is required
// (the global order relies on xid8 and pg_current_snapshot).
//
// meowmxdatabasesql runs the same statements on a database/sql pool.
package meowmxpgxv5

import (
	"context"
	"errors"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/meowmx/meowmx/internal/pgdriver"
	"github.com/meowmx/meowmx/meowmxdriver"
)

// Driver is the PostgreSQL driver on a pgx pool. Create it with New.
type Driver struct {
	core    *pgdriver.Driver
	pool    *pgxpool.Pool
	options []pgdriver.Option
}

// New returns a driver that runs on pool. The pool stays the caller's: the
// driver never closes it.
//
// Nothing the driver does relies on state of the pool's sessions: no
// session-level SET, no session advisory lock, no prepared statement of
// its own. Behind PgBouncer in transaction pooling mode, configure the pool
// not to name prepared statements either (pgx's
// default_query_exec_mode=cache_describe), and give the driver ListenURL, a
// connection that bypasses the pooler, or TransactionPooled.
func New(pool *pgxpool.Pool, opts ...Option) *Driver {
	d := &Driver{pool: pool}
	for _, opt := range opts {
		opt(d)
	}
	d.core = pgdriver.New(pgdriver.PgxPool{Pool: pool}, d.options...)
	return d
}

// Option configures a Driver.
type Option func(*Driver)

// ListenURL makes the driver listen for other processes' appends on a
// connection of its own to url, instead of one made like the pool's: a
// direct connection to PostgreSQL (or through a pooler in session mode) when
// the pool goes through a pooler in transaction mode, where a LISTEN does
// not outlive its transaction.
func ListenURL(url string) Option {
	return func(d *Driver) { d.options = append(d.options, pgdriver.ListenURL(url)) }
}

// TransactionPooled says that the pool's connections go through a pooler in
// transaction pooling mode, such as PgBouncer with pool_mode = transaction.
// Without ListenURL the driver then does not listen: subscriptions poll
// (SubscriptionConfig.PollInterval), and the store says why once.
// Notifications are still sent, for processes that listen directly.
func TransactionPooled() Option {
	return func(d *Driver) { d.options = append(d.options, pgdriver.TransactionPooled()) }
}

var _ meowmxdriver.Driver[pgx.Tx] = (*Driver)(nil)

// Name returns "postgres".
func (d *Driver) Name() string { return d.core.Name() }

// Pool returns the pool the driver was created with.
func (d *Driver) Pool() *pgxpool.Pool { return d.pool }

// Executor runs each call on a pooled connection; an append is one statement
// in a transaction of its own.
func (d *Driver) Executor() meowmxdriver.Executor { return d.core.Executor() }

// UnwrapExecutor runs calls inside tx.
func (d *Driver) UnwrapExecutor(tx pgx.Tx) meowmxdriver.Executor {
	return d.core.UnwrapExecutor(pgdriver.PgxTx{Tx: tx})
}

// Migrate applies the embedded migrations that schema lacks, in one
// transaction under an advisory lock, so that concurrent calls are safe and
// an up-to-date schema is left untouched. It then checks, in the same
// transaction, that new positions will follow the stored ones on this
// cluster, and re-bases them if not.
func (d *Driver) Migrate(ctx context.Context, schema string) (*meowmxdriver.MigrateResult, error) {
	return d.core.Migrate(ctx, schema)
}

// OnClusterChange has report called with every change of schema's cluster
// that the driver finds and handles by itself (Migrate returns its own),
// until the returned function is called. A later call for the same schema
// takes its place.
func (d *Driver) OnClusterChange(schema string, report func(*meowmxdriver.ClusterChange)) (stop func()) {
	return d.core.OnClusterChange(schema, report)
}

// Listen holds one connection, outside the pool, listening on the schema's
// channel, and calls wake with each notification's category, until ctx ends
// or the connection fails. With ListenURL it connects there; with
// TransactionPooled and no ListenURL it returns an error matching
// meowmxdriver.ErrNoListen that says why.
func (d *Driver) Listen(ctx context.Context, schema string, listening func(), wake func(category string)) error {
	return d.core.Listen(ctx, schema, listening, wake)
}

// Notify sends one notification per category on the schema's channel.
func (d *Driver) Notify(ctx context.Context, schema string, categories []string) error {
	return d.core.Notify(ctx, schema, categories)
}

// Begin starts a transaction on the pool. Unless synchronous, its commit
// does not wait for the WAL flush (synchronous_commit = off): a crash can
// lose the last such commits, all of whose writes then vanish together.
//
// Either way it takes one round trip: the SET goes with the BEGIN, as one
// string of statements.
func (d *Driver) Begin(ctx context.Context, synchronous bool) (pgx.Tx, error) {
	var opts pgx.TxOptions
	if !synchronous {
		opts.BeginQuery = asynchronousBegin
	}
	tx, err := d.pool.BeginTx(ctx, opts)
	if err != nil {
		return nil, pgdriver.MapError(err)
	}
	return tx, nil
}

// asynchronousBegin begins a transaction whose commit does not wait for the
// WAL flush.
const asynchronousBegin = "BEGIN; " + pgdriver.AsynchronousCommitSQL

// Commit commits tx.
func (d *Driver) Commit(ctx context.Context, tx pgx.Tx) error {
	return pgdriver.MapError(tx.Commit(ctx))
}

// Rollback rolls tx back.
func (d *Driver) Rollback(ctx context.Context, tx pgx.Tx) error {
	err := tx.Rollback(ctx)
	if errors.Is(err, pgx.ErrTxClosed) {
		return nil
	}
	return err
}

// Channel is the LISTEN/NOTIFY channel of a schema: an append notifies it
// with the event's category after commit.
func Channel(schema string) string { return pgdriver.Channel(schema) }

// Replica serves meowmx's reads from a hot standby of the primary (a
// physical streaming replica, as pg_basebackup -R makes): pass it as
// meowmx.Config.Replica. Create it with NewReplica.
//
// A standby has the primary's system identifier and databases, and replays
// its transactions, events table and position functions: a position read
// there is the primary's. Its visibility horizon comes from the
// transactions the standby knows to be running on the primary, so a global
// read on it never returns an event while an older transaction of the
// primary may still commit one before it.
//
// Before a standby's connection serves a schema, and again every minute,
// the replica checks that it reaches the primary's database on a copy of
// its cluster (the same system identifier and database OID; the primary
// itself passes too) and that the schema's record there is current.
// Anything else (a logical replica or a restored copy, with other
// transaction ids; another database) fails the read with
// meowmxtype.ErrReplicaMismatch. It reads for the drivers of this package
// and of meowmxdatabasesql.
type Replica struct {
	replica *pgdriver.Replica
	pool    *pgxpool.Pool
}

// NewReplica returns a replica that reads through pool, a pool of
// connections to a hot standby (hot_standby on, the default). The pool stays
// the caller's: the replica never closes it. Nothing is ever written
// through it.
func NewReplica(pool *pgxpool.Pool) *Replica {
	return &Replica{replica: pgdriver.NewReplica(pgdriver.PgxPool{Pool: pool}), pool: pool}
}

// Name returns "postgres".
func (r *Replica) Name() string { return r.replica.Name() }

// ReplicaExecutor returns the executor of reads on the standby for primary,
// an executor of this package's Driver or of meowmxdatabasesql's.
func (r *Replica) ReplicaExecutor(primary meowmxdriver.Executor) (meowmxdriver.Executor, error) {
	return r.replica.ReplicaExecutor(primary)
}

var _ meowmxdriver.Replica = (*Replica)(nil)

// Pool returns the pool the replica was created with.
func (r *Replica) Pool() *pgxpool.Pool { return r.pool }
