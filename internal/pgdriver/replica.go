package pgdriver

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/meowmx/meowmx/meowmxdriver"
	"github.com/meowmx/meowmx/meowmxtype"
)

// Replica serves meowmx's reads from a hot standby of the primary (a
// physical streaming replica, as pg_basebackup -R makes): pass it as
// meowmx.Config.Replica. Create it with NewReplica.
//
// A standby has the primary's system identifier and databases, and replays
// its transactions, events table and position functions: a position read
// there is the primary's. Its visibility horizon comes from the
// transactions the standby knows to be running on the primary, so a global
// read on it never returns an event while an older transaction of the
// primary may still commit one before it.
//
// Before a standby's connection serves a schema, and again every minute,
// the replica checks that it reaches the primary's database on a copy of
// its cluster (the same system identifier and database OID; the primary
// itself passes too) and that the schema's record there is current.
// Anything else (a logical replica or a restored copy, with other
// transaction ids; another database) fails the read with
// meowmxtype.ErrReplicaMismatch.
//
// Only the transaction-id bounds of a standby's snapshot are used
// (pg_snapshot_xmin, and xmax through the cluster check): on a standby the
// ids still running are not listed in pg_current_snapshot()'s top-level
// list, so a check of one id against it (pg_visible_in_snapshot) would not
// be reliable there.
type Replica struct {
	driver   *Driver
	verified sync.Map // replicaCheck -> time.Time
}

// NewReplica returns a replica that reads through pool, a pool of
// connections to a hot standby (hot_standby on, the default). The pool stays
// the caller's: the replica never closes it. Nothing is ever written
// through it.
func NewReplica(pool Pool) *Replica {
	return &Replica{driver: New(pool)}
}

var _ meowmxdriver.Replica = (*Replica)(nil)

// Name returns "postgres".
func (r *Replica) Name() string { return r.driver.Name() }

// ReplicaExecutor returns the executor of reads on the standby for primary,
// an executor of this package's Driver.
func (r *Replica) ReplicaExecutor(primary meowmxdriver.Executor) (meowmxdriver.Executor, error) {
	p, ok := primary.(*executor)
	if !ok || p.tx != nil || p.replica != nil {
		return nil, fmt.Errorf("a PostgreSQL replica reads for a PostgreSQL driver, got %T", primary)
	}
	return &executor{driver: r.driver, replica: &replicaOf{replica: r, primary: p.driver}}, nil
}

// replicaOf is a replica reading for one primary.
type replicaOf struct {
	replica *Replica
	primary *Driver
}

// dbIdentity is a database of a cluster: physical copies of a cluster
// keep both.
type dbIdentity struct {
	systemID int64
	database uint32
}

const identitySQL = `SELECT system_identifier, (SELECT oid FROM pg_database WHERE datname = current_database()) FROM pg_control_system()`

// replicaCheck keys a verified standby for a schema and a primary.
type replicaCheck struct {
	schema           string
	standby, primary dbIdentity
}

// selfIdentity caches the identity of a driver's database.
type selfIdentity struct {
	mu    sync.Mutex
	id    dbIdentity
	at    time.Time
	known bool
}

// identity returns the identity of the driver's database, looked up on a
// pooled connection at most every schemaRecheck. When the look-up fails,
// the last identity found serves.
func (d *Driver) identity(ctx context.Context) (dbIdentity, error) {
	s := &d.self
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.known && time.Since(s.at) < schemaRecheck {
		return s.id, nil
	}
	acquireCtx, cancel := context.WithTimeout(ctx, rebaseAcquireTimeout)
	defer cancel()
	var id dbIdentity
	err := d.withConn(acquireCtx, func(conn PooledConn) error {
		return conn.QueryRow(acquireCtx, identitySQL).Scan(&id.systemID, &id.database)
	})
	if err != nil {
		if s.known {
			return s.id, nil
		}
		return dbIdentity{}, fmt.Errorf("identifying the primary: %w", mapError(err))
	}
	s.id, s.at, s.known = id, time.Now(), true
	return id, nil
}

// prepare runs before a standby connection is taken: what it needs of the
// primary is looked up without holding one, so that a full pool on either
// side never waits on the other.
func (r *replicaOf) prepare(ctx context.Context) (dbIdentity, error) {
	return r.primary.identity(ctx)
}

// ensure verifies, without writing, that conn reaches the primary's
// database on a copy of its cluster and that schema's record there names
// it with the offset its position functions add. It never re-bases: that
// is the primary's to do, and the standby replays it.
func (r *replicaOf) ensure(ctx context.Context, conn PooledConn, schema string, primary dbIdentity) error {
	standby, err := connIdentity(ctx, conn)
	if err != nil {
		return err
	}
	key := replicaCheck{schema: schema, standby: standby, primary: primary}
	if at, ok := r.replica.verified.Load(key); ok && time.Since(at.(time.Time)) < schemaRecheck {
		return nil
	}
	if standby != primary {
		return fmt.Errorf("%w: it is database %d of cluster %d, the primary is database %d of cluster %d (a physical standby keeps both)",
			meowmxtype.ErrReplicaMismatch, standby.database, standby.systemID, primary.database, primary.systemID)
	}
	var s *clusterState
	// Read committed whatever the server's default: a standby refuses
	// serializable transactions.
	err = pgx.BeginTxFunc(ctx, conn, pgx.TxOptions{IsoLevel: pgx.ReadCommitted, AccessMode: pgx.ReadOnly}, func(tx pgx.Tx) error {
		var err error
		s, err = readClusterState(ctx, tx, r.replica.driver.statements(schema))
		return err
	})
	if err != nil {
		return mapError(err)
	}
	if !s.current() {
		return fmt.Errorf("%w: the schema's record there (cluster %d, offset %d; the position functions add %d) is not current: the standby has not replayed the primary's latest re-base",
			meowmxtype.ErrReplicaMismatch, s.recordedID, s.offset, s.effectiveOffset)
	}
	r.replica.verified.Store(key, time.Now())
	return nil
}

// connIdentity returns the identity of conn's database, cached on the
// connection like systemID.
func connIdentity(ctx context.Context, conn Conn) (dbIdentity, error) {
	data := conn.Data()
	if seen, ok := data[identityKey].(identitySeen); ok && time.Since(seen.at) < connectionRecheck {
		return seen.id, nil
	}
	var id dbIdentity
	if err := conn.QueryRow(ctx, identitySQL).Scan(&id.systemID, &id.database); err != nil {
		return dbIdentity{}, mapError(err)
	}
	data[identityKey] = identitySeen{id: id, at: time.Now()}
	return id, nil
}

const identityKey = "meowmx.identity"

type identitySeen struct {
	id dbIdentity
	at time.Time
}
