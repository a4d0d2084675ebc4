package meowmxsqlite

import (
	"context"
	"database/sql"
	"sync"
)

// maxCachedStatements bounds the statements a driver keeps prepared: the
// multi-row statements have one text per row count.
const maxCachedStatements = 256

// stmtCache keeps the driver's statements prepared on the database, so that
// SQLite parses each once per connection instead of at every run (modernc
// prepares every statement database/sql sends it; parsing was a quarter of
// an append's CPU).
//
// A statement runs unprepared the first time and is prepared afterwards,
// outside any transaction (prepareWanted): preparing on the pool while a
// transaction holds a connection would wait forever on a pool of one.
type stmtCache struct {
	db     *sql.DB
	mu     sync.Mutex
	stmts  map[string]*sql.Stmt
	wanted map[string]bool
}

func newStmtCache(db *sql.DB) *stmtCache {
	return &stmtCache{db: db, stmts: map[string]*sql.Stmt{}, wanted: map[string]bool{}}
}

// get returns query's prepared statement, or nil (and notes that it is
// wanted) when it is not prepared yet.
func (c *stmtCache) get(query string) *sql.Stmt {
	c.mu.Lock()
	defer c.mu.Unlock()
	if s, ok := c.stmts[query]; ok {
		return s
	}
	if len(c.stmts)+len(c.wanted) < maxCachedStatements {
		c.wanted[query] = true
	}
	return nil
}

// prepareWanted prepares the statements that ran unprepared. The caller
// holds no connection of the pool. A statement that fails to prepare (its
// table does not exist yet) is left for a later use to want again.
func (c *stmtCache) prepareWanted(ctx context.Context) {
	c.mu.Lock()
	if len(c.wanted) == 0 {
		c.mu.Unlock()
		return
	}
	queries := make([]string, 0, len(c.wanted))
	for q := range c.wanted {
		queries = append(queries, q)
	}
	clear(c.wanted)
	c.mu.Unlock()
	for _, q := range queries {
		s, err := c.db.PrepareContext(ctx, q)
		if err != nil {
			continue
		}
		c.mu.Lock()
		if _, ok := c.stmts[q]; ok {
			s.Close()
		} else {
			c.stmts[q] = s
		}
		c.mu.Unlock()
	}
}

// cachedQuerier runs statements in a transaction (tx) or on the pool (tx
// nil), the prepared ones through their *sql.Stmt: in a transaction, bound
// to its connection (database/sql reuses the statement that connection has
// prepared already).
type cachedQuerier struct {
	plain querier // tx, or the pool
	tx    *sql.Tx
	cache *stmtCache
}

// in returns the querier of tx, prepared statements included.
func (c *stmtCache) in(tx *sql.Tx) cachedQuerier { return cachedQuerier{plain: tx, tx: tx, cache: c} }

// onPool returns the querier of the pool, outside any transaction,
// prepared statements included.
func (c *stmtCache) onPool() cachedQuerier { return cachedQuerier{plain: c.db, cache: c} }

// stmt returns query's prepared statement, bound to the transaction if
// there is one, or nil.
func (q cachedQuerier) stmt(ctx context.Context, query string) *sql.Stmt {
	s := q.cache.get(query)
	if s != nil && q.tx != nil {
		s = q.tx.StmtContext(ctx, s)
	}
	return s
}

func (q cachedQuerier) ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error) {
	if s := q.stmt(ctx, query); s != nil {
		return s.ExecContext(ctx, args...)
	}
	return q.plain.ExecContext(ctx, query, args...)
}

func (q cachedQuerier) QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	if s := q.stmt(ctx, query); s != nil {
		return s.QueryContext(ctx, args...)
	}
	return q.plain.QueryContext(ctx, query, args...)
}

func (q cachedQuerier) QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row {
	if s := q.stmt(ctx, query); s != nil {
		return s.QueryRowContext(ctx, args...)
	}
	return q.plain.QueryRowContext(ctx, query, args...)
}
