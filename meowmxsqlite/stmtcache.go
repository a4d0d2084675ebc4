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

// txQuerier runs statements in a transaction, prepared ones through the
// transaction's connection (database/sql reuses the statement that
// connection has prepared already).
type txQuerier struct {
	tx    *sql.Tx
	cache *stmtCache
}

func (q txQuerier) ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error) {
	if s := q.cache.get(query); s != nil {
		return q.tx.StmtContext(ctx, s).ExecContext(ctx, args...)
	}
	return q.tx.ExecContext(ctx, query, args...)
}

func (q txQuerier) QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	if s := q.cache.get(query); s != nil {
		return q.tx.StmtContext(ctx, s).QueryContext(ctx, args...)
	}
	return q.tx.QueryContext(ctx, query, args...)
}

func (q txQuerier) QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row {
	if s := q.cache.get(query); s != nil {
		return q.tx.StmtContext(ctx, s).QueryRowContext(ctx, args...)
	}
	return q.tx.QueryRowContext(ctx, query, args...)
}

// poolQuerier runs statements on the pool, outside any transaction, the
// prepared ones through their *sql.Stmt.
type poolQuerier struct {
	db    *sql.DB
	cache *stmtCache
}

func (q poolQuerier) ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error) {
	if s := q.cache.get(query); s != nil {
		return s.ExecContext(ctx, args...)
	}
	return q.db.ExecContext(ctx, query, args...)
}

func (q poolQuerier) QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	if s := q.cache.get(query); s != nil {
		return s.QueryContext(ctx, args...)
	}
	return q.db.QueryContext(ctx, query, args...)
}

func (q poolQuerier) QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row {
	if s := q.cache.get(query); s != nil {
		return s.QueryRowContext(ctx, args...)
	}
	return q.db.QueryRowContext(ctx, query, args...)
}
