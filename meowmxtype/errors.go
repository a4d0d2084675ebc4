package meowmxtype

import (
	"errors"
	"fmt"
)

var (
	// ErrVersionConflict: the stream's version was not the expected one.
	// Nothing was written. The error is a *VersionConflictError.
	ErrVersionConflict = errors.New("meowmx: version conflict")

	// ErrDuplicateEventID: an event ID of the batch is already recorded,
	// and not as an idempotent retry of this append (another stream, another
	// place in this stream, or only part of the batch). Nothing was written.
	ErrDuplicateEventID = errors.New("meowmx: event ID already recorded")

	// ErrAppendConditionFailed: a conditional append found an event
	// matching its condition after the condition's position. Nothing was
	// written. The error is an *AppendConditionFailedError.
	ErrAppendConditionFailed = errors.New("meowmx: append condition failed")

	// ErrInvalidInput: an argument was rejected (nearly always before
	// anything was sent to the database). Nothing was written. The message
	// says which and why.
	ErrInvalidInput = errors.New("meowmx: invalid input")

	// ErrStreamNotFound: the stream has no events.
	ErrStreamNotFound = errors.New("meowmx: stream not found")

	// ErrClosed: the store has been closed.
	ErrClosed = errors.New("meowmx: store closed")

	// ErrSchemaMissing: the schema has not been migrated; call Migrate (or
	// run "meowmx migrate").
	ErrSchemaMissing = errors.New("meowmx: schema not migrated (run Migrate or \"meowmx migrate\")")

	// ErrTransactionTooOld: the caller's transaction took its id before the
	// transaction that wrote the stream's last event, so recording this
	// append would put the stream's events out of order in the global log.
	// Nothing was written; roll the transaction back and retry it. It
	// happens only in AppendTx, when the transaction wrote something before
	// appending while another writer appended to the same stream.
	// IsRetryable reports true for it.
	ErrTransactionTooOld = errors.New("meowmx: transaction is older than the stream's last write; retry it")

	// ErrClusterMoved: the store's PostgreSQL schema was found on another
	// cluster than the one its events were written on, with a transaction
	// counter behind their positions, and could not be re-based yet (see
	// the README's "Moving to another cluster"): appends and reads fail
	// rather than record or skip positions out of order. The message says
	// why; Migrate, or the next call, tries again.
	ErrClusterMoved = errors.New("meowmx: the schema moved to another PostgreSQL cluster and its positions are not re-based yet")

	// ErrReplicaMismatch: the replica given for reads (Config.Replica) is
	// not a physical copy of the schema's cluster (another system
	// identifier, or a schema re-based on the primary that the copy has not
	// replayed yet): its positions would not be the primary's, so reads
	// through it fail rather than return them.
	ErrReplicaMismatch = errors.New("meowmx: the replica is not a hot standby of the schema's cluster")

	// ErrSerialization: the database aborted the transaction (serialization
	// failure, deadlock, lock busy). Retry it. IsRetryable reports true.
	ErrSerialization = errors.New("meowmx: transaction aborted by the database; retry it")

	// ErrUnavailable: for a subscription handler to wrap the error of a
	// service it depends on that is away for now (a broker, an API): the
	// batch is rolled back and retried with backoff for as long as it
	// takes, without counting as an attempt, so that an outage never parks
	// or skips an event.
	ErrUnavailable = errors.New("meowmx: a service the handler depends on is unavailable")

	// ErrSubscriptionNotFound: no subscription has that name.
	ErrSubscriptionNotFound = errors.New("meowmx: subscription not found")

	// ErrAfterEnd: a subscription was asked to start or reset after a
	// position beyond the last event of the log. It would silently skip
	// every event appended until the log reached that position, so it is
	// refused. errors.Is(err, ErrInvalidInput) reports true for it too.
	ErrAfterEnd = fmt.Errorf("%w: position after the end of the log", ErrInvalidInput)

	// ErrEventTooLarge: an event's data and metadata together are over
	// the store's MaxEventSize. It is also ErrInvalidInput.
	ErrEventTooLarge = fmt.Errorf("%w: event too large", ErrInvalidInput)

	// ErrSubscriptionStopped: the subscription stopped because an event
	// kept failing under the StopSubscription policy; the error wraps the
	// handler's.
	ErrSubscriptionStopped = errors.New("meowmx: subscription stopped")

	// ErrUnknownEventType: no Go type is registered for an event's type, or
	// no name for a Go value's type.
	ErrUnknownEventType = errors.New("meowmx: unknown event type")

	// ErrRetriesExhausted: an aggregate's Execute met a version conflict on
	// every attempt. The error is a *RetriesExhaustedError and also matches
	// ErrVersionConflict.
	ErrRetriesExhausted = errors.New("meowmx: retries exhausted")
)

// IsRetryable reports whether err means that retrying the same operation in
// a new transaction can succeed: ErrTransactionTooOld and ErrSerialization.
// A version conflict is not retryable as such: the caller must reload the
// stream and decide again.
func IsRetryable(err error) bool {
	return errors.Is(err, ErrTransactionTooOld) || errors.Is(err, ErrSerialization)
}

// VersionConflictError is the error of an append whose expected version did
// not match. errors.Is(err, ErrVersionConflict) reports true for it.
type VersionConflictError struct {
	Stream   Stream
	Expected ExpectedVersion
	// Actual is the version of the stream's last event, -1 if it has none.
	Actual int64
}

func (e *VersionConflictError) Error() string {
	actual := fmt.Sprintf("version %d", e.Actual)
	if e.Actual < 0 {
		actual = "no events"
	}
	return fmt.Sprintf("meowmx: version conflict on stream %s: expected %s, stream has %s", e.Stream, e.Expected, actual)
}

// Is reports whether target is ErrVersionConflict.
func (e *VersionConflictError) Is(target error) bool { return target == ErrVersionConflict }

// Invalid returns an ErrInvalidInput saying what is wrong.
func Invalid(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalidInput, fmt.Sprintf(format, args...))
}
