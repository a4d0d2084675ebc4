// Package meowmxdatabasesql is the PostgreSQL driver for meowmx on a
// database/sql pool, for applications whose code runs on database/sql
// (sqlx, sqlc, GORM, bun, ent, or a plain *sql.DB):
//
//	db, err := sql.Open("pgx", "postgres://localhost:5432/app") // or "postgres" with lib/pq
//	store, err := meowmx.New(meowmxdatabasesql.New(db), nil)
//
// A caller's transaction is a *sql.Tx: AppendTx and subscription handlers
// take the application's own. The statements, guarantees and migrations are
// those of meowmxpgxv5, and a store may use either driver on the same
// schema.
//
// The *sql.DB may come from pgx's stdlib driver or from lib/pq. Through
// pgx's, arguments are encoded by pgx as with meowmxpgxv5, and the driver
// listens for other processes' appends on a connection of its own made
// like the pool's. Through lib/pq (or another driver), arguments go as text
// in PostgreSQL's input syntax, and the driver listens only where ListenURL
// says: without it, subscriptions poll, and the store says why once.
//
// Differences from meowmxpgxv5: database/sql has no batches, so a
// statement sequence that meowmxpgxv5 sends in one round trip (a grouped
// append: BEGIN, the statement, COMMIT) takes one round trip per statement;
// and no COPY, so large batches are inserted with INSERT statements of many
// rows. In a transaction of the application's the driver checks the
// cluster with one query per call: database/sql does not say which
// connection a transaction runs on, where meowmxpgxv5 remembers it per
// connection (as this driver does for the transactions it begins itself,
// those of subscription batches).
package meowmxdatabasesql

import (
	"context"
	"database/sql"
	"errors"
	"sync"

	"github.com/meowmx/meowmx/internal/pgdriver"
	"github.com/meowmx/meowmx/meowmxdriver"
)

// Driver is the PostgreSQL driver on a database/sql pool. Create it with
// New.
type Driver struct {
	core    *pgdriver.Driver
	db      *sql.DB
	dialect *dialect
	options []pgdriver.Option
	begun   sync.Map // *sql.Tx -> *begun
}

// New returns a driver that runs on db, a pool of connections to
// PostgreSQL opened with pgx's stdlib driver or with lib/pq. The pool stays
// the caller's: the driver never closes it.
//
// As with meowmxpgxv5, nothing the driver does relies on state of the
// pool's sessions, so db may go through PgBouncer in transaction pooling
// mode (see TransactionPooled).
func New(db *sql.DB, opts ...Option) *Driver {
	d := &Driver{db: db, dialect: newDialect(db)}
	for _, opt := range opts {
		opt(d)
	}
	d.core = pgdriver.New(&pool{db: db, d: d.dialect}, d.options...)
	return d
}

// Option configures a Driver.
type Option func(*Driver)

// ListenURL makes the driver listen for other processes' appends on a
// connection of its own to url (a PostgreSQL URL or keyword/value string),
// instead of one made like the pool's: the only way to listen through
// lib/pq, and a direct connection to PostgreSQL when the pool goes through
// a pooler in transaction mode.
func ListenURL(url string) Option {
	return func(d *Driver) { d.options = append(d.options, pgdriver.ListenURL(url)) }
}

// TransactionPooled says that the pool's connections go through a pooler in
// transaction pooling mode, such as PgBouncer with pool_mode = transaction.
// Without ListenURL the driver then does not listen: subscriptions poll
// (SubscriptionConfig.PollInterval), and the store says why once.
func TransactionPooled() Option {
	return func(d *Driver) { d.options = append(d.options, pgdriver.TransactionPooled()) }
}

var _ meowmxdriver.Driver[*sql.Tx] = (*Driver)(nil)

// Name returns "postgres".
func (d *Driver) Name() string { return d.core.Name() }

// DB returns the pool the driver was created with.
func (d *Driver) DB() *sql.DB { return d.db }

// Executor runs each call on a pooled connection.
func (d *Driver) Executor() meowmxdriver.Executor { return d.core.Executor() }

// UnwrapExecutor runs calls inside tx.
func (d *Driver) UnwrapExecutor(tx *sql.Tx) meowmxdriver.Executor {
	t := newTx(tx, d.dialect)
	if b, ok := d.begun.Load(tx); ok {
		t.data = b.(*begun).data
	}
	return d.core.UnwrapExecutor(t)
}

// Migrate applies the embedded migrations that schema lacks, as
// meowmxpgxv5's Migrate does.
func (d *Driver) Migrate(ctx context.Context, schema string) (*meowmxdriver.MigrateResult, error) {
	return d.core.Migrate(ctx, schema)
}

// OnClusterChange has report called with every change of schema's cluster
// that the driver finds and handles by itself, until the returned function
// is called.
func (d *Driver) OnClusterChange(schema string, report func(*meowmxdriver.ClusterChange)) (stop func()) {
	return d.core.OnClusterChange(schema, report)
}

// Listen holds one connection, outside the pool, listening on the schema's
// channel, until ctx ends or the connection fails. Without ListenURL it
// connects like the pool's connections through pgx's stdlib driver, and
// returns an error matching meowmxdriver.ErrNoListen through any other.
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
// It begins on a connection it takes from the pool itself, until Commit
// or Rollback, so that calls in the transaction find what the driver
// remembers of that connection (its cluster, checked once) as on
// meowmxpgxv5, instead of asking the server again.
func (d *Driver) Begin(ctx context.Context, synchronous bool) (*sql.Tx, error) {
	c, err := d.db.Conn(ctx)
	if err != nil {
		return nil, pgdriver.MapError(pgError(err))
	}
	data := d.dialect.connData(c)
	tx, err := c.BeginTx(ctx, nil)
	if err != nil {
		c.Close()
		return nil, pgdriver.MapError(pgError(err))
	}
	if !synchronous {
		if _, err := tx.ExecContext(ctx, pgdriver.AsynchronousCommitSQL); err != nil {
			_ = tx.Rollback()
			c.Close()
			return nil, pgdriver.MapError(pgError(err))
		}
	}
	d.begun.Store(tx, &begun{conn: c, data: data})
	return tx, nil
}

// begun is the connection of a transaction Begin began.
type begun struct {
	conn *sql.Conn
	data map[string]any
}

// end gives back the connection of tx, if Begin took one.
func (d *Driver) end(tx *sql.Tx) {
	if b, ok := d.begun.LoadAndDelete(tx); ok {
		b.(*begun).conn.Close()
	}
}

// Commit commits tx.
func (d *Driver) Commit(ctx context.Context, tx *sql.Tx) error {
	err := tx.Commit()
	d.end(tx)
	return pgdriver.MapError(pgError(err))
}

// Rollback rolls tx back.
func (d *Driver) Rollback(ctx context.Context, tx *sql.Tx) error {
	err := tx.Rollback()
	d.end(tx)
	if errors.Is(err, sql.ErrTxDone) {
		return nil
	}
	return err
}
