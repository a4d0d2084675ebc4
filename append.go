package meowmx

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"slices"
	"time"

	"github.com/google/uuid"

	"github.com/meowmx/meowmx/internal/jsoncheck"
	"github.com/meowmx/meowmx/internal/retrypolicy"
	"github.com/meowmx/meowmx/meowmxdriver"
)

// Append records events at the end of stream, atomically, in a transaction of
// its own, and returns them as recorded (with versions, positions and time).
//
// expected is checked against the stream's version in the same transaction:
// on a mismatch nothing is written and the error is a *VersionConflictError
// (errors.Is(err, ErrVersionConflict)).
//
// Appending again the same event IDs to the same stream, at the same place
// the expected version names, returns the events recorded the first time
// without recording anything: a retry after a lost reply is safe. An event
// ID recorded anywhere else is ErrDuplicateEventID.
//
// On PostgreSQL a successful append is one statement: one round trip. An
// append that loses a race for its versions to a concurrent writer reads
// the stream again: with Any or StreamExists it appends after the winner.
func (s *Store[TTx]) Append(ctx context.Context, stream Stream, expected ExpectedVersion, events ...Event) ([]RecordedEvent, error) {
	return s.appendAlone(ctx, stream, expected, nil, events)
}

// AppendIf is Append with a condition, as Dynamic Consistency Boundaries
// define it: if an event matching cond.FailIfEventsMatch exists after
// cond.After, nothing is written and the error is an
// *AppendConditionFailedError (errors.Is(err, ErrAppendConditionFailed))
// naming the first such event. The expected version is checked as well.
//
// The check sees every committed event, including those a ReadQuery would
// still hold back below the visibility horizon, and two conditional appends
// whose conditions cover each other's events never both commit: the one
// that comes second fails. The appended events' positions follow every
// event the condition covered. A condition without items always holds.
//
// The usual loop reads the events of a query, decides, and appends on the
// condition of that same query after the last position read; when the
// condition fails, it reads again and decides again.
//
// On PostgreSQL a condition whose items all have tags serializes only the
// appends that share a tag with it (see ARCHITECTURE.md); an item without
// tags locks the events table for the duration of the append.
func (s *Store[TTx]) AppendIf(ctx context.Context, stream Stream, expected ExpectedVersion, cond AppendCondition, events ...Event) ([]RecordedEvent, error) {
	return s.appendAlone(ctx, stream, expected, &cond, events)
}

// AppendIfTx is AppendIf inside the caller's transaction tx (see AppendTx).
// On PostgreSQL the transaction must be READ COMMITTED (the default): at a
// higher isolation level the check could not see what committed after the
// transaction's first statement, and the append is refused with
// ErrInvalidInput. If the transaction took its id before the condition's
// position (it wrote before it read), the append fails with
// ErrTransactionTooOld: retry the whole transaction.
func (s *Store[TTx]) AppendIfTx(ctx context.Context, tx TTx, stream Stream, expected ExpectedVersion, cond AppendCondition, events ...Event) ([]RecordedEvent, error) {
	return s.appendInTx(ctx, tx, stream, expected, &cond, events)
}

// EventsCategory is the category of the events appended with AppendEvents,
// outside any stream of the application's.
const EventsCategory = "$events"

// AppendEvents records events that belong to no stream of the application,
// as Dynamic Consistency Boundaries see them: identified by their types and
// tags only, under an optional condition (nil for none; see AppendIf).
//
// They are stored in a stream of their own, in category EventsCategory,
// whose ID is the first event's ID (one is generated if it has none): they
// read back by query, by category, in the global log, and by that stream.
// Appending the same events again (same IDs) returns them as recorded the
// first time, as Append does.
func (s *Store[TTx]) AppendEvents(ctx context.Context, cond *AppendCondition, events ...Event) ([]RecordedEvent, error) {
	start := AppendStartData{Stream: Stream{Category: EventsCategory}, Expected: NoStream, Events: len(events), Conditional: cond != nil}
	return s.observeAppend(ctx, start, events, func(ctx context.Context, events []Event, st *appendStats) ([]RecordedEvent, error) {
		stream, events, err := streamOfEvents(events)
		if err != nil {
			return nil, err
		}
		st.stream = stream
		return s.appendRetrying(ctx, stream, NoStream, cond, events, st)
	})
}

