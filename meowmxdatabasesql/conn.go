package meowmxdatabasesql

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/stdlib"

	"github.com/meowmx/meowmx/internal/pgdriver"
)

// The driver's statements are written for pgx: $n or @name placeholders,
// batches, Go values such as [16]byte, []string and uint64 as arguments,
// and scans into Go values. What follows runs them through database/sql.
//
// Through pgx's stdlib driver the arguments go as they are (pgx encodes them
// once the server has described the statement), and connections keep what
// the driver remembers of them. Through any other driver (lib/pq) they go
// as text in PostgreSQL's input syntax, and the server infers their types
// from the statement as it does for pgx; that driver's errors become
// *pgconn.PgError.

// dialect is what the pool's driver needs.
type dialect struct {
	native bool // the pgx stdlib driver: arguments as they are
	// data remembers, for drivers whose connections cannot, what the
	// driver knows of each connection, by the driver's connection.
	mu   sync.Mutex
	data map[any]map[string]any
}

// maxRemembered bounds dialect.data: connections closed since leave their
// entry behind, and forgetting them all costs a few checks again.
const maxRemembered = 4096

func newDialect(db *sql.DB) *dialect {
	_, native := db.Driver().(*stdlib.Driver)
	return &dialect{native: native, data: map[any]map[string]any{}}
}

// pool is a *sql.DB as a pgdriver.Pool.
type pool struct {
	db *sql.DB
	d  *dialect
}

func (p *pool) Acquire(ctx context.Context) (pgdriver.PooledConn, error) {
	c, err := p.db.Conn(ctx)
	if err != nil {
		return nil, err
	}
	return &conn{q: querier{db: c, d: p.d}, conn: c}, nil
}

func (p *pool) ListenConfig(ctx context.Context) (*pgx.ConnConfig, error) {
	if !p.d.native {
		return nil, nil
	}
	c, err := p.db.Conn(ctx)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	var config *pgx.ConnConfig
	err = c.Raw(func(dc any) error {
		if sc, ok := dc.(*stdlib.Conn); ok {
			config = sc.Conn().Config().Copy()
			// The connection's own: notifications would go to its buffer.
			config.OnNotification = nil
		}
		return nil
	})
	return config, err
}

// execer is what *sql.Conn and *sql.Tx have in common.
type execer interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
}

// querier runs pgx-style calls on db.
type querier struct {
	db execer
	d  *dialect
}

// args rewrites sql's named arguments to $n if args are named, and turns
// the arguments into what the driver takes.
func (q querier) args(ctx context.Context, query string, args []any) (string, []any, error) {
	if len(args) > 0 {
		if rw, ok := args[0].(pgx.QueryRewriter); ok {
			var err error
			if query, args, err = rw.RewriteQuery(ctx, nil, query, args[1:]); err != nil {
				return "", nil, err
			}
		}
	}
	if q.d.native {
		return query, args, nil
	}
	out := make([]any, len(args))
	for i, a := range args {
		v, err := textValue(a)
		if err != nil {
			return "", nil, fmt.Errorf("argument $%d: %w", i+1, err)
		}
		out[i] = v
	}
	return query, out, nil
}

