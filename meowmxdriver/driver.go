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
	"strings"

	"github.com/meowmx/meowmx/meowmxtype"
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

// Replica serves reads from a copy of a driver's database that follows it,
// such as a PostgreSQL hot standby (meowmxpgxv5.NewReplica). meowmx sends it
// the read methods of Executor only (ReadStream, ReadGlobal, ReadQuery,
// ReadSubscription, Streams, Categories), never a write.
type Replica interface {
	// Name is the Name of the driver whose database the replica copies.
	Name() string
	// ReplicaExecutor returns the executor that runs each read on a
	// connection to the copy of the database primary (an Executor of the
	// driver) runs on, after checking that it is one. It fails when
	// primary is not an executor the replica can read for.
	ReplicaExecutor(primary Executor) (Executor, error)
}

// SingleWriter is implemented by the Executor of a database that runs one
// write transaction at a time (SQLite). A store then has one append or
// group of appends in flight at a time, rather than two: a second would
// only wait for the database, while the appends queued behind it would not
// join it.
type SingleWriter interface {
	SingleWriter() bool
}

// Executor runs meowmx's statements.
type Executor interface {
	// Append records events in a stream. See AppendParams and AppendResult.
	Append(ctx context.Context, p *AppendParams) (*AppendResult, error)

	// AppendGroup records appends of one schema, each to another stream,
	// together: in one transaction where the database allows, each still
	// all or nothing. It returns one result per append, or nil for an
	// append that recorded nothing and must be made alone (with Append) to
	// learn why. An error means that none was recorded. Executors of the
	// caller's transaction do not support it.
	AppendGroup(ctx context.Context, group []*AppendParams) ([]*AppendResult, error)

	// ReadStream returns the events of one stream ordered by version.
	ReadStream(ctx context.Context, p *ReadStreamParams) ([]meowmxtype.RecordedEvent, error)

	// ReadGlobal returns events in global order after a position, limited
	// to events below the visibility horizon, optionally filtered to one
	// category and to some event types.
	ReadGlobal(ctx context.Context, p *ReadGlobalParams) ([]meowmxtype.RecordedEvent, error)

	// PositionNumbers returns the number of each position: numbers
	// increase in global order and are below 2^53. Start is 0. A position
	// that cannot have one is ErrInvalidInput.
	PositionNumbers(ctx context.Context, schema string, positions []meowmxtype.Position) ([]int64, error)
	// NumberPosition returns the position p of number n: an event is
	// after p exactly when its number is above n.
	NumberPosition(ctx context.Context, schema string, n int64) (meowmxtype.Position, error)

	// StreamVersion returns the version of a stream's last event, or -1.
	StreamVersion(ctx context.Context, schema, category, streamID string) (int64, error)

	// Horizon returns the oldest running transaction holding the visibility
	// horizon back, or nil when none does (always nil on SQLite).
	Horizon(ctx context.Context) (*meowmxtype.Horizon, error)

	// ReadQuery returns the events matching p.Query in global order after a
	// position, limited like ReadGlobal to events below the visibility
	// horizon.
	ReadQuery(ctx context.Context, p *ReadQueryParams) ([]meowmxtype.RecordedEvent, error)

	// Streams returns the streams ordered by category then ID, after
	// p.After, at most p.Limit, each with its last event. Its cost grows with
	// the page, not with the log or the streams' lengths.
	Streams(ctx context.Context, p *StreamsParams) ([]meowmxtype.StreamInfo, error)

	// Categories returns the categories in order after p.After, at most
	// p.Limit, with their counts and their last event. The counts are
	// stored up to a position and brought up to date by each listing,
	// which stores them again once it counted many events past it.
	Categories(ctx context.Context, p *CategoriesParams) ([]meowmxtype.CategoryInfo, error)

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

// EventInsert is one event to record.
type EventInsert struct {
	ID       [16]byte
	Type     string
	Data     []byte
	Metadata []byte   // nil for none
	Tags     []string // nil for none
}

// AppendParams are the arguments of Executor.Append.
type AppendParams struct {
	Schema   string
	Category string
	StreamID string
	// StreamHash is meowmx.StreamHash of the stream, stored with each event
	// to split subscriptions into partitions.
	StreamHash int64
	Expected   meowmxtype.ExpectedVersion
	Events     []EventInsert
	// Condition, when not nil, makes the append conditional: nothing is
	// recorded if an event matching Condition.FailIfEventsMatch (which has
	// items) exists after Condition.After, committed before the append
	// commits. Drivers see every committed event for it, not only those
	// below the visibility horizon, and make sure that two conditional
	// appends whose conditions cover each other's events do not both
	// commit, and that the appended events' positions follow every event
	// the condition covered.
	Condition *meowmxtype.AppendCondition
}

// GroupableCondition reports whether a conditional append goes in groups
// (AppendGroup): every item of its condition has tags. Drivers may still
// make any conditional append of a group alone.
func GroupableCondition(c *meowmxtype.AppendCondition) bool {
	for _, item := range c.FailIfEventsMatch.Items {
		if len(item.Tags) == 0 {
			return false
		}
	}
	return true
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
	// AppendConditionFailed: an event matching the condition exists after
	// its position; nothing was written. Rows holds the first one.
	AppendConditionFailed
)

// AppendResult is the outcome of Executor.Append.
type AppendResult struct {
	Status         AppendStatus
	CurrentVersion int64
	// Rows are the recorded events. For AppendRecorded they may leave Type,
	// Data and Metadata empty: the caller has them.
	Rows []meowmxtype.RecordedEvent
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

// ReadQueryParams are the arguments of Executor.ReadQuery. Query has at
// least one item.
type ReadQueryParams struct {
	Schema    string
	Query     meowmxtype.Query
	AfterTxID uint64
	AfterSeq  int64
	Limit     int
	// Backward reads the events before the position instead, the newest
	// first.
	Backward bool
}

// StreamsParams are the arguments of Executor.Streams.
type StreamsParams struct {
	Schema string
	// Category, when not empty, keeps the streams of one category; After's
	// category is then Category.
	Category string
	After    meowmxtype.Stream // the zero Stream for the first page
	Limit    int
}

// CategoriesParams are the arguments of Executor.Categories.
type CategoriesParams struct {
	Schema string
	After  string // "" for the first page
	Limit  int
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

// Errors of the protocol between meowmx and its drivers. Everything else a
// driver returns is, or wraps, an error of meowmxtype, which meowmx returns
// as it is.
var (
	// ErrVersionTaken: a (stream, version) unique violation, which means
	// another writer recorded the version first. meowmx decides what it
	// means for the caller.
	ErrVersionTaken = errors.New("version already recorded")
)

// Classify wraps err, an error of the database, in kind (an error of
// meowmxtype or of this package): errors.Is finds both, and the message is
// kind's, then err's. An error that is classified already is returned as
// it is, so that an error mapped twice on its way up does not repeat its
// message.
func Classify(kind, err error) error {
	var c *classified
	if errors.As(err, &c) {
		return err
	}
	return &classified{kind: kind, err: err}
}

type classified struct{ kind, err error }

func (c *classified) Error() string   { return c.kind.Error() + ": " + c.err.Error() }
func (c *classified) Unwrap() []error { return []error{c.kind, c.err} }

// Qualified qualifies each column of a comma-separated list with prefix
// ("e.").
func Qualified(prefix, columns string) string {
	parts := strings.Split(columns, ", ")
	for i, c := range parts {
		parts[i] = prefix + c
	}
	return strings.Join(parts, ", ")
}
