package bench

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/meowmx/meowmx"
	"github.com/meowmx/meowmx/meowmxdatabasesql"
	"github.com/meowmx/meowmx/meowmxpgxv5"
	"github.com/meowmx/meowmx/meowmxsqlite"
)

// Database is where a benchmark runs: meowmx's store and the raw SQL of the
// baselines, on the same connections.
type Database struct {
	name   string // what it is, with its version
	driver string // "postgres" or "sqlite"
	// store makes a store on the database (one per call: the latency
	// scenario writes through another store, as another process would).
	store func() (*side, error)
	// observed makes a store on the database told to obs (for --otel,
	// used in turn with the other stores, never at the same time).
	observed func(obs meowmx.Observer) (*side, error)
	raw      raw
	// replicated makes a store whose reads go to a hot standby (nil
	// without AddReplica); replayed waits until the standby has replayed
	// every commit made so far on the primary.
	replicated func() (*side, error)
	replayed   func(ctx context.Context) error
	// reset drops the benchmark's tables and creates them again, empty.
	reset func(ctx context.Context) error
	close func()
}

// Name says what the database is, with its version.
func (d *Database) Name() string { return d.name }

// Close closes the connections.
func (d *Database) Close() { d.close() }

// side is what the scenarios need of a meowmx store, whatever its driver.
type side struct {
	append func(ctx context.Context, stream meowmx.Stream, expected meowmx.ExpectedVersion, events ...meowmx.Event) ([]meowmx.RecordedEvent, error)
	// appendEvents appends events without a stream, on a condition or not.
	appendEvents func(ctx context.Context, cond *meowmx.AppendCondition, events ...meowmx.Event) ([]meowmx.RecordedEvent, error)
	// lastOf reads the events of a query after a position and returns the
	// last one's position (after, if there is none).
	lastOf     func(ctx context.Context, q meowmx.Query, after meowmx.Position) (meowmx.Position, error)
	readStream func(ctx context.Context, stream meowmx.Stream) ([]meowmx.RecordedEvent, error)
	// subscribe starts a subscription from the start (or the end) whose
	// handler calls handle, and returns the function that stops it.
	subscribe func(ctx context.Context, name string, fromEnd bool, batch int, handle func([]meowmx.RecordedEvent)) (func(context.Context) error, error)
	close     func() error
}

func sideOf[TTx any](s *meowmx.Store[TTx]) *side {
	return &side{
		append:       s.Append,
		appendEvents: s.AppendEvents,
		lastOf: func(ctx context.Context, q meowmx.Query, after meowmx.Position) (meowmx.Position, error) {
			for e, err := range s.QueryEvents(ctx, q, after, nil) {
				if err != nil {
					return after, err
				}
				after = e.Position
			}
			return after, nil
		},
		readStream: func(ctx context.Context, stream meowmx.Stream) ([]meowmx.RecordedEvent, error) {
			return s.ReadStream(ctx, stream, nil)
		},
		subscribe: func(ctx context.Context, name string, fromEnd bool, batch int, handle func([]meowmx.RecordedEvent)) (func(context.Context) error, error) {
			from := meowmx.FromStart
			if fromEnd {
				from = meowmx.FromEnd
			}
			sub, err := s.Subscribe(meowmx.SubscriptionConfig[TTx]{
				Name: name, From: from, BatchSize: batch,
				Logger: slog.New(slog.DiscardHandler),
				Handler: func(_ context.Context, _ TTx, events []meowmx.RecordedEvent) error {
					handle(events)
					return nil
				},
			})
			if err != nil {
				return nil, err
			}
			if err := sub.Start(ctx); err != nil {
				return nil, err
			}
			return sub.Stop, nil
		},
		close: s.Close,
	}
}

