// Package meowmxdriver defines the interface between meowmx and the database
// drivers (meowmxpgxv5 for PostgreSQL, meowmxsqlite for SQLite).
//
// It is internal and unstable: applications construct a driver with its
// package's New and hand it to meowmx.New, and never call these methods
// themselves. The interface changes whenever meowmx needs it to.
package meowmxdriver

import (
	"context"
	"errors"
	"time"
)

// Driver is a database behind meowmx, generic over the type of transaction
// the caller hands to the *Tx methods (pgx.Tx, *sql.Tx).
type Driver[TTx any] interface {
	// Name identifies the database: "postgres" or "sqlite".
	Name() string

	// Executor runs each call on its own connection, in its own transaction
	// where the call writes.
	Executor() Executor

	// UnwrapExecutor runs calls inside the caller's transaction, never
	// committing or rolling it back.
	UnwrapExecutor(tx TTx) Executor

	Transactor[TTx]
	Listener

	// Migrate brings the schema up to date. It is safe to call from several
	// processes at once.
	Migrate(ctx context.Context, schema string) (*MigrateResult, error)

	// OnClusterChange has report called with every change of schema's
	// cluster that the driver finds and handles while running statements
	// (drivers without clusters never call it), until stop is called. A
	// later call for the same schema takes its place.
	OnClusterChange(schema string, report func(*ClusterChange)) (stop func())
}

// Executor runs meowmx's statements.
type Executor interface {
	// Append records events in a stream. See AppendParams and AppendResult.
	Append(ctx context.Context, p *AppendParams) (*AppendResult, error)

	// ReadStream returns the events of one stream ordered by version.
	ReadStream(ctx context.Context, p *ReadStreamParams) ([]*EventRow, error)

	// ReadGlobal returns events in global order after a position, limited
	// to events below the visibility horizon, optionally filtered to one
	// category and to some event types.
	ReadGlobal(ctx context.Context, p *ReadGlobalParams) ([]*EventRow, error)

	// StreamVersion returns the version of a stream's last event, or -1.
	StreamVersion(ctx context.Context, schema, category, streamID string) (int64, error)

	// Horizon returns the oldest running transaction holding the visibility
	// horizon back, or nil when none does (always nil on SQLite).
	Horizon(ctx context.Context) (*HorizonRow, error)

	SubscriptionExecutor

	// SaveSnapshot stores a snapshot unless one exists for the same stream,
	// schema version and version; it reports whether it stored it.
	SaveSnapshot(ctx context.Context, p *SnapshotRow) (bool, error)
	// LoadSnapshot returns the snapshot of the highest version of a stream
	// in a schema version, or nil.
	LoadSnapshot(ctx context.Context, schema, category, streamID string, schemaVersion int) (*SnapshotRow, error)
	// DeleteSnapshots deletes a stream's snapshots, of every schema version,
	// and returns how many there were.
	DeleteSnapshots(ctx context.Context, schema, category, streamID string) (int, error)
}

// SnapshotRow is a stored snapshot.
type SnapshotRow struct {
	Schema        string
	Category      string
	StreamID      string
	Version       int64
	SchemaVersion int
	State         []byte
}

// Expected-version values below zero. An exact version is >= 0.
const (
	ExpectedNoStream     int64 = -1
	ExpectedAny          int64 = -2
	ExpectedStreamExists int64 = -3
)

// ExpectedMatches reports whether a stream whose last version is current
// (-1 for none) satisfies expected. Drivers that check in SQL mirror it.
func ExpectedMatches(expected, current int64) bool {
	switch expected {
	case ExpectedAny:
		return true
	case ExpectedNoStream:
		return current == -1
	case ExpectedStreamExists:
		return current >= 0
	default:
		return current == expected
	}
}

// EventInsert is one event to record.
type EventInsert struct {
	ID       [16]byte
	Type     string
	Data     []byte
	Metadata []byte // nil for none
}

// AppendParams are the arguments of Executor.Append.
type AppendParams struct {
	Schema   string
	Category string
	StreamID string
	// StreamHash is meowmx.StreamHash of the stream, stored with each event
	// to split subscriptions into partitions.
	StreamHash int64
	Expected   int64
	Events     []EventInsert
}

