package meowmxpgxv5

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/meowmx/meowmx/meowmxdriver"
	"github.com/meowmx/meowmx/meowmxtype"
)

// Replica serves meowmx's reads from a hot standby of the primary (a
// physical streaming replica, as pg_basebackup -R makes): pass it as
// meowmx.Config.Replica. Create it with NewReplica.
//
// A standby shares the primary's system identifier and replays its
// transactions, events table and position functions: a position read there
// is the primary's. Its visibility horizon comes from the transactions the
// standby knows to be running on the primary, so a global read on it never
// returns an event while an older transaction of the primary may still
// commit one before it. A logical replica or a restored copy has other
// transaction ids: reads through it fail with meowmxtype.ErrReplicaMismatch.
type Replica struct {
	driver *Driver
}

// NewReplica returns a replica that reads through pool, a pool of
// connections to a hot standby (hot_standby on, the default). The pool stays
// the caller's: the replica never closes it. Nothing is ever written
// through it.
func NewReplica(pool *pgxpool.Pool) *Replica {
	d := New(pool)
	d.replica = true
	return &Replica{driver: d}
}

var _ meowmxdriver.Replica = (*Replica)(nil)

// Name returns "postgres".
func (r *Replica) Name() string { return r.driver.Name() }

// Pool returns the pool the replica was created with.
func (r *Replica) Pool() *pgxpool.Pool { return r.driver.pool }

// ReplicaExecutor runs each read on a pooled connection to the standby,
// for primary, an executor of this package's Driver: a standby is used
// once its system identifier is found to be the primary's.
func (r *Replica) ReplicaExecutor(primary meowmxdriver.Executor) meowmxdriver.Executor {
	e := &executor{driver: r.driver}
	if p, ok := primary.(*executor); ok {
		e.primary = p.driver
	}
	return e
}

// ensureReplica verifies, without writing, that conn's server is a copy of
// primary's cluster whose positions are the primary's: the same system
// identifier, and the schema's record naming it with the offset its
// position functions add. It never re-bases: that is the primary's to do,
// and the standby replays it. A verified pair is trusted for
// schemaRecheck.
func (d *Driver) ensureReplica(ctx context.Context, conn *pgx.Conn, schema string, primary *Driver) error {
	id, err := systemID(ctx, conn)
	if err != nil {
		return err
	}
	if d.clusters.ok(schema, id) {
		return nil
	}
	if primary == nil {
		return fmt.Errorf("%w: the store's driver is not a meowmxpgxv5 driver", meowmxtype.ErrReplicaMismatch)
	}
	pc, err := primary.pool.Acquire(ctx)
	if err != nil {
		return mapError(err)
	}
	primaryID, err := systemID(ctx, pc.Conn())
	pc.Release()
	if err != nil {
		return err
	}
	if id != primaryID {
		return fmt.Errorf("%w: its system identifier is %d, the primary's %d (a physical standby keeps the primary's)", meowmxtype.ErrReplicaMismatch, id, primaryID)
	}
	var s *clusterState
	err = pgx.BeginTxFunc(ctx, conn, pgx.TxOptions{AccessMode: pgx.ReadOnly}, func(tx pgx.Tx) error {
		var err error
		s, err = readClusterState(ctx, tx, d.statements(schema))
		return err
	})
	if err != nil {
		return mapError(err)
	}
	if !s.current() {
		return fmt.Errorf("%w: the schema's record there names cluster %d (positions re-based on the primary and not replayed yet?)", meowmxtype.ErrReplicaMismatch, s.recordedID)
	}
	conn.PgConn().CustomData()[clusterKey] = clusterSeen{systemID: s.systemID, at: time.Now()}
	d.clusters.mark(schema, s.systemID)
	return nil
}