// raw is the baselines' SQL: a plain table with a bigserial key and a unique
// (stream, version) index, and plain SELECTs on meowmx's events table.
type raw interface {
	// insert writes n rows of stream at versions from version on, in one
	// autocommit INSERT.
	insert(ctx context.Context, stream string, version int64, typ string, data []byte, n int) error
	// lastVersion is the highest version of stream in the plain table, -1
	// if none.
	lastVersion(ctx context.Context, stream string) (int64, error)
	// readStream selects a stream of meowmx's events table, ordered by
	// version, and returns how many rows it read.
	readStream(ctx context.Context, category, streamID string) (int, error)
	// scan reads meowmx's whole events table in global order, in keyset
	// pages of pageSize, and returns how many rows it read.
	scan(ctx context.Context, pageSize int) (int, error)
	// fill adds rows to the plain table, in large server-side batches.
	fill(ctx context.Context, rows int, typ string, data []byte, progress func(done int)) error
	// analyze brings both tables' statistics (and visibility) up to date.
	analyze(ctx context.Context) error
	// notifyLatency measures the raw push path: an INSERT and a NOTIFY in
	// one transaction, received by a LISTEN connection. errNoNotify if the
	// database has none.
	notifyLatency(ctx context.Context, perSecond int, warmUp, d time.Duration) ([]time.Duration, error)
}

var errNoNotify = errors.New("no notifications between connections")

// inserts makes the plain table's n-row INSERT statements, with numbered
// parameters marked by mark ($1 or ?1): the stream, then each row's own
// version, type and data (as each event of a batch has its own data).
type inserts struct {
	table string
	mark  byte
	mu    sync.Mutex
	byN   map[int]string
}

func newInserts(table string, mark byte) *inserts {
	return &inserts{table: table, mark: mark, byN: map[int]string{}}
}

func (in *inserts) sql(n int) string {
	in.mu.Lock()
	defer in.mu.Unlock()
	if q, ok := in.byN[n]; ok {
		return q
	}
	var b strings.Builder
	b.WriteString(`INSERT INTO ` + in.table + ` (stream, version, type, data) VALUES `)
	for i := range n {
		if i > 0 {
			b.WriteString(", ")
		}
		m := string(in.mark)
		fmt.Fprintf(&b, "(%s1, %s%d, %s%d, %s%d)", m, m, 3*i+2, m, 3*i+3, m, 3*i+4)
	}
	in.byN[n] = b.String()
	return in.byN[n]
}

// insertArgs are the arguments of inserts.sql(n).
func insertArgs(stream string, version int64, typ string, data any, n int) []any {
	args := make([]any, 1, 1+3*n)
	args[0] = stream
	for i := range n {
		args = append(args, version+int64(i), typ, data)
	}
	return args
}

// isUniqueViolation reports a duplicate (stream, version) in the plain table.
func isUniqueViolation(err error) bool {
	return sqlState(err) == "23505" || err != nil && strings.Contains(err.Error(), "UNIQUE constraint failed")
}

// sqlState is a PostgreSQL error's SQLSTATE, through pgx or lib/pq; "" for
// any other error.
func sqlState(err error) string {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		return pgErr.Code
	}
	var fields interface{ Get(byte) string } // lib/pq's *pq.Error
	if errors.As(err, &fields) {
		return fields.Get('C')
	}
	return ""
}

// newPGRaw is the baselines of schema, run by q.
func newPGRaw(q pgSQL, schema string) *pgRaw {
	p := &pgRaw{sql: q, schema: schema,
		table:  pgx.Identifier{schema, "baseline"}.Sanitize(),
		events: pgx.Identifier{schema, "events"}.Sanitize()}
	p.inserts = newInserts(p.table, '$')
	return p
}

// OpenPostgres connects to url with a pool of maxConns connections shared by
// meowmx and the baselines; the benchmark's tables live in schema.
func OpenPostgres(ctx context.Context, url, schema string, maxConns int) (*Database, error) {
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, err
	}
	cfg.MaxConns = int32(maxConns)
	cfg.MinConns = 0
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, err
	}
	p := newPGRaw(pgxSQL{pool}, schema)
	p.pool = pool
	newStore := func(cfg *meowmx.Config) (*side, func(context.Context) error, error) {
		s, err := meowmx.New(meowmxpgxv5.New(pool), cfg)
		if err != nil {
			return nil, nil, err
		}
		return sideOf(s), s.Migrate, nil
	}
	return openPostgres(ctx, p, fmt.Sprintf("%d connections", maxConns), newStore, pool.Close)
}

