package meowmxsqlite

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"time"
)

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

// writeTx runs fn, in the process's write turn, in a write transaction
// that takes SQLite's write lock as it begins (BEGIN IMMEDIATE), committing
// when fn returns nil and rolling back otherwise. On a database from Open,
// fn's statements run prepared once they have run before.
func (d *Driver) writeTx(ctx context.Context, fn func(q querier) error) (err error) {
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := d.lock(ctx); err != nil {
		return err
	}
	defer d.unlock()
	return d.writeTxHeld(ctx, fn)
}

// writeTxHeld is writeTx for a caller that holds the write turn.
func (d *Driver) writeTxHeld(ctx context.Context, fn func(q querier) error) (err error) {
	if !d.immediate {
		return d.writeConn(ctx, fn)
	}
	d.cache.prepareWanted(ctx)
	// The transaction does not end with ctx: database/sql would roll it
	// back in the background, and the next writer would find SQLite's lock
	// still held. fn's statements get ctx, which interrupts them; the
	// rollback below runs before the turn passes on.
	tx, err := d.db.BeginTx(context.WithoutCancel(ctx), nil)
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			_ = tx.Rollback()
		}
	}()
	if err := fn(d.cache.in(tx)); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	return tx.Commit()
}

// writeConn is writeTx on a database that Open did not return: BEGIN
// IMMEDIATE on a connection of its own.
func (d *Driver) writeConn(ctx context.Context, fn func(q querier) error) (err error) {
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

// inWriteTx runs fn in the caller's transaction if there is one, in a write
// transaction of its own otherwise.
func (e *executor) inWriteTx(ctx context.Context, fn func(q querier) error) error {
	if e.tx != nil {
		return mapError(fn(e.tx))
	}
	return mapError(e.driver.writeTx(ctx, fn))
}

// heldTx is a transaction of Begin: its connection, and the synchronous
// setting to restore on it.
type heldTx struct {
	conn    *sql.Conn
	restore string // "" when unchanged
}

// Begin starts an immediate write transaction (with a database opened by
// Open) for a subscription's batch, in this process's turn to write. Unless
// synchronous, it commits with synchronous=NORMAL: in WAL mode the commit
// survives a crash of the process but not of the machine, which can lose
// the last batches' writes and checkpoints together (they are handled
// again), and spares a disk flush per batch.
func (d *Driver) Begin(ctx context.Context, synchronous bool) (*sql.Tx, error) {
	if err := d.lock(ctx); err != nil {
		return nil, err
	}
	tx, err := d.begin(ctx, synchronous)
	if err != nil {
		d.unlock()
		return nil, mapError(err)
	}
	return tx, nil
}

func (d *Driver) begin(ctx context.Context, synchronous bool) (*sql.Tx, error) {
	conn, err := d.db.Conn(ctx)
	if err != nil {
		return nil, err
	}
	h := &heldTx{conn: conn}
	if !synchronous {
		var level int
		if err := conn.QueryRowContext(ctx, "PRAGMA synchronous").Scan(&level); err != nil {
			conn.Close()
			return nil, err
		}
		if level > 1 { // FULL or EXTRA
			if _, err := conn.ExecContext(ctx, "PRAGMA synchronous = NORMAL"); err != nil {
				conn.Close()
				return nil, err
			}
			h.restore = fmt.Sprintf("PRAGMA synchronous = %d", level)
		}
	}
	tx, err := conn.BeginTx(ctx, nil)
	if err != nil {
		d.release(h)
		return nil, err
	}
	d.held.Store(tx, h)
	return tx, nil
}

// release restores the connection's setting and returns it to the pool (or
// discards it, if the setting cannot be restored).
func (d *Driver) release(h *heldTx) {
	if h.restore != "" {
		if _, err := h.conn.ExecContext(context.Background(), h.restore); err != nil {
			_ = h.conn.Raw(func(any) error { return driver.ErrBadConn })
		}
	}
	h.conn.Close()
}

// end releases what Begin took for tx, once.
func (d *Driver) end(tx *sql.Tx) {
	if v, ok := d.held.LoadAndDelete(tx); ok {
		d.release(v.(*heldTx))
		d.unlock()
	}
}

// Commit commits tx.
func (d *Driver) Commit(_ context.Context, tx *sql.Tx) error {
	err := tx.Commit()
	d.end(tx)
	return mapError(err)
}

// Rollback rolls tx back.
func (d *Driver) Rollback(_ context.Context, tx *sql.Tx) error {
	err := tx.Rollback()
	d.end(tx)
	if errors.Is(err, sql.ErrTxDone) {
		return nil
	}
	return err
}