// AppendStatus says what Append did.
type AppendStatus int

const (
	// AppendRecorded: the events were recorded; Rows holds them.
	AppendRecorded AppendStatus = iota
	// AppendConflict: the expected version did not match; nothing was
	// written; CurrentVersion holds the stream's version.
	AppendConflict
	// AppendExisting: the first event ID was already recorded; nothing was
	// written. Rows holds the stored events from that one on in its stream
	// (at most len(Events) of them), for the caller to decide whether the
	// append is an idempotent retry.
	AppendExisting
	// AppendTooOld: the transaction's id is below the one that wrote the
	// stream's last event, so recording would invert the stream's order in
	// the global log; nothing was written.
	AppendTooOld
)

// AppendResult is the outcome of Executor.Append.
type AppendResult struct {
	Status         AppendStatus
	CurrentVersion int64
	Rows           []*EventRow
}

// EventRow is a recorded event as stored. Rows returned by Append for
// AppendRecorded may leave Type, Data and Metadata empty: the caller has them.
type EventRow struct {
	TransactionID uint64
	Seq           int64
	Category      string
	StreamID      string
	Version       int64
	ID            [16]byte
	Type          string
	Data          []byte
	Metadata      []byte
	RecordedAt    time.Time
}

// ReadStreamParams are the arguments of Executor.ReadStream.
type ReadStreamParams struct {
	Schema   string
	Category string
	StreamID string
	// From is the first version returned; for a backward read the highest
	// one, where -1 means the stream's end.
	From     int64
	Limit    int // 0 for no limit
	Backward bool
}

// ReadGlobalParams are the arguments of Executor.ReadGlobal.
type ReadGlobalParams struct {
	Schema    string
	Category  string // empty for all categories
	Types     []string
	AfterTxID uint64
	AfterSeq  int64
	Limit     int
}

// HorizonRow describes the oldest running transaction that holds an id.
type HorizonRow struct {
	PID           int
	TransactionID uint64
	Age           time.Duration
	Database      string
	State         string
	Query         string
	Prepared      bool
}

// MigrateResult lists the migrations Migrate applied, and what it found of
// the cluster the schema lives on.
type MigrateResult struct {
	Applied []int
	// Cluster is set when the schema was found on another cluster than the
	// one it was last used on, or behind its positions (PostgreSQL only).
	Cluster *ClusterChange
}

// ClusterChange describes a schema found on another PostgreSQL cluster than
// the one its events were written on (a dump restored elsewhere, a cut-over
// by logical replication, an upgrade with pg_upgrade), and what the driver
// did so that new positions still follow the stored ones.
type ClusterChange struct {
	// SystemIdentifier is the cluster's pg_control_system() identifier now;
	// PreviousSystemIdentifier the one recorded before.
	SystemIdentifier, PreviousSystemIdentifier int64
	// LastTransactionID is the transaction part of the highest stored
	// position (or checkpoint).
	LastTransactionID uint64
	// Offset is what the driver adds to the cluster's transaction ids in
	// positions; PreviousOffset what it added before. They differ when the
	// cluster's transaction counter was behind the stored positions.
	Offset, PreviousOffset int64
}

// Errors drivers return for meowmx to map to its own.
var (
	// ErrDuplicateEventID: an event ID in the batch is already recorded.
	ErrDuplicateEventID = errors.New("duplicate event id")
	// ErrVersionTaken: a (stream, version) unique violation, which means
	// another writer recorded the version first.
	ErrVersionTaken = errors.New("version already recorded")
	// ErrRetryable: a serialization failure or deadlock; retry the
	// transaction.
	ErrRetryable = errors.New("transaction must be retried")
	// ErrSchemaMissing: meowmx's tables or functions are not there.
	ErrSchemaMissing = errors.New("schema not migrated")
	// ErrInvalidInput: the database refused a value (a data exception, a
	// key too large for an index).
	ErrInvalidInput = errors.New("value refused by the database")
	// ErrClusterMoved: the schema is on another cluster than the one its
	// positions come from, and the driver could not make new positions
	// follow the stored ones yet.
	ErrClusterMoved = errors.New("schema moved to another cluster, positions not re-based yet")
)
