package meowmx

import (
	"context"
	"fmt"
	"log/slog"
	"regexp"
	"sync/atomic"
	"time"

	"github.com/meowmx/meowmx/meowmxdriver"
	"github.com/meowmx/meowmx/meowmxtype"
)

const (
	// SchemaDefault is the default Config.Schema.
	SchemaDefault = "meowmx"
	// MaxEventSizeDefault is the default Config.MaxEventSize: 1 MiB.
	MaxEventSizeDefault = 1 << 20
	// ReadLimitDefault is the default limit of ReadAll and ReadCategory.
	ReadLimitDefault = 1000
	// AppendRetriesDefault is the default Config.AppendRetries.
	AppendRetriesDefault = 3
)

// Config configures a Store. The zero value is usable; New fills in the
// defaults.
type Config struct {
	// Schema is the PostgreSQL schema holding meowmx's tables (on SQLite, a
	// prefix of their names), so that several applications or tenants can
	// share one database. Defaults to SchemaDefault.
	Schema string

	// MaxEventSize is the largest accepted size, in bytes, of one event's
	// data plus metadata. Defaults to MaxEventSizeDefault.
	MaxEventSize int

	// AppendRetries is how many times Append (never AppendTx, whose
	// transaction belongs to the caller) retries by itself, in a new
	// transaction, an append the database aborted for a reason a retry
	// fixes (IsRetryable). Set -1 for none. Defaults to AppendRetriesDefault.
	AppendRetries int

	// Logger receives the store's logs. Defaults to slog.Default().
	Logger *slog.Logger

	// DisableGroupCommit makes every Append a transaction of its own.
	// By default, appends that a store's goroutines make while others are
	// in flight go to the database together, each still all or nothing
	// (see "Group commit" in the README). Disable it when something reads
	// the database's transactions rather than its events, such as logical
	// decoding that expects one append per transaction, or to measure
	// appends one by one.
	DisableGroupCommit bool

	// Observer is told of every append, read and subscription batch, and
	// of group commit, parked events and failed notifications, for traces
	// and metrics (package meowmxotel implements it with OpenTelemetry).
	// Nil, the default, observes nothing and costs nothing.
	Observer Observer

	// Replica, when set, serves the store's reads from a hot standby of the
	// driver's database (meowmxpgxv5.NewReplica): ReadStream, ReadCategory,
	// ReadAll, ReadQuery and their iterators, Streams, Categories, and the
	// reads of subscriptions' partitions. Appends, the Tx forms, LastEvent,
	// StreamVersion, aggregates, checkpoints, leases and subscription
	// administration stay on the primary. A read's Primary option sends it
	// to the primary: for reading one's own writes, as the standby replays
	// an append some time after it returns (see "Reading from a hot
	// standby" in the README).
	Replica meowmxdriver.Replica
}

func (c *Config) withDefaults() *Config {
	out := Config{}
	if c != nil {
		out = *c
	}
	if out.Schema == "" {
		out.Schema = SchemaDefault
	}
	if out.MaxEventSize == 0 {
		out.MaxEventSize = MaxEventSizeDefault
	}
	if out.AppendRetries == 0 {
		out.AppendRetries = AppendRetriesDefault
	}
	if out.Logger == nil {
		out.Logger = slog.Default()
	}
	return &out
}

var schemaPattern = regexp.MustCompile(`^[a-z_][a-z0-9_]{0,62}$`)

func (c *Config) validate() error {
	if !schemaPattern.MatchString(c.Schema) {
		return invalidf("Config.Schema %q: want lower-case letters, digits and underscores, starting with a letter or underscore, at most 63 characters", c.Schema)
	}
	if c.MaxEventSize < 0 {
		return invalidf("Config.MaxEventSize must not be negative, got %d", c.MaxEventSize)
	}
	if c.AppendRetries < -1 {
		return invalidf("Config.AppendRetries must be -1 or more, got %d", c.AppendRetries)
	}
	return nil
}