// OpenPostgresSQL is OpenPostgres through database/sql and the named driver
// ("pgx" for pgx's stdlib, "postgres" for lib/pq): meowmx through
// meowmxdatabasesql, the baselines through the same *sql.DB.
func OpenPostgresSQL(ctx context.Context, driverName, url, schema string, maxConns int) (*Database, error) {
	db, err := sql.Open(driverName, url)
	if err != nil {
		return nil, err
	}
	db.SetMaxOpenConns(maxConns)
	db.SetMaxIdleConns(maxConns)
	p := newPGRaw(stdSQL{db}, schema)
	var opts []meowmxdatabasesql.Option
	if driverName != "pgx" {
		// Its own connection for LISTEN, as the notify scenario needs.
		opts = append(opts, meowmxdatabasesql.ListenURL(url))
	}
	newStore := func(cfg *meowmx.Config) (*side, func(context.Context) error, error) {
		s, err := meowmx.New(meowmxdatabasesql.New(db, opts...), cfg)
		if err != nil {
			return nil, nil, err
		}
		return sideOf(s), s.Migrate, nil
	}
	return openPostgres(ctx, p, fmt.Sprintf("database/sql with driver %q, %d connections", driverName, maxConns), newStore, func() { db.Close() })
}

// openPostgres makes the Database of p, whose stores newStore makes.
func openPostgres(ctx context.Context, p *pgRaw, how string, newStore func(*meowmx.Config) (*side, func(context.Context) error, error), closeDB func()) (*Database, error) {
	var version, syncCommit string
	err := p.sql.queryRow(ctx, `SELECT current_setting('server_version'), current_setting('synchronous_commit')`).Scan(&version, &syncCommit)
	if err != nil {
		closeDB()
		return nil, err
	}
	observed := func(obs meowmx.Observer) (*side, error) {
		s, _, err := newStore(&meowmx.Config{Schema: p.schema, Logger: slog.New(slog.DiscardHandler), Observer: obs})
		return s, err
	}
	return &Database{
		name:     fmt.Sprintf("PostgreSQL %s (synchronous_commit=%s, %s)", version, syncCommit, how),
		driver:   "postgres",
		store:    func() (*side, error) { return observed(nil) },
		observed: observed,
		raw:      p,
		reset: func(ctx context.Context) error {
			if err := p.sql.exec(ctx, `DROP SCHEMA IF EXISTS `+pgx.Identifier{p.schema}.Sanitize()+` CASCADE`); err != nil {
				return err
			}
			s, migrate, err := newStore(&meowmx.Config{Schema: p.schema, Logger: slog.New(slog.DiscardHandler)})
			if err != nil {
				return err
			}
			defer s.close()
			if err := migrate(ctx); err != nil {
				return err
			}
			return p.sql.exec(ctx, `CREATE TABLE `+p.table+` (
    id      bigserial PRIMARY KEY,
    stream  text   NOT NULL,
    version bigint NOT NULL,
    type    text   NOT NULL,
    data    jsonb  NOT NULL,
    UNIQUE (stream, version)
)`)
		},
		close: closeDB,
	}, nil
}

// pgSQL runs the baselines' SQL, through pgx or through database/sql.
type pgSQL interface {
	exec(ctx context.Context, query string, args ...any) error
	queryRow(ctx context.Context, query string, args ...any) interface{ Scan(...any) error }
	// query runs a query of eventColumns and scans each row into r.
	query(ctx context.Context, r *pgRow, each func(), query string, args ...any) (int, error)
}

type pgxSQL struct{ pool *pgxpool.Pool }

func (q pgxSQL) exec(ctx context.Context, query string, args ...any) error {
	_, err := q.pool.Exec(ctx, query, args...)
	return err
}