// AppendEventsTx is AppendEvents inside the caller's transaction tx (see
// AppendIfTx).
func (s *Store[TTx]) AppendEventsTx(ctx context.Context, tx TTx, cond *AppendCondition, events ...Event) ([]RecordedEvent, error) {
	start := AppendStartData{Stream: Stream{Category: EventsCategory}, Expected: NoStream, Events: len(events), Conditional: cond != nil, InTx: true}
	return s.observeAppend(ctx, start, events, func(ctx context.Context, events []Event, st *appendStats) ([]RecordedEvent, error) {
		stream, events, err := streamOfEvents(events)
		if err != nil {
			return nil, err
		}
		st.stream = stream
		return s.appendInTxOf(ctx, tx, stream, NoStream, cond, events, st)
	})
}

// streamOfEvents returns the stream of events appended without one, and the
// events with the first one's ID set.
func streamOfEvents(events []Event) (Stream, []Event, error) {
	if len(events) == 0 {
		return Stream{}, nil, invalidf("append events: no events")
	}
	if events[0].ID == uuid.Nil {
		id, err := uuid.NewV7()
		if err != nil {
			return Stream{}, nil, fmt.Errorf("meowmx: generate event ID: %w", err)
		}
		events = slices.Clone(events)
		events[0].ID = id
	}
	return Stream{Category: EventsCategory, ID: events[0].ID.String()}, events, nil
}

// appendAlone is Append, with an optional condition.
func (s *Store[TTx]) appendAlone(ctx context.Context, stream Stream, expected ExpectedVersion, cond *AppendCondition, events []Event) ([]RecordedEvent, error) {
	start := AppendStartData{Stream: stream, Expected: expected, Events: len(events), Conditional: cond != nil}
	return s.observeAppend(ctx, start, events, func(ctx context.Context, events []Event, st *appendStats) ([]RecordedEvent, error) {
		return s.appendRetrying(ctx, stream, expected, cond, events, st)
	})
}

// appendRetrying makes an append in transactions of its own until it
// succeeds or fails for a reason a retry does not fix.
func (s *Store[TTx]) appendRetrying(ctx context.Context, stream Stream, expected ExpectedVersion, cond *AppendCondition, events []Event, st *appendStats) ([]RecordedEvent, error) {
	exec := s.driver.Executor()
	params, err := s.appendParams(ctx, exec, stream, expected, cond, events)
	if err != nil {
		return nil, err
	}
	races, duplicateRetried := 0, false
	for attempt := 0; ; {
		recorded, err := s.appendWith(ctx, exec, params, events, false, st)
		if err == nil {
			s.announce(stream.Category)
			return recorded, nil
		}
		var wait time.Duration
		switch {
		case errors.Is(err, errStreamRace) && races < raceRetries:
			// Another writer recorded the versions this append read as
			// free: read the stream again at once (after a moment's jitter),
			// to append after it (Any, StreamExists) or to report the
			// conflict or recognise an idempotent retry with a fresh view.
			races++
			wait = raceBackoff.Wait(races)
		case errors.Is(err, errDuplicateRace) && !duplicateRetried:
			// An event ID was recorded by another writer since this
			// append's snapshot: look again, to tell an idempotent retry
			// from a duplicate.
			duplicateRetried = true
		case IsRetryable(err) && attempt < s.config.AppendRetries:
			attempt++
			wait = appendBackoff.Wait(attempt)
		default:
			return nil, err
		}
		st.retries++
		s.config.Logger.DebugContext(ctx, "meowmx: retrying append",
			slog.String("stream", stream.String()), slog.Duration("wait", wait), slog.String("err", err.Error()))
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("meowmx: append to %s: %w (after: %w)", stream, ctx.Err(), err)
		case <-time.After(wait):
		}
	}
}

// raceRetries bounds how often Append reads a stream again after losing a
// race for its next version with an append expecting Any or StreamExists,
// which cannot conflict.
const raceRetries = 50

// AppendTx is Append inside the caller's transaction tx, which it never
// commits or rolls back: the events commit or roll back together with
// whatever else the transaction writes. A failed append writes nothing, but
// on PostgreSQL an error leaves the transaction aborted: roll it back.
//
// If the transaction wrote anything before appending, it may have taken its
// id before another writer appended to the same stream; AppendTx then
// returns ErrTransactionTooOld (IsRetryable) rather than record the stream's
// events out of order. Retry the whole transaction.
func (s *Store[TTx]) AppendTx(ctx context.Context, tx TTx, stream Stream, expected ExpectedVersion, events ...Event) ([]RecordedEvent, error) {
	return s.appendInTx(ctx, tx, stream, expected, nil, events)
}

