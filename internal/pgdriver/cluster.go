package pgdriver

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/meowmx/meowmx/meowmxdriver"
	"github.com/meowmx/meowmx/meowmxtype"
)

// Positions stay in order across a move to another cluster.
//
// A position's transaction part comes from pg_current_xact_id() of the
// cluster that wrote the event, plus the schema's position offset. After a
// dump restored into another cluster, or a cut-over by logical replication,
// the new cluster's transaction counter can be behind the stored positions:
// new events would sort before old ones, and global reads, which only see
// positions below the oldest running transaction, would see none of the old
// ones. The driver notices it before a connection runs anything for a
// schema: each connection's cluster (its system identifier, looked up again
// every connectionRecheck) must be one the schema's record names, with the
// counter ahead of every stored position. When it is not, the driver raises
// the offset, under the migration lock and a lock on the events table, so
// that new positions follow the stored ones (re-basing), and records the
// cluster. A physical replica, or a cluster upgraded with pg_upgrade, keeps
// the counter: only its identifier is recorded.

const (
	// connectionRecheck is how long a connection's system identifier is
	// trusted. A connection to a server cannot change servers, but one
	// through a pooler can.
	connectionRecheck = 5 * time.Second
	// schemaRecheck is how long a schema's record is trusted for a cluster
	// once verified.
	schemaRecheck = time.Minute
	// clusterKey keys a connection's clusterSeen in its CustomData.
	clusterKey = "meowmx.cluster"
)

// clusterSeen is what a connection knows of its server.
type clusterSeen struct {
	systemID int64
	at       time.Time
}

// clusterChecks remembers, per schema, the clusters whose record was
// verified and when.
type clusterChecks struct {
	verified sync.Map // clusterOf -> time.Time
}

type clusterOf struct {
	schema   string
	systemID int64
}

func (c *clusterChecks) ok(schema string, systemID int64) bool {
	at, found := c.verified.Load(clusterOf{schema, systemID})
	return found && time.Since(at.(time.Time)) < schemaRecheck
}

func (c *clusterChecks) mark(schema string, systemID int64) {
	c.verified.Store(clusterOf{schema, systemID}, time.Now())
}

// OnClusterChange has report called with every change of schema's cluster
// that the driver finds and handles by itself (Migrate returns its own),
// until the returned function is called. A later call for the same schema
// takes its place.
func (d *Driver) OnClusterChange(schema string, report func(*meowmxdriver.ClusterChange)) (stop func()) {
	r := &clusterReport{report}
	d.clusterReports.Store(schema, r)
	return func() { d.clusterReports.CompareAndDelete(schema, r) }
}

type clusterReport struct {
	report func(*meowmxdriver.ClusterChange)
}

func (d *Driver) reportClusterChange(schema string, change *meowmxdriver.ClusterChange) {
	if r, ok := d.clusterReports.Load(schema); ok {
		r.(*clusterReport).report(change)
	}
}

// ensureCluster makes sure that positions written and read through conn, an
// idle pooled connection, for schema follow the stored ones.
func (d *Driver) ensureCluster(ctx context.Context, conn PooledConn, schema string) error {
	if known, err := d.clusterKnown(ctx, conn, schema); known || err != nil {
		return err
	}
	_, err := d.reconcileOn(ctx, conn, schema)
	return err
}

// ensureClusterInTx is ensureCluster for the caller's transaction tx. The
// check is one read, in tx; only a re-base needs a transaction of its own,
// on another connection.
func (d *Driver) ensureClusterInTx(ctx context.Context, tx Conn, schema string) error {
	if known, err := d.clusterKnown(ctx, tx, schema); known || err != nil {
		return err
	}
	s, err := readClusterState(ctx, tx, d.statements(schema))
	if err != nil {
		return err
	}
	if s.current() {
		d.clusters.mark(schema, s.systemID)
		return nil
	}
	return d.reconcileElsewhere(ctx, schema, s.systemID)
}