func (q pgxSQL) queryRow(ctx context.Context, query string, args ...any) interface{ Scan(...any) error } {
	return q.pool.QueryRow(ctx, query, args...)
}

func (q pgxSQL) query(ctx context.Context, r *pgRow, each func(), query string, args ...any) (int, error) {
	rows, err := q.pool.Query(ctx, query, args...)
	if err != nil {
		return 0, err
	}
	defer rows.Close()
	return count(rows, r.destination, each)
}

type stdSQL struct{ db *sql.DB }

func (q stdSQL) exec(ctx context.Context, query string, args ...any) error {
	_, err := q.db.ExecContext(ctx, query, args...)
	return err
}

func (q stdSQL) queryRow(ctx context.Context, query string, args ...any) interface{ Scan(...any) error } {
	return q.db.QueryRowContext(ctx, query, args...)
}

func (q stdSQL) query(ctx context.Context, r *pgRow, each func(), query string, args ...any) (int, error) {
	rows, err := q.db.QueryContext(ctx, query, args...)
	if err != nil {
		return 0, err
	}
	defer rows.Close()
	// database/sql scans a UUID as its text.
	dest := slices.Clone(r.destination)
	dest[5] = &r.idText
	return count(rows, dest, each)
}

// AddReplica makes catch-up measure a store that reads from the hot
// standby at url (a physical replica of the database OpenPostgres
// connected to) against the same store reading from the primary.
func (d *Database) AddReplica(ctx context.Context, url string) error {
	p, ok := d.raw.(*pgRaw)
	if !ok || p.pool == nil {
		return fmt.Errorf("a replica needs PostgreSQL through pgx")
	}
	standby, err := pgxpool.New(ctx, url)
	if err != nil {
		return err
	}
	var recovery bool
	if err := standby.QueryRow(ctx, `SELECT pg_is_in_recovery()`).Scan(&recovery); err != nil || !recovery {
		standby.Close()
		if err == nil {
			err = fmt.Errorf("%s is not a standby (pg_is_in_recovery() is false)", url)
		}
		return err
	}
	d.replicated = func() (*side, error) {
		s, err := meowmx.New(meowmxpgxv5.New(p.pool), &meowmx.Config{
			Schema: p.schema, Logger: slog.New(slog.DiscardHandler), Replica: meowmxpgxv5.NewReplica(standby),
		})
		if err != nil {
			return nil, err
		}
		return sideOf(s), nil
	}
	d.replayed = func(ctx context.Context) error {
		var lsn string
		if err := p.pool.QueryRow(ctx, `SELECT pg_current_wal_flush_lsn()::text`).Scan(&lsn); err != nil {
			return err
		}
		for {
			var done bool
			if err := standby.QueryRow(ctx, `SELECT pg_last_wal_replay_lsn() >= $1::pg_lsn`, lsn).Scan(&done); err != nil || done {
				return err
			}
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(100 * time.Millisecond):
			}
		}
	}
	primaryClose := d.close
	d.name += " with a hot standby"
	d.close = func() {
		standby.Close()
		primaryClose()
	}
	return nil
}

type pgRaw struct {
	sql           pgSQL
	pool          *pgxpool.Pool // nil through database/sql
	schema, table string
	events        string
	inserts       *inserts
}

func (p *pgRaw) insert(ctx context.Context, stream string, version int64, typ string, data []byte, n int) error {
	return p.sql.exec(ctx, p.inserts.sql(n), insertArgs(stream, version, typ, p.jsonArg(data), n)...)
}

func (p *pgRaw) lastVersion(ctx context.Context, stream string) (int64, error) {
	var v int64
	err := p.sql.queryRow(ctx, `SELECT coalesce(max(version), -1) FROM `+p.table+` WHERE stream = $1`, stream).Scan(&v)
	return v, err
}

// jsonArg is a JSON document as an argument of the baselines' statements:
// text through database/sql, where lib/pq with binary_parameters=yes sends
// a []byte as bytea.
func (p *pgRaw) jsonArg(data []byte) any {
	if p.pool == nil {
		return string(data)
	}
	return data
}

