package meowmx

import (
	"errors"
	"fmt"

	"github.com/meowmx/meowmx/meowmxtype"
)

// The errors meowmx returns. They are defined in meowmxtype, whose
// documentation says more of each, so that the drivers return them too.
var (
	// ErrVersionConflict: the stream's version was not the expected one;
	// nothing was written. The error is a *VersionConflictError.
	ErrVersionConflict = meowmxtype.ErrVersionConflict
	// ErrDuplicateEventID: an event ID of the batch is already recorded,
	// and not as an idempotent retry of this append; nothing was written.
	ErrDuplicateEventID = meowmxtype.ErrDuplicateEventID
	// ErrInvalidInput: an argument was rejected; nothing was written. The
	// message says which and why.
	ErrInvalidInput = meowmxtype.ErrInvalidInput
	// ErrAppendConditionFailed: AppendIf found an event matching its
	// condition after the condition's position; nothing was written. The
	// error is an *AppendConditionFailedError.
	ErrAppendConditionFailed = meowmxtype.ErrAppendConditionFailed
	// ErrStreamNotFound: the stream has no events.
	ErrStreamNotFound = meowmxtype.ErrStreamNotFound
	// ErrClosed: the store has been closed.
	ErrClosed = meowmxtype.ErrClosed
	// ErrSchemaMissing: the schema has not been migrated; call Migrate (or
	// run "meowmx migrate").
	ErrSchemaMissing = meowmxtype.ErrSchemaMissing
	// ErrTransactionTooOld: AppendTx in a transaction older than the
	// stream's last write; nothing was written. Retry the transaction.
	ErrTransactionTooOld = meowmxtype.ErrTransactionTooOld
	// ErrClusterMoved: the PostgreSQL schema is on another cluster and its
	// positions could not be re-based yet (see the README's "Moving to
	// another cluster"); nothing was written or skipped.
	ErrClusterMoved = meowmxtype.ErrClusterMoved
	// ErrReplicaMismatch: Config.Replica is not a hot standby of the
	// schema's cluster; reads through it fail rather than return positions
	// that are not the primary's.
	ErrReplicaMismatch = meowmxtype.ErrReplicaMismatch
	// ErrSerialization: the database aborted the transaction; retry it.
	ErrSerialization = meowmxtype.ErrSerialization
	// ErrUnavailable: a handler's dependency is away: retry the batch
	// without counting an attempt (see Handler).
	ErrUnavailable = meowmxtype.ErrUnavailable
	// ErrSubscriptionNotFound: no subscription has that name.
	ErrSubscriptionNotFound = meowmxtype.ErrSubscriptionNotFound
	// ErrAfterEnd: a start or reset position after the end of the log,
	// which would skip what is appended until the log reaches it; also
	// ErrInvalidInput.
	ErrAfterEnd = meowmxtype.ErrAfterEnd
	// ErrEventTooLarge: an event over Config.MaxEventSize (also
	// ErrInvalidInput); nothing was written.
	ErrEventTooLarge = meowmxtype.ErrEventTooLarge
	// ErrSubscriptionStopped: an event kept failing under the
	// StopSubscription policy; the error wraps the handler's.
	ErrSubscriptionStopped = meowmxtype.ErrSubscriptionStopped
	// ErrUnknownEventType: no Go type is registered for an event's type, or
	// no name for a Go value's type.
	ErrUnknownEventType = meowmxtype.ErrUnknownEventType
	// ErrRetriesExhausted: Execute met a version conflict on every attempt;
	// the error is a *RetriesExhaustedError and also matches
	// ErrVersionConflict.
	ErrRetriesExhausted = meowmxtype.ErrRetriesExhausted
)

// VersionConflictError is the error of an append whose expected version did
// not match. errors.Is(err, ErrVersionConflict) reports true for it.
type VersionConflictError = meowmxtype.VersionConflictError

// AppendConditionFailedError is the error of AppendIf when an event matches
// its condition after the condition's position.
type AppendConditionFailedError = meowmxtype.AppendConditionFailedError

// IsRetryable reports whether err means that retrying the same operation in
// a new transaction can succeed: ErrTransactionTooOld and ErrSerialization.
// A version conflict is not retryable as such: the caller must reload the
// stream and decide again.
func IsRetryable(err error) bool { return meowmxtype.IsRetryable(err) }

// errStreamRace: an append expecting Any or StreamExists read the stream's
// version, and another writer recorded the next one before it could. It is
// ErrSerialization to callers of AppendTx (retry the transaction); Append
// retries it by itself.
var errStreamRace = fmt.Errorf("%w: another writer appended to the stream at the same time", ErrSerialization)

// errDuplicateRace marks an event ID found taken by the insert rather than by
// the append's probe: recorded by a writer that committed since the append
// read. Append looks again once.
var errDuplicateRace = errors.New("recorded concurrently")

var invalidf = meowmxtype.Invalid