// clusterKnown reports whether conn's cluster was verified for schema
// lately.
func (d *Driver) clusterKnown(ctx context.Context, conn Conn, schema string) (bool, error) {
	id, err := systemID(ctx, conn)
	if err != nil {
		return false, err
	}
	return d.clusters.ok(schema, id), nil
}

// rebaseAcquireTimeout bounds the wait for a pool connection to re-base on
// while the caller holds one: with a pool of one it would never come.
const rebaseAcquireTimeout = 10 * time.Second

// reconcileElsewhere reconciles schema on a pool connection to the cluster
// id: the caller's connection is in a transaction. Callers that find the
// same schema to re-base take turns, and those after the first find it done.
func (d *Driver) reconcileElsewhere(ctx context.Context, schema string, id int64) error {
	turn, _ := d.rebasing.LoadOrStore(schema, make(chan struct{}, 1))
	select {
	case turn.(chan struct{}) <- struct{}{}:
		defer func() { <-turn.(chan struct{}) }()
	case <-ctx.Done():
		return ctx.Err()
	}
	if d.clusters.ok(schema, id) {
		return nil // re-based while this one waited its turn
	}
	acquireCtx, cancel := context.WithTimeout(ctx, rebaseAcquireTimeout)
	conn, err := d.pool.Acquire(acquireCtx)
	cancel()
	if err != nil {
		return fmt.Errorf("%w: the schema's positions must be re-based and no other pool connection came to do it: %w", meowmxtype.ErrClusterMoved, mapError(err))
	}
	defer conn.Release()
	other, err := systemID(ctx, conn)
	if err != nil {
		return err
	}
	if other != id {
		return fmt.Errorf("%w: the pool's connections reach two clusters (system identifiers %d and %d)", meowmxtype.ErrClusterMoved, id, other)
	}
	_, err = d.reconcileOn(ctx, conn, schema)
	return err
}

// reconcileOn checks schema's record on conn and re-bases in a transaction of
// its own if needed. The transaction is read committed whatever the
// server's default, so that what it reads after its locks is the latest.
func (d *Driver) reconcileOn(ctx context.Context, conn PooledConn, schema string) (*meowmxdriver.ClusterChange, error) {
	var change *meowmxdriver.ClusterChange
	var id int64
	err := pgx.BeginTxFunc(ctx, conn, pgx.TxOptions{IsoLevel: pgx.ReadCommitted}, func(tx pgx.Tx) error {
		var err error
		change, id, err = reconcile(ctx, tx, d.statements(schema), true)
		return err
	})
	if err != nil {
		return nil, mapError(err)
	}
	conn.Data()[clusterKey] = clusterSeen{systemID: id, at: time.Now()}
	d.clusters.mark(schema, id)
	if change != nil {
		d.reportClusterChange(schema, change)
	}
	return change, nil
}

// clusterState is the schema's record and the cluster's counter.
type clusterState struct {
	systemID, recordedID int64
	offset               int64 // as recorded
	effectiveOffset      int64 // as the position functions add it
	lastTxID             int64
	xmin, xmax           int64
}

// current says that the record names this cluster, that the position
// functions add the recorded offset, and that the counter is ahead of every
// stored position: every new position follows them.
func (s *clusterState) current() bool {
	return s.systemID == s.recordedID && s.effectiveOffset == s.offset && s.xmax+s.offset > s.lastTxID
}

func readClusterState(ctx context.Context, tx Querier, st *statements) (*clusterState, error) {
	s := &clusterState{}
	err := tx.QueryRow(ctx, st.clusterState).Scan(&s.systemID, &s.recordedID, &s.offset, &s.effectiveOffset, &s.lastTxID, &s.xmin, &s.xmax)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, fmt.Errorf("%w: no row in %s.cluster", meowmxtype.ErrSchemaMissing, st.ident)
	}
	return s, mapError(err)
}

