package main

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/meowmx/meowmx"
	"github.com/meowmx/meowmx/meowmxpgxv5"
	"github.com/meowmx/meowmx/meowmxsqlite"
)

// storeAPI is what every command needs of a store, whatever its driver.
type storeAPI interface {
	Migrate(ctx context.Context) error
	MigrateWithResult(ctx context.Context) (*meowmx.MigrateResult, error)
	Append(ctx context.Context, stream meowmx.Stream, expected meowmx.ExpectedVersion, events ...meowmx.Event) ([]meowmx.RecordedEvent, error)
	ReadStream(ctx context.Context, stream meowmx.Stream, opts *meowmx.ReadStreamOpts) ([]meowmx.RecordedEvent, error)
	ReadCategory(ctx context.Context, category string, after meowmx.Position, opts *meowmx.ReadOpts) ([]meowmx.RecordedEvent, error)
	ReadAll(ctx context.Context, after meowmx.Position, opts *meowmx.ReadOpts) ([]meowmx.RecordedEvent, error)
	StreamVersion(ctx context.Context, stream meowmx.Stream) (int64, error)
	SubscriptionStatuses(ctx context.Context, name string) ([]meowmx.SubscriptionStatus, error)
	SubscriptionLags(ctx context.Context, limit int64) ([]meowmx.SubscriptionLag, error)
	ResetSubscription(ctx context.Context, name string, from meowmx.SubscriptionFrom) error
	ParkedEvents(ctx context.Context, name string) ([]meowmx.ParkedEvent, error)
	ReplayParked(ctx context.Context, name string) (int, error)
	DeleteSubscription(ctx context.Context, name string) error
	Horizon(ctx context.Context) (*meowmx.Horizon, error)
	Streams(ctx context.Context, opts *meowmx.StreamsOpts) ([]meowmx.StreamInfo, error)
	Categories(ctx context.Context, opts *meowmx.CategoriesOpts) ([]meowmx.CategoryInfo, error)
	Schema() string
	Close() error
}

// backend is an open store: api for everything, and the typed store of its
// driver for what needs the transaction type.
type backend struct {
	api    storeAPI
	pg     *meowmx.Store[pgx.Tx]
	lite   *meowmx.Store[*sql.Tx]
	liteDB *sql.DB
	pool   *pgxpool.Pool
	db     *database
	label  string // the database, password masked
	close  func()
}

