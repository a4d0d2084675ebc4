package meowmxdriver

import (
	"context"
	"errors"
	"time"

	"github.com/meowmx/meowmx/meowmxtype"
)

// Transactor begins, commits and rolls back the driver's transactions, for
// the subscription workers' batches.
type Transactor[TTx any] interface {
	// Begin starts a transaction. Unless synchronous, the driver may commit
	// it without waiting for durability, where a crash loses the whole
	// transaction or nothing of it.
	Begin(ctx context.Context, synchronous bool) (TTx, error)
	Commit(ctx context.Context, tx TTx) error
	Rollback(ctx context.Context, tx TTx) error
}

// Listener wakes subscriptions when events are appended elsewhere.
type Listener interface {
	// Listen runs one listening session: it connects, calls listening once
	// it receives notifications, then calls wake with the category of
	// every append committed by any process, until ctx ends (it returns
	// nil) or the session fails (it returns why). meowmx reconnects, and
	// wakes every subscription after each reconnect. Drivers without
	// notifications return ErrNoListen at once.
	Listen(ctx context.Context, schema string, listening func(), wake func(category string)) error

	// Notify tells the listeners of every process that events of these
	// categories were appended. meowmx calls it after an append, outside the
	// append's transaction, never with two calls of one store in flight,
	// and only while SubscriptionExecutor.WorkersAlive says someone may
	// listen. Drivers without notifications return ErrNoListen, even for
	// no categories; others do nothing for none.
	Notify(ctx context.Context, schema string, categories []string) error
}

// ErrNoListen: the driver has no cross-process notifications.
var ErrNoListen = errors.New("driver has no notifications")

// SubscriptionExecutor stores subscriptions' checkpoints, leases and parked
// events.
type SubscriptionExecutor interface {
	// InitSubscription creates the subscription's partition rows if they do
	// not exist, starting after the given position, and returns the stored
	// rows (whose partition count and filter may differ from the ones asked
	// for, if the subscription already existed).
	InitSubscription(ctx context.Context, p *InitSubscriptionParams) ([]*SubscriptionRow, error)

	// Heartbeat records that worker is alive for ttl, forgets workers whose
	// time is up, and returns the live workers, sorted.
	Heartbeat(ctx context.Context, schema, name, worker string, ttl time.Duration) ([]string, error)

	// RemoveWorker forgets worker and frees the partitions it owns.
	RemoveWorker(ctx context.Context, schema, name, worker string) error

	// DeleteSubscription deletes a subscription's checkpoints, workers and
	// parked events, and returns how many checkpoints (partitions) it had.
	DeleteSubscription(ctx context.Context, schema, name string) (int, error)

	// WorkersAlive reports whether any subscription worker of the schema,
	// in any process, has a heartbeat that has not expired.
	WorkersAlive(ctx context.Context, schema string) (bool, error)

	// Claim renews the leases worker holds on the subscription's
	// partitions, takes free or expired ones until it holds want, and
	// returns the partitions it holds.
	Claim(ctx context.Context, p *ClaimParams) ([]*SubscriptionRow, error)

	// Release frees the given partitions, if worker holds them.
	Release(ctx context.Context, schema, name, worker string, partitions []int) error

	// Advance moves a partition's checkpoint and renews its lease, if worker
	// still holds it at the same generation; it reports whether it did.
	// It runs in the batch's transaction.
	Advance(ctx context.Context, p *AdvanceParams) (bool, error)

	// ReadSubscription returns the events after a position that match a
	// subscription's filter and partition, in global order, below the
	// visibility horizon.
	ReadSubscription(ctx context.Context, p *ReadSubscriptionParams) ([]meowmxtype.RecordedEvent, error)

	// EndPosition returns the position of the last visible event (zero for
	// none).
	EndPosition(ctx context.Context, schema string) (txID uint64, seq int64, err error)

	// LastPosition returns the position of the last recorded event, visible
	// or not yet (zero for none).
	LastPosition(ctx context.Context, schema string) (txID uint64, seq int64, err error)

	// Reset moves every partition of a subscription to a position and bumps
	// its generation; it returns how many partitions it moved.
	Reset(ctx context.Context, schema, name string, txID uint64, seq int64) (int, error)

	// Subscriptions returns the rows of one subscription, or of all when
	// name is empty, ordered by name and partition.
	Subscriptions(ctx context.Context, schema, name string) ([]*SubscriptionRow, error)

	// Lag counts the events a partition has not handled yet and returns the
	// recording time of the oldest. With a positive limit it counts only
	// the first limit of them (in position order), and returns the oldest
	// of those.
	Lag(ctx context.Context, schema string, row *SubscriptionRow, limit int64) (count int64, oldest time.Time, err error)

	// Pending reports whether an event the partition has not handled yet
	// is at or before the position (untilTxID, untilSeq).
	Pending(ctx context.Context, schema string, row *SubscriptionRow, untilTxID uint64, untilSeq int64) (bool, error)

	// Park records a failed event (or records the failure again).
	Park(ctx context.Context, p *ParkParams) error

	// Parked lists a subscription's parked events with the events, oldest
	// first; onlyReplay keeps those asked to be replayed, of one partition.
	Parked(ctx context.Context, p *ParkedParams) ([]*ParkedRow, error)

	// RequestReplay asks for every parked event of a subscription to be
	// handled again and returns how many there are.
	RequestReplay(ctx context.Context, schema, name string) (int, error)

	// Unpark deletes a parked event, in the transaction that handled it.
	Unpark(ctx context.Context, schema, name string, eventID [16]byte) error
}

// InitSubscriptionParams are the arguments of InitSubscription.
type InitSubscriptionParams struct {
	Schema     string
	Name       string
	Partitions int
	Categories []string
	Types      []string
	Tags       []string
	AfterTxID  uint64
	AfterSeq   int64
}

// SubscriptionRow is one partition of a subscription.
type SubscriptionRow struct {
	Name          string
	Partition     int
	Partitions    int
	Categories    []string
	Types         []string
	Tags          []string
	TransactionID uint64
	Seq           int64
	Generation    int64
	Owner         string
	LeaseUntil    time.Time // zero when free
	UpdatedAt     time.Time
	Parked        int64 // filled by Subscriptions
}

// ClaimParams are the arguments of Claim.
type ClaimParams struct {
	Schema string
	Name   string
	Worker string
	Lease  time.Duration
	Want   int
}

// AdvanceParams are the arguments of Advance.
type AdvanceParams struct {
	Schema     string
	Name       string
	Partition  int
	Worker     string
	Generation int64
	TxID       uint64
	Seq        int64
	Lease      time.Duration
}

// ReadSubscriptionParams are the arguments of ReadSubscription.
type ReadSubscriptionParams struct {
	Schema     string
	Categories []string // empty for all
	Types      []string // empty for all
	Tags       []string // events carrying all of them; empty for all
	Partitions int
	Partition  int
	AfterTxID  uint64
	AfterSeq   int64
	Limit      int
}

// ParkParams are the arguments of Park.
type ParkParams struct {
	Schema    string
	Name      string
	Partition int
	EventID   [16]byte
	Error     string
	Attempts  int
}

// ParkedParams are the arguments of Parked.
type ParkedParams struct {
	Schema     string
	Name       string
	OnlyReplay bool
	Partition  int // with OnlyReplay
	Limit      int // 0 for no limit
}

// ParkedRow is a parked event.
type ParkedRow struct {
	Subscription string
	Partition    int
	Error        string
	Attempts     int
	Replay       bool
	ParkedAt     time.Time
	Event        meowmxtype.RecordedEvent
}