// appendInTx is AppendTx, with an optional condition.
func (s *Store[TTx]) appendInTx(ctx context.Context, tx TTx, stream Stream, expected ExpectedVersion, cond *AppendCondition, events []Event) ([]RecordedEvent, error) {
	start := AppendStartData{Stream: stream, Expected: expected, Events: len(events), Conditional: cond != nil, InTx: true}
	return s.observeAppend(ctx, start, events, func(ctx context.Context, events []Event, st *appendStats) ([]RecordedEvent, error) {
		return s.appendInTxOf(ctx, tx, stream, expected, cond, events, st)
	})
}

// appendInTxOf makes an append in the caller's transaction tx.
func (s *Store[TTx]) appendInTxOf(ctx context.Context, tx TTx, stream Stream, expected ExpectedVersion, cond *AppendCondition, events []Event, st *appendStats) ([]RecordedEvent, error) {
	exec := s.driver.UnwrapExecutor(tx)
	params, err := s.appendParams(ctx, exec, stream, expected, cond, events)
	if err != nil {
		return nil, err
	}
	recorded, err := s.appendWith(ctx, exec, params, events, true, st)
	if err == nil {
		s.announce(stream.Category)
	}
	return recorded, err
}

// appendStats is what an append tells its observer besides its result.
type appendStats struct {
	// stream, when set, is the append's stream, known only once the append
	// began (AppendEvents).
	stream  Stream
	retries int
	// existing: the events were recorded before (an idempotent retry).
	existing bool
}

// observeAppend runs an append, told to the store's observer if it has
// one: run makes the append with the context and the events it is given
// (the events with the observer's metadata entries added).
func (s *Store[TTx]) observeAppend(ctx context.Context, start AppendStartData, events []Event,
	run func(ctx context.Context, events []Event, st *appendStats) ([]RecordedEvent, error),
) ([]RecordedEvent, error) {
	var st appendStats
	obs := s.config.Observer
	if obs == nil {
		return run(ctx, events, &st)
	}
	began := time.Now()
	ctx = obs.AppendStart(ctx, &start)
	recorded, err := run(ctx, withMetadata(events, metadataEntries(ctx, obs)), &st)
	end := AppendEndData{AppendStartData: start, Retries: st.retries, Duration: time.Since(began), Err: err}
	if st.stream != (Stream{}) {
		end.Stream = st.stream
	}
	switch {
	case err == nil && st.existing:
		end.Outcome, end.Recorded = AppendRetried, recorded
	case err == nil:
		end.Outcome, end.Recorded = AppendRecorded, recorded
	case errors.Is(err, ErrVersionConflict):
		end.Outcome = AppendConflict
	case errors.Is(err, ErrAppendConditionFailed):
		end.Outcome = AppendConditionFailed
	case errors.Is(err, ErrDuplicateEventID):
		end.Outcome = AppendDuplicate
	case errors.Is(err, ErrTransactionTooOld):
		end.Outcome = AppendTooOld
	case errors.Is(err, ErrInvalidInput):
		end.Outcome = AppendInvalid
	default:
		end.Outcome = AppendFailed
	}
	obs.AppendEnd(ctx, &end)
	return recorded, err
}

var (
	// appendBackoff spaces Append's retries of an aborted transaction: up
	// to 10 ms, 20 ms, 40 ms... capped at 1 s.
	appendBackoff = retrypolicy.Backoff{Base: 10 * time.Millisecond, Ceiling: time.Second}
	// raceBackoff spaces the reads again after a lost race for a version.
	raceBackoff = retrypolicy.Backoff{Base: time.Millisecond, Ceiling: 10 * time.Millisecond}
)