// pgRow holds the columns meowmx reads of an event.
type pgRow struct {
	tx          uint64
	seq         int64
	cat, sid    string
	version     int64
	id          [16]byte
	idText      string
	typ         string
	data, meta  []byte
	recordedAt  time.Time
	destination []any
}

func newPGRow() *pgRow {
	r := &pgRow{}
	r.destination = []any{&r.tx, &r.seq, &r.cat, &r.sid, &r.version, &r.id, &r.typ, &r.data, &r.meta, &r.recordedAt}
	return r
}

const eventColumns = `transaction_id, seq, category, stream_id, version, event_id, type, data, metadata, recorded_at`

func (p *pgRaw) readStream(ctx context.Context, category, streamID string) (int, error) {
	return p.rows(ctx, nil, `SELECT `+eventColumns+` FROM `+p.events+` WHERE category = $1 AND stream_id = $2 ORDER BY version`, category, streamID)
}

func (p *pgRaw) scan(ctx context.Context, pageSize int) (int, error) {
	query := `SELECT ` + eventColumns + ` FROM ` + p.events + ` WHERE (transaction_id, seq) > ($1, $2) ORDER BY transaction_id, seq LIMIT $3`
	var (
		lastTx  uint64
		lastSeq int64
	)
	return pages(pageSize, func() (int, error) {
		return p.rows(ctx, func(r *pgRow) { lastTx, lastSeq = r.tx, r.seq }, query, lastTx, lastSeq, pageSize)
	})
}

// rows runs query and counts its rows, calling each (if not nil) on every
// one.
func (p *pgRaw) rows(ctx context.Context, each func(*pgRow), query string, args ...any) (int, error) {
	r := newPGRow()
	return p.sql.query(ctx, r, func() {
		if each != nil {
			each(r)
		}
	}, query, args...)
}

// scanner is what pgx.Rows and *sql.Rows have in common.
type scanner interface {
	Next() bool
	Scan(dest ...any) error
	Err() error
}

// count scans every row into dest, calls after each, and counts them.
func count(rows scanner, dest []any, after func()) (int, error) {
	n := 0
	for rows.Next() {
		if err := rows.Scan(dest...); err != nil {
			return n, err
		}
		after()
		n++
	}
	return n, rows.Err()
}

// pages calls page until it returns fewer than pageSize rows, and adds them
// up.
func pages(pageSize int, page func() (int, error)) (int, error) {
	total := 0
	for {
		n, err := page()
		total += n
		if err != nil || n < pageSize {
			return total, err
		}
	}
}

func (p *pgRaw) fill(ctx context.Context, rows int, typ string, data []byte, progress func(int)) error {
	const chunk = 100_000
	var start int64
	if err := p.sql.queryRow(ctx, `SELECT coalesce(max(id), 0) FROM `+p.table).Scan(&start); err != nil {
		return err
	}
	for done := 0; done < rows; {
		n := min(chunk, rows-done)
		// Streams of 1,000 rows, as meowmx's store is loaded.
		err := p.sql.exec(ctx, `INSERT INTO `+p.table+` (stream, version, type, data)
SELECT 'fill-' || (g / 1000), g % 1000, $3, $4 FROM generate_series($1::bigint, $2::bigint) AS g`,
			start+int64(done), start+int64(done+n-1), typ, p.jsonArg(data))
		if err != nil {
			return err
		}
		done += n
		progress(done)
	}
	return nil
}

func (p *pgRaw) analyze(ctx context.Context) error {
	if err := p.sql.exec(ctx, `VACUUM ANALYZE `+p.table+`, `+p.events); err != nil {
		return err
	}
	// Start the measurement on a fresh checkpoint, for both sides alike:
	// else the checkpoint a large load triggers runs during it, and every
	// page first written after it costs a full-page image in the WAL.
	// Without the privilege (superuser or pg_checkpoint), go on without.
	err := p.sql.exec(ctx, `CHECKPOINT`)
	if sqlState(err) == "42501" {
		return nil
	}
	return err
}

