// Package pgdriver is meowmx's PostgreSQL driver, shared by meowmxpgxv5
// (a pgx pool) and meowmxdatabasesql (a database/sql pool): the statements
// and what runs them, on connections a Pool gives.
package pgdriver

import (
	"context"
	"embed"
	"errors"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/meowmx/meowmx/meowmxdriver"
	"github.com/meowmx/meowmx/meowmxtype"
)

//go:embed migrations/*.sql
var migrationFS embed.FS

// Driver is the PostgreSQL driver. Create it with New.
type Driver struct {
	pool Pool
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

// New returns a driver that runs on pool.
func New(pool Pool, opts ...Option) *Driver {
	d := &Driver{pool: pool, stmts: meowmxdriver.NewPerSchema(newStatements)}
	for _, opt := range opts {
		opt(d)
	}
	return d
}

// Option configures a Driver.
type Option func(*Driver)

// ListenURL makes Listen connect to url instead of where the pool does.
func ListenURL(url string) Option { return func(d *Driver) { d.listenURL = url } }

// TransactionPooled says that the pool's connections go through a pooler in
// transaction pooling mode: without ListenURL, Listen does not listen.
func TransactionPooled() Option { return func(d *Driver) { d.pooled = true } }

// withConn runs f on a pooled connection.
func (d *Driver) withConn(ctx context.Context, f func(PooledConn) error) error {
	conn, err := d.pool.Acquire(ctx)
	if err != nil {
		return err
	}
	defer conn.Release()
	return f(conn)
}

// Name returns "postgres".
func (d *Driver) Name() string { return "postgres" }

// Executor runs each call on a pooled connection; an append is one statement
// in a transaction of its own.
func (d *Driver) Executor() meowmxdriver.Executor { return &executor{driver: d} }

// UnwrapExecutor runs calls inside tx, the caller's transaction.
func (d *Driver) UnwrapExecutor(tx Conn) meowmxdriver.Executor {
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
	err = d.withConn(ctx, func(conn PooledConn) error {
		err := pgx.BeginTxFunc(ctx, conn, pgx.TxOptions{IsoLevel: pgx.ReadCommitted}, func(tx pgx.Tx) error {
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
			return err
		})
		if err == nil {
			conn.Data()[clusterKey] = clusterSeen{systemID: systemID, at: time.Now()}
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
