package meowmx

import (
	"errors"
	"fmt"

	"github.com/meowmx/meowmx/meowmxdriver"
)

var (
	// ErrVersionConflict: the stream's version was not the expected one.
	// Nothing was written. The error is a *VersionConflictError.
	ErrVersionConflict = errors.New("meowmx: version conflict")

	// ErrDuplicateEventID: an event ID of the batch is already recorded,
	// and not as an idempotent retry of this append (another stream, another
	// place in this stream, or only part of the batch). Nothing was written.
	ErrDuplicateEventID = errors.New("meowmx: event ID already recorded")

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

	// ErrSerialization: the database aborted the transaction (serialization
	// failure, deadlock, lock busy). Retry it. IsRetryable reports true.
	ErrSerialization = errors.New("meowmx: transaction aborted by the database; retry it")
)

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

// IsRetryable reports whether err means that retrying the same operation in
// a new transaction can succeed: ErrTransactionTooOld and ErrSerialization.
// A version conflict is not retryable as such: the caller must reload the
// stream and decide again.
func IsRetryable(err error) bool {
	return errors.Is(err, ErrTransactionTooOld) || errors.Is(err, ErrSerialization)
}

// errStreamRace: an append expecting Any or StreamExists read the stream's
// version, and another writer recorded the next one before it could. It is
// ErrSerialization to callers of AppendTx (retry the transaction); Append
// retries it by itself.
var errStreamRace = fmt.Errorf("%w: another writer appended to the stream at the same time", ErrSerialization)

// errDuplicateRace marks an event ID found taken by the insert rather than by
// the append's probe: recorded by a writer that committed since the append
// read. Append looks again once.
var errDuplicateRace = errors.New("recorded concurrently")

// mapDriverError turns the driver package's sentinels into meowmx's errors.
func mapDriverError(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, meowmxdriver.ErrClusterMoved):
		return fmt.Errorf("%w: %w", ErrClusterMoved, err)
	case errors.Is(err, meowmxdriver.ErrRetryable):
		return fmt.Errorf("%w: %w", ErrSerialization, err)
	case errors.Is(err, meowmxdriver.ErrSchemaMissing):
		return fmt.Errorf("%w: %w", ErrSchemaMissing, err)
	case errors.Is(err, meowmxdriver.ErrDuplicateEventID):
		return fmt.Errorf("%w: %w", ErrDuplicateEventID, err)
	case errors.Is(err, meowmxdriver.ErrInvalidInput):
		return fmt.Errorf("%w: %w", ErrInvalidInput, err)
	}
	return err
}

func invalidf(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalidInput, fmt.Sprintf(format, args...))
}