func (p *pgRaw) notifyLatency(ctx context.Context, perSecond int, warmUp, d time.Duration) ([]time.Duration, error) {
	if p.pool == nil {
		// The baseline's LISTEN takes a pgx connection: measured through
		// pgx only.
		return nil, errNoNotify
	}
	channel := pgx.Identifier{p.schema + "_raw"}.Sanitize()
	conn, err := pgx.ConnectConfig(ctx, p.pool.Config().ConnConfig.Copy())
	if err != nil {
		return nil, err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	if _, err := conn.Exec(ctx, `LISTEN `+channel); err != nil {
		return nil, err
	}
	send := `WITH i AS (INSERT INTO ` + p.table + ` (stream, version, type, data) VALUES ($1, 0, $2, $3) RETURNING id)
SELECT pg_notify(` + quoteLiteral(strings.Trim(channel, `"`)) + `, $1) FROM i`
	return pacedLatency(ctx, perSecond, warmUp, d,
		func(ctx context.Context, key string, data []byte) error {
			_, err := p.pool.Exec(ctx, send, key, "Ticked", data)
			return err
		},
		func(received func(key string)) (func() error, error) {
			ctx, cancel := context.WithCancel(ctx)
			done := make(chan error, 1)
			go func() {
				for {
					n, err := conn.WaitForNotification(ctx)
					if err != nil {
						done <- err
						return
					}
					received(n.Payload)
				}
			}()
			return func() error {
				cancel()
				if err := <-done; ctx.Err() == nil {
					return err
				}
				return nil
			}, nil
		})
}

func quoteLiteral(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }

// OpenSQLite opens the SQLite database at path as meowmxsqlite.Open does;
// the benchmark's tables are prefixed with schema.
func OpenSQLite(ctx context.Context, path, schema string) (*Database, error) {
	db, err := meowmxsqlite.Open(path)
	if err != nil {
		return nil, err
	}
	var version string
	if err := db.QueryRowContext(ctx, `SELECT sqlite_version()`).Scan(&version); err != nil {
		db.Close()
		return nil, err
	}
	s, err := meowmx.New(meowmxsqlite.New(db), &meowmx.Config{Schema: schema, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		db.Close()
		return nil, err
	}
	one := sideOf(s)
	l := &liteRaw{db: db, prefix: schema + "_", table: schema + "_baseline", events: schema + "_events"}
	l.inserts = newInserts(l.table, '?')
	return &Database{
		name:   fmt.Sprintf("SQLite %s (WAL, synchronous=FULL)", version),
		driver: "sqlite",
		// SQLite has no notifications between processes: its deployments
		// write and subscribe through one store, woken in-process.
		store: func() (*side, error) { return one, nil },
		observed: func(obs meowmx.Observer) (*side, error) {
			s, err := meowmx.New(meowmxsqlite.New(db), &meowmx.Config{Schema: schema, Logger: slog.New(slog.DiscardHandler), Observer: obs})
			if err != nil {
				return nil, err
			}
			return sideOf(s), nil
		},
		raw: l,
		reset: func(ctx context.Context) error {
			if err := l.drop(ctx); err != nil {
				return err
			}
			if err := s.Migrate(ctx); err != nil {
				return err
			}
			_, err := db.ExecContext(ctx, `CREATE TABLE `+l.table+` (
    id      INTEGER PRIMARY KEY AUTOINCREMENT,
    stream  TEXT    NOT NULL,
    version INTEGER NOT NULL,
    type    TEXT    NOT NULL,
    data    TEXT    NOT NULL,
    UNIQUE (stream, version)
)`)
			return err
		},
		close: func() { db.Close() },
	}, nil
}

type liteRaw struct {
	db                    *sql.DB
	prefix, table, events string
	inserts               *inserts
}

// drop removes every table of the prefix.
func (l *liteRaw) drop(ctx context.Context) error {
	rows, err := l.db.QueryContext(ctx, `SELECT name FROM sqlite_master WHERE type = 'table' AND substr(name, 1, length(?1)) = ?1`, l.prefix)
	if err != nil {
		return err
	}
	var names []string
	for rows.Next() {
		var name string
		if err := rows.Scan(&name); err != nil {
			rows.Close()
			return err
		}
		names = append(names, name)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return err
	}
	for _, name := range names {
		if _, err := l.db.ExecContext(ctx, `DROP TABLE "`+strings.ReplaceAll(name, `"`, `""`)+`"`); err != nil {
			return err
		}
	}
	return nil
}

func (l *liteRaw) insert(ctx context.Context, stream string, version int64, typ string, data []byte, n int) error {
	_, err := l.db.ExecContext(ctx, l.inserts.sql(n), insertArgs(stream, version, typ, string(data), n)...)
	return err
}

func (l *liteRaw) lastVersion(ctx context.Context, stream string) (int64, error) {
	var v int64
	err := l.db.QueryRowContext(ctx, `SELECT coalesce(max(version), -1) FROM `+l.table+` WHERE stream = ?`, stream).Scan(&v)
	return v, err
}

const liteColumns = `seq, category, stream_id, version, event_id, type, data, metadata, recorded_at`

type liteRow struct {
	seq         int64
	cat, sid    string
	version     int64
	id, typ     string
	data        string
	meta        sql.NullString
	recordedAt  int64
	destination []any
}

func newLiteRow() *liteRow {
	r := &liteRow{}
	r.destination = []any{&r.seq, &r.cat, &r.sid, &r.version, &r.id, &r.typ, &r.data, &r.meta, &r.recordedAt}
	return r
}

func (l *liteRaw) readStream(ctx context.Context, category, streamID string) (int, error) {
	return l.rows(ctx, nil, `SELECT `+liteColumns+` FROM `+l.events+` WHERE category = ? AND stream_id = ? ORDER BY version`, category, streamID)
}

func (l *liteRaw) scan(ctx context.Context, pageSize int) (int, error) {
	query := `SELECT ` + liteColumns + ` FROM ` + l.events + ` WHERE seq > ? ORDER BY seq LIMIT ?`
	var last int64
	return pages(pageSize, func() (int, error) {
		return l.rows(ctx, func(r *liteRow) { last = r.seq }, query, last, pageSize)
	})
}

// rows runs query and counts its rows, calling each (if not nil) on every
// one.
func (l *liteRaw) rows(ctx context.Context, each func(*liteRow), query string, args ...any) (int, error) {
	rows, err := l.db.QueryContext(ctx, query, args...)
	if err != nil {
		return 0, err
	}
	defer rows.Close()
	r := newLiteRow()
	return count(rows, r.destination, func() {
		if each != nil {
			each(r)
		}
	})
}

func (l *liteRaw) fill(ctx context.Context, rows int, typ string, data []byte, progress func(int)) error {
	const chunk = 100_000
	var start int64
	if err := l.db.QueryRowContext(ctx, `SELECT coalesce(max(id), 0) FROM `+l.table).Scan(&start); err != nil {
		return err
	}
	for done := 0; done < rows; {
		n := min(chunk, rows-done)
		_, err := l.db.ExecContext(ctx, `WITH RECURSIVE g(x) AS (SELECT ?1 UNION ALL SELECT x + 1 FROM g WHERE x < ?2)
INSERT INTO `+l.table+` (stream, version, type, data) SELECT 'fill-' || (x / 1000), x % 1000, ?3, ?4 FROM g`,
			start+int64(done), start+int64(done+n-1), typ, string(data))
		if err != nil {
			return err
		}
		done += n
		progress(done)
	}
	return nil
}

func (l *liteRaw) analyze(ctx context.Context) error {
	_, err := l.db.ExecContext(ctx, `ANALYZE`)
	return err
}

func (l *liteRaw) notifyLatency(context.Context, int, time.Duration, time.Duration) ([]time.Duration, error) {
	return nil, errNoNotify
}