func (q querier) Exec(ctx context.Context, query string, args ...any) (pgconn.CommandTag, error) {
	query, args, err := q.args(ctx, query, args)
	if err != nil {
		return pgconn.CommandTag{}, err
	}
	res, err := q.db.ExecContext(ctx, query, args...)
	if err != nil {
		return pgconn.CommandTag{}, ctxError(ctx, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return pgconn.CommandTag{}, ctxError(ctx, err)
	}
	// RowsAffected reads the number after the command's last space.
	return pgconn.NewCommandTag("EXEC " + strconv.FormatInt(n, 10)), nil
}

func (q querier) Query(ctx context.Context, query string, args ...any) (pgx.Rows, error) {
	query, args, err := q.args(ctx, query, args)
	if err != nil {
		return errRows{err}, err
	}
	r, err := q.db.QueryContext(ctx, query, args...)
	if err != nil {
		err = ctxError(ctx, err)
		return errRows{err}, err
	}
	return newRows(r), nil
}

func (q querier) QueryRow(ctx context.Context, query string, args ...any) pgx.Row {
	r, err := q.Query(ctx, query, args...)
	return row{r, err}
}

func (q querier) SendBatch(ctx context.Context, b *pgx.Batch) pgx.BatchResults {
	return &batch{ctx: ctx, q: q, queued: b.QueuedQueries}
}

// conn is a connection taken from the pool.
type conn struct {
	q    querier
	conn *sql.Conn
	// open says that a statement of the driver's began a transaction
	// (BEGIN in a batch) that none ended yet.
	open bool
}

func (c *conn) Exec(ctx context.Context, query string, args ...any) (pgconn.CommandTag, error) {
	tag, err := c.q.Exec(ctx, query, args...)
	c.track(query, err)
	return tag, err
}

func (c *conn) Query(ctx context.Context, query string, args ...any) (pgx.Rows, error) {
	return c.q.Query(ctx, query, args...)
}

func (c *conn) QueryRow(ctx context.Context, query string, args ...any) pgx.Row {
	return c.q.QueryRow(ctx, query, args...)
}

func (c *conn) SendBatch(ctx context.Context, b *pgx.Batch) pgx.BatchResults {
	return &batch{ctx: ctx, q: c.q, queued: b.QueuedQueries, track: c.track}
}

// track notes the transactions that statements begin and end. A BEGIN
// that failed may still have begun one (in a string of statements whose
// later one failed): Release's ROLLBACK then costs a warning at most.
func (c *conn) track(query string, err error) {
	switch firstWord(query) {
	case "BEGIN", "START":
		c.open = true
	case "COMMIT", "ROLLBACK", "END":
		if err == nil {
			c.open = false
		}
	}
}

func (c *conn) Begin(ctx context.Context) (pgx.Tx, error) {
	return c.BeginTx(ctx, pgx.TxOptions{})
}

func (c *conn) BeginTx(ctx context.Context, opts pgx.TxOptions) (pgx.Tx, error) {
	o := &sql.TxOptions{ReadOnly: opts.AccessMode == pgx.ReadOnly}
	switch opts.IsoLevel {
	case pgx.ReadCommitted:
		o.Isolation = sql.LevelReadCommitted
	case pgx.RepeatableRead:
		o.Isolation = sql.LevelRepeatableRead
	case pgx.Serializable:
		o.Isolation = sql.LevelSerializable
	case pgx.ReadUncommitted:
		o.Isolation = sql.LevelReadUncommitted
	}
	t, err := c.conn.BeginTx(ctx, o)
	if err != nil {
		return nil, pgError(err)
	}
	return newTx(t, c.q.d), nil
}

// Data is the connection's memo (see dialect.connData).
func (c *conn) Data() map[string]any { return c.q.d.connData(c.conn) }

// connData is what the driver remembers of c: its CustomData through pgx's
// stdlib driver, the dialect's entry for the driver's connection
// otherwise.
func (d *dialect) connData(c *sql.Conn) map[string]any {
	var data map[string]any
	_ = c.Raw(func(dc any) error {
		if sc, ok := dc.(*stdlib.Conn); ok {
			data = sc.Conn().PgConn().CustomData()
			return nil
		}
		d.mu.Lock()
		defer d.mu.Unlock()
		if data = d.data[dc]; data == nil {
			if len(d.data) >= maxRemembered {
				clear(d.data)
			}
			data = map[string]any{}
			d.data[dc] = data
		}
		return nil
	})
	if data == nil {
		data = map[string]any{}
	}
	return data
}

// Release ends a transaction a failed batch left open, and gives the
// connection back; one that cannot end it is closed instead.
func (c *conn) Release() {
	if c.open {
		ctx, cancel := context.WithTimeout(context.Background(), rollbackTimeout)
		_, err := c.conn.ExecContext(ctx, "ROLLBACK")
		cancel()
		if err != nil {
			_ = c.conn.Raw(func(any) error { return driver.ErrBadConn })
		}
	}
	_ = c.conn.Close()
}

// tx is a *sql.Tx as a pgx.Tx, and as the driver's Conn for a caller's
// transaction. Begin makes a savepoint.
type tx struct {
	querier
	tx   *sql.Tx
	data map[string]any
	// savepoints numbers the savepoints made in it.
	savepoints *atomic.Int64
}

func newTx(t *sql.Tx, d *dialect) *tx {
	return &tx{querier: querier{db: t, d: d}, tx: t, savepoints: new(atomic.Int64)}
}

// Data is the memo of the transaction's connection where the driver began
// it (Driver.Begin), and a map of the transaction's own otherwise:
// database/sql does not say which connection a transaction runs on.
func (t *tx) Data() map[string]any {
	if t.data == nil {
		t.data = map[string]any{}
	}
	return t.data
}

func (t *tx) Begin(ctx context.Context) (pgx.Tx, error) {
	name := "meowmx_" + strconv.FormatInt(t.savepoints.Add(1), 10)
	if _, err := t.Exec(ctx, "SAVEPOINT "+name); err != nil {
		return nil, err
	}
	return &savepoint{tx: t, name: name}, nil
}

func (t *tx) Commit(context.Context) error { return txDone(t.tx.Commit()) }

func (t *tx) Rollback(context.Context) error { return txDone(t.tx.Rollback()) }

// txDone is err of a transaction's end, where one that ended already is
// pgx.ErrTxClosed.
func txDone(err error) error {
	if errors.Is(err, sql.ErrTxDone) {
		return pgx.ErrTxClosed
	}
	return pgError(err)
}

// CopyFrom inserts the rows with INSERT statements of many rows each:
// database/sql has no COPY of its own.
func (t *tx) CopyFrom(ctx context.Context, table pgx.Identifier, columns []string, src pgx.CopyFromSource) (int64, error) {
	return copyByInsert(ctx, t.querier, table, columns, src)
}

func (t *tx) LargeObjects() pgx.LargeObjects { return pgx.LargeObjects{} }

func (t *tx) Prepare(context.Context, string, string) (*pgconn.StatementDescription, error) {
	return nil, errors.New("meowmxdatabasesql: Prepare is not supported")
}

// Conn is nil: the connection is database/sql's.
func (t *tx) Conn() *pgx.Conn { return nil }

// savepoint is a transaction nested in a tx.
type savepoint struct {
	*tx
	name  string
	ended bool
}

func (s *savepoint) Commit(ctx context.Context) error { return s.end(ctx, "RELEASE SAVEPOINT ") }

func (s *savepoint) Rollback(ctx context.Context) error {
	return s.end(ctx, "ROLLBACK TO SAVEPOINT ")
}

// end runs the statement that ends the savepoint, once.
func (s *savepoint) end(ctx context.Context, statement string) error {
	if s.ended {
		return pgx.ErrTxClosed
	}
	s.ended = true
	_, err := s.tx.Exec(ctx, statement+s.name)
	return err
}

// maxParameters is the most parameters of a statement PostgreSQL takes.
const maxParameters = 65535

func copyByInsert(ctx context.Context, q querier, table pgx.Identifier, columns []string, src pgx.CopyFromSource) (int64, error) {
	quoted := make([]string, len(columns))
	for i, c := range columns {
		quoted[i] = pgx.Identifier{c}.Sanitize()
	}
	head := "INSERT INTO " + table.Sanitize() + " (" + strings.Join(quoted, ", ") + ") VALUES "
	perStatement := maxParameters / len(columns)
	var (
		total int64
		args  []any
		b     strings.Builder
	)
	flush := func() error {
		if len(args) == 0 {
			return nil
		}
		tag, err := q.Exec(ctx, b.String(), args...)
		total += tag.RowsAffected()
		args = args[:0]
		b.Reset()
		return err
	}
	for src.Next() {
		values, err := src.Values()
		if err != nil {
			return total, err
		}
		if len(values) != len(columns) {
			return total, fmt.Errorf("meowmxdatabasesql: a row of %d values for %d columns", len(values), len(columns))
		}
		if len(args) == 0 {
			b.WriteString(head)
		} else {
			b.WriteString(", ")
		}
		b.WriteByte('(')
		for i, v := range values {
			if i > 0 {
				b.WriteString(", ")
			}
			args = append(args, v)
			b.WriteString("$" + strconv.Itoa(len(args)))
		}
		b.WriteByte(')')
		if len(args)/len(columns) >= perStatement {
			if err := flush(); err != nil {
				return total, err
			}
		}
	}
	if err := src.Err(); err != nil {
		return total, err
	}
	return total, flush()
}

// batch runs a pgx.Batch's statements one after the other, stopping at
// the first that fails: its error is every later result's too, as when
// the server skips the rest of a pipelined batch.
type batch struct {
	ctx    context.Context
	q      querier
	queued []*pgx.QueuedQuery
	next   int
	err    error
	track  func(query string, err error)
	// ran is how many statements after next ran already, with an earlier
	// one (see Exec).
	ran int
}

// firstWord is a statement's first word, in upper case.
func firstWord(query string) string {
	word, _, _ := strings.Cut(strings.TrimSpace(query), " ")
	return strings.ToUpper(word)
}

// control says that a statement only controls the transaction or the
// session, returning no rows: BEGIN, SET, COMMIT and the like.
func control(qq *pgx.QueuedQuery) bool {
	if len(qq.Arguments) > 0 || qq.Fn != nil {
		return false
	}
	switch firstWord(qq.SQL) {
	case "BEGIN", "START", "SET", "COMMIT", "ROLLBACK", "END", "SAVEPOINT", "RELEASE":
		return true
	}
	return false
}

// take returns the next statement, or the error that ended the batch.
func (b *batch) take() (*pgx.QueuedQuery, error) {
	if b.err != nil {
		return nil, b.err
	}
	if b.next >= len(b.queued) {
		return nil, errors.New("meowmxdatabasesql: no more results in the batch")
	}
	qq := b.queued[b.next]
	b.next++
	return qq, nil
}

func (b *batch) fail(query string, err error) error {
	if b.track != nil {
		b.track(query, err)
	}
	if err != nil && b.err == nil {
		b.err = err
	}
	return err
}

// Exec runs the next statement. Control statements in a row (BEGIN and a
// SET, say) go together in one round trip, as one string of statements
// without arguments, which runs as one; a failure is each one's.
func (b *batch) Exec() (pgconn.CommandTag, error) {
	if b.ran > 0 && b.err == nil {
		b.ran--
		b.next++
		return pgconn.CommandTag{}, nil
	}
	qq, err := b.take()
	if err != nil {
		return pgconn.CommandTag{}, err
	}
	if !control(qq) {
		tag, err := b.q.Exec(b.ctx, qq.SQL, qq.Arguments...)
		return tag, b.fail(qq.SQL, err)
	}
	query := qq.SQL
	end := b.next
	for end < len(b.queued) && control(b.queued[end]) {
		query += ";\n" + b.queued[end].SQL
		end++
	}
	tag, err := b.q.Exec(b.ctx, query)
	for _, q := range b.queued[b.next-1 : end] {
		b.fail(q.SQL, err)
	}
	b.ran = end - b.next
	return tag, err
}

func (b *batch) Query() (pgx.Rows, error) {
	if b.ran > 0 && b.err == nil {
		err := errors.New("meowmxdatabasesql: Query of a statement the batch ran with the one before")
		return errRows{err}, err
	}
	qq, err := b.take()
	if err != nil {
		return errRows{err}, err
	}
	r, err := b.q.Query(b.ctx, qq.SQL, qq.Arguments...)
	if err != nil {
		return r, b.fail(qq.SQL, err)
	}
	return &batchRows{rows: r.(*rows), b: b}, nil
}

func (b *batch) QueryRow() pgx.Row {
	r, err := b.Query()
	return row{r, err}
}

// Close runs what was not read, with the callbacks queued for it, and
// returns the batch's first error.
func (b *batch) Close() error {
	for b.err == nil && b.next < len(b.queued) {
		qq := b.queued[b.next]
		var err error
		if qq.Fn != nil {
			err = qq.Fn(b)
		} else {
			_, err = b.Exec()
		}
		if err != nil && b.err == nil {
			b.err = err
		}
	}
	return b.err
}

// batchRows makes a failed read of rows the batch's error.
type batchRows struct {
	*rows
	b *batch
}

func (r *batchRows) Err() error {
	err := r.rows.Err()
	if err != nil {
		r.b.fail("", err)
	}
	return err
}

func (r *batchRows) Close() {
	r.rows.Close()
	if err := r.rows.Err(); err != nil {
		r.b.fail("", err)
	}
}

// rollbackTimeout bounds the ROLLBACK of a transaction a failed batch left
// open.
const rollbackTimeout = 5 * time.Second

// ctxError is err of a statement run under ctx: once ctx has ended, an
// error that matches its error too (lib/pq reports a cancelled statement
// as the server's error only), and a server's error as pgError makes it.
func ctxError(ctx context.Context, err error) error {
	err = pgError(err)
	if ctx.Err() != nil && !errors.Is(err, ctx.Err()) {
		return &ctxEnded{ctx: ctx.Err(), err: err}
	}
	return err
}

// ctxEnded is a statement's error after its context ended.
type ctxEnded struct{ ctx, err error }

func (e *ctxEnded) Error() string   { return e.ctx.Error() + ": " + e.err.Error() }
func (e *ctxEnded) Unwrap() []error { return []error{e.ctx, e.err} }

// pgError turns another driver's server error into a *pgconn.PgError,
// which the driver's errors are classified by; the original stays in the
// chain.
func pgError(err error) error {
	if err == nil {
		return nil
	}
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return err
	}
	var fields interface{ Get(byte) string } // lib/pq's *pq.Error
	if !errors.As(err, &fields) || fields.Get('C') == "" {
		return err
	}
	line, _ := strconv.Atoi(fields.Get('L'))
	return &serverError{err: err, pg: &pgconn.PgError{
		Severity:            fields.Get('S'),
		Code:                fields.Get('C'),
		Message:             fields.Get('M'),
		Detail:              fields.Get('D'),
		Hint:                fields.Get('H'),
		SchemaName:          fields.Get('s'),
		TableName:           fields.Get('t'),
		ColumnName:          fields.Get('c'),
		DataTypeName:        fields.Get('d'),
		ConstraintName:      fields.Get('n'),
		File:                fields.Get('F'),
		Line:                int32(line),
		Routine:             fields.Get('R'),
		InternalQuery:       fields.Get('q'),
		Where:               fields.Get('W'),
		SeverityUnlocalized: fields.Get('V'),
	}}
}

// serverError is a server's error as another driver reported it, and as
// a *pgconn.PgError.
type serverError struct {
	err error
	pg  *pgconn.PgError
}

func (e *serverError) Error() string   { return e.err.Error() }
func (e *serverError) Unwrap() []error { return []error{e.pg, e.err} }

// Tx is nil: the batch runs on database/sql's connection or transaction.
func (b *batch) Tx() pgx.Tx { return nil }