// Store is an event store on one database, generic over the type of the
// caller's transactions (pgx.Tx with meowmxpgxv5, *sql.Tx with meowmxsqlite).
// It is safe for concurrent use.
type Store[TTx any] struct {
	driver meowmxdriver.Driver[TTx]
	config *Config
	closed atomic.Bool
	hub    *hub
	out    *announcer
	// reads runs the reads that Config.Replica may serve: the replica's
	// executor, or the driver's.
	reads meowmxdriver.Executor
	// groups gathers concurrent appends; nil when disabled.
	groups *appendGroups
	// stopClusterReports ends the driver's reports of cluster changes to
	// this store's log.
	stopClusterReports func()
}

// New returns a store on driver, configured by config (nil for the
// defaults). It does not touch the database: call Migrate once at start-up.
func New[TTx any](driver meowmxdriver.Driver[TTx], config *Config) (*Store[TTx], error) {
	if driver == nil {
		return nil, invalidf("nil driver")
	}
	cfg := config.withDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	store := &Store[TTx]{driver: driver, config: cfg, reads: driver.Executor()}
	if r := cfg.Replica; r != nil {
		if r.Name() != driver.Name() {
			return nil, invalidf("Config.Replica is a %s replica, the driver is %s", r.Name(), driver.Name())
		}
		reads, err := r.ReplicaExecutor(store.reads)
		if err != nil {
			return nil, invalidf("Config.Replica: %v", err)
		}
		store.reads = reads
	}
	if !cfg.DisableGroupCommit {
		store.groups = newAppendGroups(driver.Executor(), cfg.Observer)
	}
	store.hub = newHub(func(ctx context.Context, listening func(), wake func(string)) error {
		return driver.Listen(ctx, cfg.Schema, listening, wake)
	}, cfg.Logger)
	store.out = newAnnouncer(notifyWhileListened(driver, cfg.Schema), cfg.Logger)
	if obs := cfg.Observer; obs != nil {
		store.hub.failed = func(err error) {
			obs.NotificationFailed(context.Background(), &NotificationFailedData{Listen: true, Err: err})
		}
		store.out.failed = func(err error) {
			obs.NotificationFailed(context.Background(), &NotificationFailedData{Err: err})
		}
	}
	store.stopClusterReports = driver.OnClusterChange(cfg.Schema, func(change *meowmxdriver.ClusterChange) {
		store.logClusterChange(context.Background(), change)
	})
	return store, nil
}

// Driver returns the store's driver.
func (s *Store[TTx]) Driver() meowmxdriver.Driver[TTx] { return s.driver }

// readExec returns the executor of a read that the replica may serve:
// the primary's when primary is set.
func (s *Store[TTx]) readExec(primary bool) meowmxdriver.Executor {
	if primary {
		return s.driver.Executor()
	}
	return s.reads
}

// Schema returns the schema the store works in.
func (s *Store[TTx]) Schema() string { return s.config.Schema }

// Close marks the store closed: later calls return ErrClosed. It sends the
// notifications of appends already made, so that subscriptions in other
// processes learn of them at once (a few milliseconds; at most
// CloseFlushTimeout, after which they find them at their next poll). Close
// the store before the pool or database handed to the driver, which stay the
// caller's and which Close does not close.
func (s *Store[TTx]) Close() error {
	if s.closed.Swap(true) {
		return nil
	}
	s.stopClusterReports()
	s.out.close(CloseFlushTimeout)
	return nil
}

// CloseFlushTimeout bounds how long Store.Close waits to notify other
// processes of the last appends.
const CloseFlushTimeout = 2 * time.Second

// checkUsable returns ErrClosed after Close, and the context's error once
// it is done: what every call checks before it starts.
func (s *Store[TTx]) checkUsable(ctx context.Context) error {
	if s.closed.Load() {
		return ErrClosed
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("meowmx: %w", err)
	}
	return nil
}

// Migrate creates or upgrades the store's schema with the embedded, numbered
// migrations. An up-to-date schema is left untouched; concurrent calls from
// several processes are safe. On PostgreSQL it also checks that the schema
// is on the cluster its positions come from, and re-bases them if it was
// moved (see MigrateResult.Cluster).
func (s *Store[TTx]) Migrate(ctx context.Context) error {
	_, err := s.MigrateWithResult(ctx)
	return err
}