// appendParams validates an append and gives every event its ID.
func (s *Store[TTx]) appendParams(ctx context.Context, exec meowmxdriver.Executor, stream Stream, expected ExpectedVersion, cond *AppendCondition, events []Event) (*meowmxdriver.AppendParams, error) {
	if err := s.checkUsable(ctx); err != nil {
		return nil, err
	}
	if err := validateStream(stream); err != nil {
		return nil, err
	}
	if err := validateExpected(expected); err != nil {
		return nil, err
	}
	if len(events) == 0 {
		return nil, invalidf("append to %s: no events", stream)
	}
	if cond != nil {
		if cond.After.Seq < 0 {
			return nil, invalidf("append to %s: condition after position %s, with a negative sequence", stream, cond.After)
		}
		if err := validQuery(cond.FailIfEventsMatch); err != nil {
			return nil, fmt.Errorf("%w (append to %s, condition)", err, stream)
		}
		if len(cond.FailIfEventsMatch.Items) == 0 {
			cond = nil // matches no event: always holds
		}
	}
	params := &meowmxdriver.AppendParams{
		Schema:     s.config.Schema,
		Category:   stream.Category,
		StreamID:   stream.ID,
		StreamHash: StreamHash(stream),
		Expected:   expected,
		Events:     make([]meowmxdriver.EventInsert, len(events)),
		Condition:  cond,
	}
	seen := make(map[uuid.UUID]int, len(events))
	for i := range events {
		ev := &events[i]
		if err := s.validateEvent(ev); err != nil {
			return nil, fmt.Errorf("%w (append to %s, event %d)", err, stream, i)
		}
		id := ev.ID
		if id == uuid.Nil {
			var err error
			if id, err = uuid.NewV7(); err != nil {
				return nil, fmt.Errorf("meowmx: generate event ID: %w", err)
			}
		} else if j, dup := seen[id]; dup {
			return nil, invalidf("append to %s: events %d and %d have the same ID %s", stream, j, i, id)
		}
		seen[id] = i
		params.Events[i] = meowmxdriver.EventInsert{ID: id, Type: ev.Type, Data: ev.Data, Metadata: ev.Metadata}
		if len(ev.Tags) > 0 {
			params.Events[i].Tags = ev.Tags
		}
	}
	if expected > math.MaxInt64-ExpectedVersion(len(events)) {
		// No stream has such a version, nor room after it: a conflict,
		// the same on every driver.
		actual, err := exec.StreamVersion(ctx, s.config.Schema, stream.Category, stream.ID)
		if err != nil {
			return nil, fmt.Errorf("meowmx: append to %s: %w", stream, err)
		}
		return nil, &VersionConflictError{Stream: stream, Expected: expected, Actual: actual}
	}
	return params, nil
}

func (s *Store[TTx]) validateEvent(ev *Event) error {
	if ev.Type == "" {
		return invalidf("empty event type")
	}
	if err := validText("event type", ev.Type, MaxTypeLength); err != nil {
		return err
	}
	if size := len(ev.Data) + len(ev.Metadata); size > s.config.MaxEventSize {
		return fmt.Errorf("%w: event of type %q is %d bytes, over the limit of %d (Config.MaxEventSize)", ErrEventTooLarge, ev.Type, size, s.config.MaxEventSize)
	}
	if len(ev.Data) == 0 {
		return invalidf("event of type %q has no data", ev.Type)
	}
	if err := jsoncheck.Check(ev.Data); err != nil {
		return invalidf("event of type %q: data is not valid JSON: %v", ev.Type, err)
	}
	if ev.Metadata != nil {
		if err := jsoncheck.Check(ev.Metadata); err != nil {
			return invalidf("event of type %q: metadata is not valid JSON: %v", ev.Type, err)
		}
	}
	return validTags(ev.Tags)
}

// validTags checks an event's tags.
func validTags(tags []string) error {
	if len(tags) > MaxTags {
		return invalidf("%d tags, over the limit of %d", len(tags), MaxTags)
	}
	for i, tag := range tags {
		if tag == "" {
			return invalidf("tag %d is empty", i)
		}
		if err := validText("tag", tag, MaxTagLength); err != nil {
			return err
		}
		if slices.Contains(tags[:i], tag) {
			return invalidf("tag %q appears twice", tag)
		}
	}
	return nil
}

