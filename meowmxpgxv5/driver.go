// Package meowmxpgxv5 is the PostgreSQL driver for meowmx, on pgx v5.
//
//	pool, err := pgxpool.New(ctx, "postgres://localhost:5432/app")
//	store, err := meowmx.New(meowmxpgxv5.New(pool), nil)
//
// A caller's transaction is a pgx.Tx. PostgreSQL 14 or later is required
// (the global order relies on xid8 and pg_current_snapshot).
package meowmxpgxv5

import (
	"context"
	"embed"
	"errors"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/meowmx/meowmx/meowmxdriver"
	"github.com/meowmx/meowmx/meowmxtype"
)

//go:embed migrations/*.sql
var migrationFS embed.FS

// Driver is the PostgreSQL driver. Create it with New.
type Driver struct {
	pool *pgxpool.Pool
	// listenURL, when set, is where Listen connects instead of where the
	// pool does; pooled says that the pool goes through a pooler in
	// transaction mode (see the options).
	listenURL      string
	pooled         bool
	stmts          *meowmxdriver.PerSchema[statements]
	clusters       clusterChecks
	rebasing       sync.Map // schema -> chan struct{}, one re-base at a time
	clusterReports sync.Map // schema -> *clusterReport
	// self is the identity of the pool's database, for the replicas
	// reading for this driver (replica.go).
	self selfIdentity
}

// New returns a driver that runs on pool. The pool stays the caller's: the
// driver never closes it.
//
// Nothing the driver does relies on state of the pool's sessions: no
// session-level SET, no session advisory lock, no prepared statement of
// its own. Behind PgBouncer in transaction pooling mode, configure the pool
// not to name prepared statements either (pgx's
// default_query_exec_mode=cache_describe, or exec or simple_protocol), and
// give the driver ListenURL, a connection that bypasses the pooler, or
// TransactionPooled.
func New(pool *pgxpool.Pool, opts ...Option) *Driver {
	d := &Driver{pool: pool, stmts: meowmxdriver.NewPerSchema(newStatements)}
	for _, opt := range opts {
		opt(d)
	}
	return d
}

// Option configures a Driver.
type Option func(*Driver)

// ListenURL makes the driver listen for other processes' appends on a
// connection of its own to url, instead of one made like the pool's: a
// direct connection to PostgreSQL (or through a pooler in session mode) when
// the pool goes through a pooler in transaction mode, where a LISTEN does
// not outlive its transaction.
func ListenURL(url string) Option { return func(d *Driver) { d.listenURL = url } }

// TransactionPooled says that the pool's connections go through a pooler in
// transaction pooling mode, such as PgBouncer with pool_mode = transaction.
// Without ListenURL the driver then does not listen: subscriptions poll
// (SubscriptionConfig.PollInterval), and the store says why once.
// Notifications are still sent, for processes that listen directly.
func TransactionPooled() Option { return func(d *Driver) { d.pooled = true } }

var _ meowmxdriver.Driver[pgx.Tx] = (*Driver)(nil)

// Name returns "postgres".
func (d *Driver) Name() string { return "postgres" }

// Pool returns the pool the driver was created with.
func (d *Driver) Pool() *pgxpool.Pool { return d.pool }

// Executor runs each call on a pooled connection; an append is one statement
// in a transaction of its own.
func (d *Driver) Executor() meowmxdriver.Executor { return &executor{driver: d} }

// UnwrapExecutor runs calls inside tx.
func (d *Driver) UnwrapExecutor(tx pgx.Tx) meowmxdriver.Executor {
	return &executor{driver: d, tx: tx}
}

// Migrate applies the embedded migrations that schema lacks, in one
// transaction under an advisory lock, so that concurrent calls are safe and
// an up-to-date schema is left untouched. It then checks, in the same
// transaction, that new positions will follow the stored ones on this
// cluster, and re-bases them if not (see cluster.go).
func (d *Driver) Migrate(ctx context.Context, schema string) (*meowmxdriver.MigrateResult, error) {
	st := d.statements(schema)
	migrations, err := meowmxdriver.LoadMigrations(migrationFS, "migrations", map[string]string{
		"schema": st.ident,
	})
	if err != nil {
		return nil, err
	}
	result := &meowmxdriver.MigrateResult{}
	var systemID int64
	// Read committed whatever the server's default: what the cluster check
	// reads after the lock must be the latest.
	err = pgx.BeginTxFunc(ctx, d.pool, pgx.TxOptions{IsoLevel: pgx.ReadCommitted}, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, migrateLockSQL, schema); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, st.createMigrations); err != nil {
			return err
		}
		rows, err := tx.Query(ctx, st.appliedMigrations)
		if err != nil {
			return err
		}
		applied, err := pgx.CollectRows(rows, pgx.RowTo[int])
		if err != nil {
			return err
		}
		result.Applied, err = meowmxdriver.ApplyPending(migrations, applied, func(m meowmxdriver.Migration) error {
			if _, err := tx.Exec(ctx, m.SQL); err != nil {
				return err
			}
			_, err := tx.Exec(ctx, st.recordMigration, pgx.StrictNamedArgs{"version": m.Version, "name": m.Name})
			return err
		})
		if err != nil {
			return err
		}
		result.Cluster, systemID, err = reconcile(ctx, tx, st, false)
		if err == nil {
			tx.Conn().PgConn().CustomData()[clusterKey] = clusterSeen{systemID: systemID, at: time.Now()}
		}
		return err
	})
	if err != nil {
		return nil, mapError(err)
	}
	d.clusters.mark(schema, systemID)
	return result, nil
}

func (d *Driver) statements(schema string) *statements { return d.stmts.Get(schema) }

// mapError turns PostgreSQL errors into meowmxtype's errors,
// keeping the original in the chain.
func mapError(err error) error {
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) {
		return err
	}
	switch pgErr.Code {
	case "23505":
		switch pgErr.ConstraintName {
		case "events_event_id_key":
			return meowmxdriver.Classify(meowmxtype.ErrDuplicateEventID, err)
		case "events_stream_version_key":
			return meowmxdriver.Classify(meowmxdriver.ErrVersionTaken, err)
		}
	case "40001", "40P01":
		return meowmxdriver.Classify(meowmxtype.ErrSerialization, err)
	case "55P03": // lock_not_available: a lock timeout
		return meowmxdriver.Classify(meowmxtype.ErrSerialization, err)
	case "3F000", "42P01", "42883":
		return meowmxdriver.Classify(meowmxtype.ErrSchemaMissing, err)
	case "54000", "54001":
		// A key too large for an index, a document nested too deeply.
		return meowmxdriver.Classify(meowmxtype.ErrInvalidInput, err)
	}
	if strings.HasPrefix(pgErr.Code, "22") { // data exception
		return meowmxdriver.Classify(meowmxtype.ErrInvalidInput, err)
	}
	return err
}