// MigrateResult says what Migrate did.
type MigrateResult struct {
	// Applied lists the versions of the migrations applied, in order
	// (empty when the schema was up to date).
	Applied []int
	// Cluster is set when the schema was found on another PostgreSQL
	// cluster than the one its events were written on.
	Cluster *ClusterChange
}

// ClusterChange describes a schema found on another PostgreSQL cluster than
// the one its events were written on (a dump restored elsewhere, a cut-over
// by logical replication, pg_upgrade), and what meowmx did about it.
type ClusterChange struct {
	// SystemIdentifier is the cluster's (pg_control_system()), and
	// PreviousSystemIdentifier the one recorded before.
	SystemIdentifier, PreviousSystemIdentifier int64
	// LastPosition is the transaction part of the highest stored position.
	LastPosition uint64
	// Rebased says the cluster's transaction counter was behind the
	// stored positions: positions now take the cluster's transaction ids
	// plus Offset (PreviousOffset before), so that every new event comes
	// after every stored one. Otherwise (a physical replica promoted, an
	// upgrade with pg_upgrade, a cluster further ahead) only the cluster
	// was recorded.
	Rebased                bool
	Offset, PreviousOffset int64
}

// MigrateWithResult is Migrate, saying what it did.
func (s *Store[TTx]) MigrateWithResult(ctx context.Context) (*MigrateResult, error) {
	if err := s.checkUsable(ctx); err != nil {
		return nil, err
	}
	result, err := s.driver.Migrate(ctx, s.config.Schema)
	if err != nil {
		return nil, fmt.Errorf("meowmx: migrate: %w", err)
	}
	if len(result.Applied) > 0 {
		s.config.Logger.InfoContext(ctx, "meowmx: migrated",
			slog.String("schema", s.config.Schema), slog.Any("applied", result.Applied))
	}
	out := &MigrateResult{Applied: result.Applied}
	if result.Cluster != nil {
		out.Cluster = s.logClusterChange(ctx, result.Cluster)
	}
	return out, nil
}

// logClusterChange logs what was done about a change of cluster, and
// returns it as a ClusterChange.
func (s *Store[TTx]) logClusterChange(ctx context.Context, c *meowmxdriver.ClusterChange) *ClusterChange {
	change := &ClusterChange{
		SystemIdentifier: c.SystemIdentifier, PreviousSystemIdentifier: c.PreviousSystemIdentifier,
		LastPosition: c.LastTransactionID, Rebased: c.Offset != c.PreviousOffset,
		Offset: c.Offset, PreviousOffset: c.PreviousOffset,
	}
	attrs := []any{slog.String("schema", s.config.Schema),
		slog.Int64("system_identifier", change.SystemIdentifier),
		slog.Int64("previous_system_identifier", change.PreviousSystemIdentifier),
		slog.Uint64("last_position", change.LastPosition)}
	if change.Rebased {
		s.config.Logger.WarnContext(ctx, "meowmx: the schema is on a PostgreSQL cluster whose transaction counter is behind its positions (moved by a dump or logical replication?): new positions now follow the stored ones",
			append(attrs, slog.Int64("offset", change.Offset), slog.Int64("previous_offset", change.PreviousOffset))...)
	} else {
		s.config.Logger.InfoContext(ctx, "meowmx: the schema is on another PostgreSQL cluster than before, with its transaction counter ahead of its positions: recorded it", attrs...)
	}
	return change
}

// Horizon describes the oldest running transaction that holds the global
// order's visibility horizon back (see meowmxtype.Horizon).
type Horizon = meowmxtype.Horizon

// Horizon returns the oldest running transaction holding the visibility
// horizon back, or nil when none does. It is always nil on SQLite, whose
// writers are serialized.
func (s *Store[TTx]) Horizon(ctx context.Context) (*Horizon, error) {
	if err := s.checkUsable(ctx); err != nil {
		return nil, err
	}
	h, err := s.driver.Executor().Horizon(ctx)
	if err != nil {
		return nil, fmt.Errorf("meowmx: horizon: %w", err)
	}
	return h, nil
}