// appendWith runs one append. inTx says the append is in the caller's
// transaction, which a lost race has aborted, so that it cannot be retried
// here.
func (s *Store[TTx]) appendWith(ctx context.Context, exec meowmxdriver.Executor, params *meowmxdriver.AppendParams, events []Event, inTx bool, st *appendStats) ([]RecordedEvent, error) {
	stream := Stream{Category: params.Category, ID: params.StreamID}
	result, err := s.record(ctx, exec, params, inTx)
	if err != nil {
		if errors.Is(err, meowmxdriver.ErrVersionTaken) {
			// Another writer recorded the versions after this append read
			// the stream.
			switch expected := params.Expected; {
			case !inTx, expected == Any, expected == StreamExists:
				return nil, fmt.Errorf("meowmx: append to %s: %w", stream, errStreamRace)
			}
			actual, verr := s.driver.Executor().StreamVersion(context.WithoutCancel(ctx), params.Schema, params.Category, params.StreamID)
			if verr != nil {
				actual = -1
			}
			return nil, &VersionConflictError{Stream: stream, Expected: params.Expected, Actual: actual}
		}
		if errors.Is(err, ErrDuplicateEventID) {
			return nil, fmt.Errorf("meowmx: append to %s: %w: %w", stream, errDuplicateRace, err)
		}
		return nil, fmt.Errorf("meowmx: append to %s: %w", stream, err)
	}
	switch result.Status {
	case meowmxdriver.AppendConflict:
		return nil, &VersionConflictError{Stream: stream, Expected: params.Expected, Actual: result.CurrentVersion}
	case meowmxdriver.AppendTooOld:
		return nil, fmt.Errorf("%w (append to %s)", ErrTransactionTooOld, stream)
	case meowmxdriver.AppendExisting:
		st.existing = true
		return idempotentRetry(stream, params, result.Rows)
	case meowmxdriver.AppendConditionFailed:
		if len(result.Rows) != 1 {
			return nil, fmt.Errorf("meowmx: append to %s: the driver reported a failed condition with %d events", stream, len(result.Rows))
		}
		return nil, &AppendConditionFailedError{Stream: stream, After: params.Condition.After, Event: result.Rows[0]}
	}
	recorded := result.Rows
	for i := range recorded {
		recorded[i].Type, recorded[i].Data, recorded[i].Metadata = params.Events[i].Type, events[i].Data, events[i].Metadata
		recorded[i].Tags = params.Events[i].Tags
	}
	return recorded, nil
}

// record runs one append on exec: with the store's other appends of the
// moment when it can (see group.go), alone otherwise.
func (s *Store[TTx]) record(ctx context.Context, exec meowmxdriver.Executor, params *meowmxdriver.AppendParams, inTx bool) (*meowmxdriver.AppendResult, error) {
	if !inTx && s.groups != nil && len(params.Events) <= groupableEvents &&
		(params.Condition == nil || meowmxdriver.GroupableCondition(params.Condition)) {
		result, err := s.groups.append(ctx, params)
		if result != nil || err != nil {
			return result, err
		}
	}
	return exec.Append(ctx, params)
}

// idempotentRetry decides whether an append whose first event ID is already
// recorded repeats an earlier append: the same IDs, in the same order, in
// the same stream, at the place the expected version names. stored holds
// the events recorded from the first ID on.
func idempotentRetry(stream Stream, params *meowmxdriver.AppendParams, stored []RecordedEvent) ([]RecordedEvent, error) {
	first := stored[0]
	firstID := uuid.UUID(params.Events[0].ID)
	if first.Stream != stream {
		return nil, fmt.Errorf("%w: event %s is recorded in stream %s (append to %s)",
			ErrDuplicateEventID, firstID, first.Stream, stream)
	}
	if len(stored) < len(params.Events) {
		return nil, fmt.Errorf("%w: event %s is recorded at version %d of %s, but the rest of the batch is not after it",
			ErrDuplicateEventID, firstID, first.Version, stream)
	}
	for i, ev := range params.Events {
		if stored[i].ID != uuid.UUID(ev.ID) {
			return nil, fmt.Errorf("%w: event %s is recorded at version %d of %s, but event %d of the batch (%s) is not at version %d",
				ErrDuplicateEventID, firstID, first.Version, stream, i, uuid.UUID(ev.ID), first.Version+int64(i))
		}
	}
	var samePlace bool
	switch params.Expected {
	case Any:
		samePlace = true
	case StreamExists:
		samePlace = first.Version > 0
	default: // NoStream (-1) or an exact version
		samePlace = first.Version == int64(params.Expected)+1
	}
	if !samePlace {
		return nil, fmt.Errorf("%w: the batch is recorded at version %d of %s, not where %s puts it",
			ErrDuplicateEventID, first.Version, stream, params.Expected)
	}
	return stored[:len(params.Events)], nil
}