// logger returns the library's logger for the command: warnings and errors
// go to stderr, and info logs (a migration applied) are dropped so that they
// stay off the command's output.
func logger(e *env) *slog.Logger {
	return slog.New(slog.NewTextHandler(e.stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
}

// open connects to the database --db names.
func open(e *env) (*backend, error) {
	d, err := parseDatabase(e.db)
	if err != nil {
		return nil, err
	}
	return openDatabase(e, d)
}

func openDatabase(e *env, d *database) (*backend, error) {
	cfg := &meowmx.Config{Schema: e.schema, Logger: logger(e), Observer: e.observer}
	var replica *database
	if e.replica != "" {
		var err error
		if replica, err = parseDatabase(e.replica); err != nil {
			return nil, err
		}
		if !d.postgres || !replica.postgres {
			return nil, usagef("--replica needs PostgreSQL, for both it and --db")
		}
	}
	var driverOpts []meowmxpgxv5.Option
	switch {
	case e.listenDB == "":
	case !d.postgres:
		return nil, usagef("--listen-db needs a PostgreSQL --db")
	case e.listenDB == "none":
		driverOpts = append(driverOpts, meowmxpgxv5.TransactionPooled())
	default:
		listen, err := parseDatabase(e.listenDB)
		if err != nil {
			return nil, err
		}
		if !listen.postgres {
			return nil, usagef("--listen-db: want a PostgreSQL database or none")
		}
		driverOpts = append(driverOpts, meowmxpgxv5.ListenURL(listen.conn))
	}
	if d.postgres {
		pool, err := connect(e, d)
		if err != nil {
			return nil, err
		}
		closeAll := pool.Close
		if replica != nil {
			standby, err := connect(e, replica)
			if err != nil {
				pool.Close()
				return nil, err
			}
			cfg.Replica = meowmxpgxv5.NewReplica(standby)
			closeAll = func() {
				standby.Close()
				pool.Close()
			}
		}
		store, err := meowmx.New(meowmxpgxv5.New(pool, driverOpts...), cfg)
		if err != nil {
			closeAll()
			return nil, &usageError{msg: err.Error()}
		}
		return &backend{api: store, pg: store, pool: pool, db: d, label: d.label, close: func() {
			store.Close() // first: it notifies other processes of this one's appends
			closeAll()
		}}, nil
	}
	db, err := meowmxsqlite.Open(d.conn)
	if err != nil {
		return nil, fmt.Errorf("cannot open %s: %w", d.conn, err)
	}
	store, err := meowmx.New(meowmxsqlite.New(db), cfg)
	if err != nil {
		db.Close()
		return nil, &usageError{msg: err.Error()}
	}
	return &backend{api: store, lite: store, liteDB: db, db: d, label: d.label, close: func() {
		store.Close()
		db.Close()
	}}, nil
}

// connect returns a pool of connections to the PostgreSQL database d, once
// one connection has been made.
func connect(e *env, d *database) (*pgxpool.Pool, error) {
	poolCfg, err := pgxpool.ParseConfig(d.conn)
	if err != nil {
		return nil, &usageError{msg: fmt.Sprintf("bad connection string %s: %s", d.label, d.mask(err.Error()))}
	}
	ctx, cancel := context.WithTimeout(e.ctx, 10*time.Second)
	defer cancel()
	pool, err := pgxpool.NewWithConfig(ctx, poolCfg)
	if err == nil {
		err = pool.Ping(ctx)
		if err != nil {
			pool.Close()
		}
	}
	if err != nil {
		return nil, fmt.Errorf("cannot connect to %s: %s", d.label, d.mask(err.Error()))
	}
	return pool, nil
}

// openMigrated opens the store and checks that its schema exists, with the
// hint to run "meowmx migrate" when it does not. An SQLite file that does
// not exist is not created.
func openMigrated(e *env) (*backend, error) {
	d, err := parseDatabase(e.db)
	if err != nil {
		return nil, err
	}
	if !d.postgres && !d.exists() {
		return nil, fmt.Errorf("no SQLite database at %s: run %q first", d.conn, migrateCommand(e, d))
	}
	b, err := openDatabase(e, d)
	if err != nil {
		return nil, err
	}
	if _, err := b.api.StreamVersion(e.ctx, meowmx.NewStream("meowmx", "probe")); err != nil {
		b.close()
		if errors.Is(err, meowmx.ErrSchemaMissing) {
			return nil, fmt.Errorf("schema %q is missing in %s: run %q first", b.api.Schema(), b.label, migrateCommand(e, d))
		}
		return nil, err
	}
	return b, nil
}

// migrateCommand is the "meowmx migrate" command line for the database and
// schema the user gave (the password masked).
func migrateCommand(e *env, d *database) string { return commandLine(e, d, "migrate") }

// commandLine is a meowmx command line with the --db (password masked) and
// --schema the user gave, then words.
func commandLine(e *env, d *database, words ...string) string {
	cmd := "meowmx"
	if !e.dbDefault {
		cmd += " --db '" + strings.ReplaceAll(d.label, "'", `'\''`) + "'"
	}
	if e.schema != "" {
		cmd += " --schema " + shellQuote(e.schema)
	}
	for _, w := range words {
		cmd += " " + w
	}
	return cmd
}

func isConflict(err error) bool { return errors.Is(err, meowmx.ErrVersionConflict) }

func isInvalidInput(err error) bool { return errors.Is(err, meowmx.ErrInvalidInput) }
