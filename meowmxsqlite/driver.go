// Package meowmxsqlite is the embedded SQLite driver for meowmx, on the
// pure-Go modernc.org/sqlite through database/sql.
//
//	db, err := meowmxsqlite.Open("events.db")
//	store, err := meowmx.New(meowmxsqlite.New(db), nil)
//
// A caller's transaction is a *sql.Tx. Writers are serialized: the driver
// writes in BEGIN IMMEDIATE transactions (and, within one process, behind a
// mutex, so goroutines queue instead of sleeping in SQLite's busy handler).
// The store's schema name becomes a table-name prefix ("meowmx_events").
package meowmxsqlite

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/meowmx/meowmx/meowmxdriver"
	"github.com/meowmx/meowmx/meowmxtype"
)

//go:embed migrations/*.sql
var migrationFS embed.FS

// BusyTimeout is how long, in milliseconds, a connection opened by Open waits
// for another process's write lock before failing with SQLITE_BUSY.
const BusyTimeout = 10000

// Open opens (creating if needed) the SQLite database at path with the
// settings meowmx relies on: WAL journal (readers never block the writer),
// a busy timeout, synchronous=FULL (a committed append survives a power
// loss), a page cache of up to 32 MiB per connection (so that appends and
// reads stay as fast on millions of events as on an empty file) and
// immediate write transactions. path may also be a "file:" URI.
// The caller closes the returned *sql.DB.
func Open(path string) (*sql.DB, error) {
	if path == "" {
		return nil, errors.New("meowmxsqlite: empty database path")
	}
	dsn := path
	if !strings.HasPrefix(dsn, "file:") {
		dsn = "file:" + (&url.URL{Path: path}).EscapedPath()
	}
	sep := "?"
	if strings.Contains(dsn, "?") {
		sep = "&"
	}
	dsn += sep + url.Values{
		"_pragma": {
			fmt.Sprintf("busy_timeout(%d)", BusyTimeout),
			"journal_mode(WAL)",
			"synchronous(FULL)",
			"cache_size(-32768)",
			"foreign_keys(1)",
		},
		"_txlock": {"immediate"},
	}.Encode()
	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, fmt.Errorf("meowmxsqlite: open %s: %w", path, err)
	}
	if err := db.Ping(); err != nil {
		db.Close()
		return nil, fmt.Errorf("meowmxsqlite: open %s: %w", path, err)
	}
	return db, nil
}

// Driver is the SQLite driver. Create it with New.
type Driver struct {
	db *sql.DB
	// writing serializes this process's own write transactions, appends and
	// subscription batches alike, in arrival order: waiting here is cheaper
	// and fairer than in SQLite's busy handler, which sleeps up to 100 ms
	// between tries.
	writing chan struct{}
	// turns counts the write turns taken, so that a writer waiting in line
	// can tell a queue that moves from one that does not; waiting counts
	// the writers in line.
	turns   atomic.Uint64
	waiting atomic.Int64
	held    sync.Map // *sql.Tx from Begin -> *heldTx
	stmts   sync.Map // schema -> *statements
}

// New returns a driver that runs on db, best opened with Open. The driver
// never closes db.
func New(db *sql.DB) *Driver {
	return &Driver{db: db, writing: make(chan struct{}, 1)}
}

// lock waits for this process's turn to write. A line that moves never
// times out, however long it is; a turn held for BusyTimeout without the
// line moving (as SQLite waits for another process's lock) fails: a
// subscription handler that calls Append instead of AppendTx gets an error,
// not a deadlock.
func (d *Driver) lock(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	select {
	case d.writing <- struct{}{}:
		d.turns.Add(1)
		return nil
	default:
	}
	d.waiting.Add(1)
	defer d.waiting.Add(-1)
	// The wait stays in one select, so that waiting writers keep their
	// place in line (the channel serves them first come, first served); a
	// watcher ends it if no turn is taken for BusyTimeout.
	waitCtx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	go func() {
		timer := time.NewTimer(BusyTimeout * time.Millisecond)
		defer timer.Stop()
		seen := d.turns.Load()
		for {
			select {
			case <-waitCtx.Done():
				return
			case <-timer.C:
				now := d.turns.Load()
				if now == seen {
					cancel(errLineStalled)
					return
				}
				seen = now
				timer.Reset(BusyTimeout * time.Millisecond)
			}
		}
	}()
	select {
	case d.writing <- struct{}{}:
		d.turns.Add(1)
		return nil
	case <-waitCtx.Done():
		if context.Cause(waitCtx) == errLineStalled {
			return fmt.Errorf("meowmxsqlite: waited %d ms for this process's other write transaction, which did not end (a subscription handler calling Append instead of AppendTx?): %w",
				BusyTimeout, errWriteTimeout)
		}
		return ctx.Err()
	}
}

