// Package meowmxsqlite is the embedded SQLite driver for meowmx, on the
// pure-Go modernc.org/sqlite through database/sql.
//
//	db, err := meowmxsqlite.Open("events.db")
//	store, err := meowmx.New(meowmxsqlite.New(db), nil)
//
// A caller's transaction is a *sql.Tx. Writers are serialized: the driver
// writes in BEGIN IMMEDIATE transactions, or in a single autocommit
// statement (a lone append with an exact expected version), and within one
// process behind a mutex, so goroutines queue instead of sleeping in
// SQLite's busy handler.
// The store's schema name becomes a table-name prefix ("meowmx_events").
package meowmxsqlite

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"embed"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"

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
	connector, err := sqlite.NewConnector(dsn)
	if err != nil {
		return nil, fmt.Errorf("meowmxsqlite: open %s: %w", path, err)
	}
	db := sql.OpenDB(immediateConnector{connector})
	if err := db.Ping(); err != nil {
		db.Close()
		return nil, fmt.Errorf("meowmxsqlite: open %s: %w", path, err)
	}
	return db, nil
}

// immediateConnector is the connector of the databases Open returns, whose
// transactions begin IMMEDIATE (_txlock): New recognises them by their
// driver (sql.DB.Driver), and runs its write transactions through
// database/sql, with prepared statements; on any other database it sends
// BEGIN IMMEDIATE itself, on a connection, without them.
type immediateConnector struct{ driver.Connector }

func (c immediateConnector) Driver() driver.Driver { return immediateDriver{c.Connector.Driver()} }

type immediateDriver struct{ driver.Driver }

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
	stmts   *meowmxdriver.PerSchema[statements]
	cache   *stmtCache
	// immediate: db came from Open, so its BeginTx begins IMMEDIATE.
	immediate bool
}

// New returns a driver that runs on db, best opened with Open. The driver
// never closes db.
//
// Its write transactions begin IMMEDIATE, so that a writer takes SQLite's
// write lock before it reads. On a database from Open they run through
// database/sql with statements prepared once per connection; on a database
// opened otherwise, on a connection with SQL text, a little slower.
func New(db *sql.DB) *Driver {
	immediate := false
	if db != nil {
		_, immediate = db.Driver().(immediateDriver)
	}
	return &Driver{db: db, writing: make(chan struct{}, 1), stmts: meowmxdriver.NewPerSchema(newStatements),
		cache: newStmtCache(db), immediate: immediate}
}

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

// Migrate applies the migrations the schema lacks in one immediate
// transaction, which also serializes concurrent migrating processes.
func (d *Driver) Migrate(ctx context.Context, schema string) (*meowmxdriver.MigrateResult, error) {
	st := d.statements(schema)
	migrations, err := meowmxdriver.LoadMigrations(migrationFS, "migrations", map[string]string{"prefix": st.prefix})
	if err != nil {
		return nil, err
	}
	result := &meowmxdriver.MigrateResult{}
	err = d.writeTx(ctx, func(q querier) error {
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

func (d *Driver) statements(schema string) *statements { return d.stmts.Get(schema) }

// mapError turns SQLite errors into meowmxtype's errors, keeping
// the original in the chain.
func mapError(err error) error {
	var sqliteErr *sqlite.Error
	if !errors.As(err, &sqliteErr) {
		return err
	}
	switch sqliteErr.Code() {
	case sqlite3.SQLITE_BUSY, sqlite3.SQLITE_BUSY_SNAPSHOT, sqlite3.SQLITE_LOCKED:
		return meowmxdriver.Classify(meowmxtype.ErrSerialization, err)
	case sqlite3.SQLITE_TOOBIG:
		return meowmxdriver.Classify(meowmxtype.ErrInvalidInput, err)
	case sqlite3.SQLITE_CONSTRAINT_UNIQUE:
		return meowmxdriver.Classify(errUniqueViolation, err)
	case sqlite3.SQLITE_ERROR:
		// SQLite has no code of its own for a missing table.
		if strings.Contains(sqliteErr.Error(), "no such table") {
			return meowmxdriver.Classify(meowmxtype.ErrSchemaMissing, err)
		}
	}
	return err
}

// Listen returns meowmxdriver.ErrNoListen: SQLite has no notifications.
// meowmx wakes subscriptions of appends made in the same process and polls
// for the others.
func (d *Driver) Listen(context.Context, string, func(), func(string)) error {
	return meowmxdriver.ErrNoListen
}

// Notify returns meowmxdriver.ErrNoListen: SQLite has no notifications
// between processes.
func (d *Driver) Notify(context.Context, string, []string) error { return meowmxdriver.ErrNoListen }

// errUniqueViolation is a unique index refusing a row; which one, the
// append asks the database (SQLite's error does not say).
var errUniqueViolation = errors.New("unique constraint failed")