// reconcile verifies, in tx, that new positions of schema follow the stored
// ones on this cluster, and re-bases them if not: it raises the offset so
// that every transaction still to write gets a position after the last
// stored one, and records the cluster. It returns nil when the record was
// already right, and the cluster's system identifier. lock says to take the
// migration lock first (Migrate holds it already).
func reconcile(ctx context.Context, tx Querier, st *statements, lock bool) (*meowmxdriver.ClusterChange, int64, error) {
	s, err := readClusterState(ctx, tx, st)
	if err != nil {
		return nil, 0, err
	}
	if s.current() {
		return nil, s.systemID, nil // nothing to do, no lock taken
	}
	change, err := rebase(ctx, tx, st, lock)
	if err != nil && ctx.Err() == nil {
		// Nothing was changed; what failed stays in the chain (a lock
		// timeout is retryable).
		err = fmt.Errorf("%w: re-basing the schema's positions: %w", meowmxtype.ErrClusterMoved, mapError(err))
	}
	return change, s.systemID, err
}

// rebase is reconcile's locked part.
func rebase(ctx context.Context, tx Querier, st *statements, lock bool) (*meowmxdriver.ClusterChange, error) {
	if _, err := tx.Exec(ctx, lockTimeoutSQL); err != nil {
		return nil, err
	}
	if lock {
		if _, err := tx.Exec(ctx, migrateLockSQL, st.schema); err != nil {
			return nil, err
		}
	}
	// No append runs from here to the commit: the last position is final,
	// and appends waiting for the lock plan again with the new offset.
	if _, err := tx.Exec(ctx, st.lockEvents); err != nil {
		return nil, err
	}
	s, err := readClusterState(ctx, tx, st)
	if err != nil {
		return nil, err
	}
	change := &meowmxdriver.ClusterChange{
		SystemIdentifier: s.systemID, PreviousSystemIdentifier: s.recordedID,
		LastTransactionID: uint64(s.lastTxID), Offset: s.offset, PreviousOffset: s.offset,
	}
	// Every transaction that can still write has an id of at least xmin.
	if s.xmin+s.offset <= s.lastTxID {
		change.Offset = s.lastTxID + 1 - s.xmin
	}
	if s.systemID == s.recordedID && change.Offset == s.offset && s.effectiveOffset == s.offset {
		return nil, nil // another process re-based it meanwhile
	}
	if _, err := tx.Exec(ctx, positionFunctions(st.ident, change.Offset)); err != nil {
		return nil, err
	}
	if _, err := tx.Exec(ctx, st.recordCluster, pgx.StrictNamedArgs{"system_identifier": s.systemID, "offset": change.Offset}); err != nil {
		return nil, err
	}
	return change, nil
}

// positionFunctions renders the schema's two position functions (see
// migrations/004_cluster.up.sql) with offset added to the cluster's
// transaction ids.
func positionFunctions(ident string, offset int64) string {
	txid, horizon := "pg_current_xact_id()", "pg_snapshot_xmin(pg_current_snapshot())"
	if offset != 0 {
		add := func(x string) string {
			return "(" + x + "::text::bigint + " + strconv.FormatInt(offset, 10) + ")::text::xid8"
		}
		txid, horizon = add(txid), add(horizon)
	}
	return `CREATE OR REPLACE FUNCTION ` + ident + `.current_position_txid() RETURNS xid8
    LANGUAGE sql STABLE PARALLEL UNSAFE
    AS 'SELECT ` + txid + `';
CREATE OR REPLACE FUNCTION ` + ident + `.visible_horizon() RETURNS xid8
    LANGUAGE sql STABLE PARALLEL SAFE
    AS 'SELECT ` + horizon + `'`
}

// systemID returns the system identifier of conn's server.
func systemID(ctx context.Context, conn Conn) (int64, error) {
	data := conn.Data()
	if seen, ok := data[clusterKey].(clusterSeen); ok && time.Since(seen.at) < connectionRecheck {
		return seen.systemID, nil
	}
	var id int64
	if err := conn.QueryRow(ctx, systemIDSQL).Scan(&id); err != nil {
		return 0, mapError(err)
	}
	data[clusterKey] = clusterSeen{systemID: id, at: time.Now()}
	return id, nil
}