func (d *Driver) unlock() { <-d.writing }

var (
	errWriteTimeout = errors.New("database is locked")
	errLineStalled  = errors.New("no write turn taken")
)

var _ meowmxdriver.Driver[*sql.Tx] = (*Driver)(nil)

// Name returns "sqlite".
func (d *Driver) Name() string { return "sqlite" }

// DB returns the database the driver was created with.
func (d *Driver) DB() *sql.DB { return d.db }

// Executor runs each call on the database; writes in their own transaction.
func (d *Driver) Executor() meowmxdriver.Executor { return &executor{driver: d} }

// UnwrapExecutor runs calls inside tx.
func (d *Driver) UnwrapExecutor(tx *sql.Tx) meowmxdriver.Executor {
	return &executor{driver: d, tx: tx}
}

// OnClusterChange does nothing: an SQLite database is a file, which keeps
// its positions wherever it is copied.
func (d *Driver) OnClusterChange(string, func(*meowmxdriver.ClusterChange)) (stop func()) {
	return func() {}
}

// Migrate applies the migrations the schema lacks in one immediate
// transaction, which also serializes concurrent migrating processes.
func (d *Driver) Migrate(ctx context.Context, schema string) (*meowmxdriver.MigrateResult, error) {
	st := d.statements(schema)
	migrations, err := meowmxdriver.LoadMigrations(migrationFS, "migrations", map[string]string{"prefix": st.prefix})
	if err != nil {
		return nil, err
	}
	result := &meowmxdriver.MigrateResult{}
	err = d.write(ctx, func(q querier) error {
		if _, err := q.ExecContext(ctx, st.createMigrations); err != nil {
			return err
		}
		rows, err := q.QueryContext(ctx, st.appliedMigrations)
		if err != nil {
			return err
		}
		var applied []int
		for rows.Next() {
			var v int
			if err := rows.Scan(&v); err != nil {
				rows.Close()
				return err
			}
			applied = append(applied, v)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		result.Applied, err = meowmxdriver.ApplyPending(migrations, applied, func(m meowmxdriver.Migration) error {
			if _, err := q.ExecContext(ctx, m.SQL); err != nil {
				return err
			}
			_, err := q.ExecContext(ctx, st.recordMigration, m.Version, m.Name)
			return err
		})
		return err
	})
	if err != nil {
		return nil, mapError(err)
	}
	return result, nil
}

// write runs fn in a BEGIN IMMEDIATE transaction on one connection,
// committing when fn returns nil and rolling back otherwise.
func (d *Driver) write(ctx context.Context, fn func(q querier) error) (err error) {
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := d.lock(ctx); err != nil {
		return err
	}
	defer d.unlock()
	conn, err := d.db.Conn(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, "BEGIN IMMEDIATE"); err != nil {
		return err
	}
	defer func() {
		if err != nil {
			_, _ = conn.ExecContext(context.WithoutCancel(ctx), "ROLLBACK")
		}
	}()
	if err := fn(conn); err != nil {
		return err
	}
	_, err = conn.ExecContext(ctx, "COMMIT")
	return err
}

func (d *Driver) statements(schema string) *statements {
	if st, ok := d.stmts.Load(schema); ok {
		return st.(*statements)
	}
	st, _ := d.stmts.LoadOrStore(schema, newStatements(schema))
	return st.(*statements)
}

// mapError turns SQLite errors into the driver package's sentinels, keeping
// the original in the chain.
func mapError(err error) error {
	var sqliteErr *sqlite.Error
	if !errors.As(err, &sqliteErr) {
		return err
	}
	switch sqliteErr.Code() {
	case sqlite3.SQLITE_BUSY, sqlite3.SQLITE_BUSY_SNAPSHOT, sqlite3.SQLITE_LOCKED:
		return fmt.Errorf("%w: %w", meowmxtype.ErrSerialization, err)
	case sqlite3.SQLITE_TOOBIG:
		return fmt.Errorf("%w: %w", meowmxtype.ErrInvalidInput, err)
	case sqlite3.SQLITE_ERROR:
		// SQLite has no code of its own for a missing table.
		if strings.Contains(sqliteErr.Error(), "no such table") {
			return fmt.Errorf("%w: %w", meowmxtype.ErrSchemaMissing, err)
		}
	}
	return err
}
