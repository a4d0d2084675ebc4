package meowmx

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/meowmx/meowmx/internal/retrypolicy"
	"github.com/meowmx/meowmx/meowmxdriver"
)

const (
	// ExecuteRetriesDefault is the default AggregateConfig.MaxRetries.
	ExecuteRetriesDefault = 5
	// ExecuteBackoffDefault is the default AggregateConfig.RetryBackoff.
	ExecuteBackoffDefault = 10 * time.Millisecond
)

// RetriesExhaustedError says how many times Execute tried, and the last
// conflict.
type RetriesExhaustedError struct {
	Stream   Stream
	Attempts int
	Last     error
}

func (e *RetriesExhaustedError) Error() string {
	return fmt.Sprintf("meowmx: %s: gave up after %d attempts: %v", e.Stream, e.Attempts, e.Last)
}

// Is reports whether target is ErrRetriesExhausted.
func (e *RetriesExhaustedError) Is(target error) bool { return target == ErrRetriesExhausted }

// Unwrap returns the last conflict.
func (e *RetriesExhaustedError) Unwrap() error { return e.Last }

// AggregateConfig describes an aggregate: a state built from a category's
// streams by an evolve function.
type AggregateConfig[S any] struct {
	// Category of the aggregate's streams. Required.
	Category string
	// Registry decodes the recorded events and encodes new ones. Required.
	Registry *Registry
	// Initial returns the state of a stream without events. Defaults to
	// S's zero value.
	Initial func() S
	// Evolve applies one decoded event to the state. Required. It must not
	// modify state in place if S holds maps or slices shared with a
	// snapshot (it is given a fresh copy per load, so this only matters
	// inside one load).
	Evolve func(state S, event any) S
	// SkipUnknown skips recorded events of types the registry does not
	// know, instead of failing the load.
	SkipUnknown bool
	// MaxRetries is how many times Execute retries after a version conflict.
	// Defaults to ExecuteRetriesDefault.
	MaxRetries int
	// RetryBackoff is the first wait before a retry, doubling with full
	// jitter up to 100 times it. Defaults to ExecuteBackoffDefault.
	RetryBackoff time.Duration
	// SnapshotEvery, when positive, stores a snapshot of the state each time
	// Execute takes a stream past a multiple of this many events. Load then
	// starts from the latest snapshot and replays only the events after it.
	SnapshotEvery int
	// SnapshotVersion is the version of the state's shape: snapshots of
	// another version are ignored. Change it when S changes.
	SnapshotVersion int
	// Logger receives snapshot failures (which never fail an Execute).
	// Defaults to the store's.
	Logger *slog.Logger
}

// Aggregate loads states from streams and runs commands against them with
// optimistic concurrency. It is optional: Append and ReadStream remain the
// way to do anything it does not.
type Aggregate[TTx, S any] struct {
	store *Store[TTx]
	cfg   AggregateConfig[S]
}

// NewAggregate returns the aggregate config describes, on store.
func NewAggregate[TTx, S any](store *Store[TTx], config AggregateConfig[S]) (*Aggregate[TTx, S], error) {
	cfg := config
	if err := validateCategory(cfg.Category); err != nil {
		return nil, fmt.Errorf("%w (AggregateConfig.Category)", err)
	}
	switch {
	case cfg.Registry == nil:
		return nil, invalidf("AggregateConfig.Registry is required")
	case cfg.Evolve == nil:
		return nil, invalidf("AggregateConfig.Evolve is required")
	case cfg.MaxRetries < 0 || cfg.RetryBackoff < 0 || cfg.SnapshotEvery < 0:
		return nil, invalidf("AggregateConfig: MaxRetries, RetryBackoff and SnapshotEvery must not be negative")
	}
	if cfg.Initial == nil {
		cfg.Initial = func() S { var zero S; return zero }
	}
	if cfg.MaxRetries == 0 {
		cfg.MaxRetries = ExecuteRetriesDefault
	}
	if cfg.RetryBackoff == 0 {
		cfg.RetryBackoff = ExecuteBackoffDefault
	}
	if cfg.Logger == nil {
		cfg.Logger = store.config.Logger
	}
	return &Aggregate[TTx, S]{store: store, cfg: cfg}, nil
}

func (a *Aggregate[TTx, S]) stream(id string) Stream { return Stream{Category: a.cfg.Category, ID: id} }

// Load returns the state of the stream id and its version (-1 when it has
// no events), starting from the latest snapshot if there is one.
func (a *Aggregate[TTx, S]) Load(ctx context.Context, id string) (S, int64, error) {
	return a.load(ctx, a.store.driver.Executor(), id)
}

// LoadTx is Load inside the caller's transaction tx.
func (a *Aggregate[TTx, S]) LoadTx(ctx context.Context, tx TTx, id string) (S, int64, error) {
	return a.load(ctx, a.store.driver.UnwrapExecutor(tx), id)
}

func (a *Aggregate[TTx, S]) load(ctx context.Context, exec meowmxdriver.Executor, id string) (S, int64, error) {
	stream := a.stream(id)
	state, version := a.cfg.Initial(), int64(-1)
	if err := a.store.checkUsable(ctx); err != nil {
		return state, 0, err
	}
	if err := validateStream(stream); err != nil {
		return state, 0, err
	}
	if a.cfg.SnapshotEvery > 0 {
		snap, err := exec.LoadSnapshot(ctx, a.store.config.Schema, stream.Category, stream.ID, a.cfg.SnapshotVersion)
		if err != nil {
			return state, 0, fmt.Errorf("meowmx: load snapshot of %s: %w", stream, err)
		}
		if snap != nil {
			restored := a.cfg.Initial()
			if err := a.cfg.Registry.codec.Unmarshal(snap.State, &restored); err != nil {
				a.cfg.Logger.WarnContext(ctx, "meowmx: ignoring a snapshot that does not decode",
					slog.String("stream", stream.String()), slog.Int64("version", snap.Version), slog.String("err", err.Error()))
			} else {
				state, version = restored, snap.Version
			}
		}
	}
	events, err := a.store.readStream(ctx, exec, stream, &ReadStreamOpts{From: version + 1})
	if err != nil {
		return state, 0, err
	}
	for _, ev := range events {
		value, err := a.cfg.Registry.Decode(ev)
		if err != nil {
			if a.cfg.SkipUnknown && errors.Is(err, ErrUnknownEventType) {
				version = ev.Version
				continue
			}
			return state, 0, err
		}
		state = a.cfg.Evolve(state, value)
		version = ev.Version
	}
	return state, version, nil
}

// Decide returns the events a command produces from the current state and
// version, or an error to refuse the command.
type Decide[S any] func(state S, version int64) ([]any, error)

// Execute loads the stream id, calls decide, appends the events it returns
// with the loaded version as the expected one, and returns the new state and
// the recorded events. On a version conflict it loads again and calls decide
// again, up to MaxRetries times with jittered backoff, then returns a
// *RetriesExhaustedError. decide's own error is returned untouched; no
// events (nil) append nothing.
func (a *Aggregate[TTx, S]) Execute(ctx context.Context, id string, decide Decide[S]) (S, []RecordedEvent, error) {
	stream := a.stream(id)
	var lastConflict error
	for attempt := 0; ; attempt++ {
		state, version, err := a.Load(ctx, id)
		if err != nil {
			return state, nil, err
		}
		newState, recorded, err := a.apply(ctx, a.store.driver.Executor(), stream, state, version, decide)
		if err == nil {
			a.snapshot(ctx, stream, version, newState, recorded)
			return newState, recorded, nil
		}
		if !errors.Is(err, ErrVersionConflict) {
			return state, nil, err
		}
		lastConflict = err
		if attempt >= a.cfg.MaxRetries {
			return state, nil, &RetriesExhaustedError{Stream: stream, Attempts: attempt + 1, Last: lastConflict}
		}
		select {
		case <-ctx.Done():
			return state, nil, fmt.Errorf("meowmx: %s: %w (after: %w)", stream, ctx.Err(), lastConflict)
		case <-time.After(retrypolicy.Backoff{Base: a.cfg.RetryBackoff, Ceiling: a.cfg.RetryBackoff * 100}.Wait(attempt + 1)):
		}
	}
}

// ExecuteTx is Execute inside the caller's transaction tx. It cannot retry a
// conflict (on PostgreSQL the transaction is aborted by then): the
// *VersionConflictError is returned for the caller to retry the whole
// transaction. It takes no snapshot, since it cannot know whether tx commits.
func (a *Aggregate[TTx, S]) ExecuteTx(ctx context.Context, tx TTx, id string, decide Decide[S]) (S, []RecordedEvent, error) {
	exec := a.store.driver.UnwrapExecutor(tx)
	state, version, err := a.load(ctx, exec, id)
	if err != nil {
		return state, nil, err
	}
	newState, recorded, err := a.apply(ctx, exec, a.stream(id), state, version, decide)
	if err != nil {
		return state, nil, err
	}
	return newState, recorded, nil
}

func (a *Aggregate[TTx, S]) apply(ctx context.Context, exec meowmxdriver.Executor, stream Stream, state S, version int64, decide Decide[S]) (S, []RecordedEvent, error) {
	values, err := decide(state, version)
	if err != nil {
		return state, nil, err
	}
	if len(values) == 0 {
		return state, nil, nil
	}
	events, err := a.cfg.Registry.EncodeAll(values...)
	if err != nil {
		return state, nil, err
	}
	// A lost race is a version conflict here: Execute loads the stream
	// again and decides again.
	start := AppendStartData{Stream: stream, Expected: ExpectedVersion(version), Events: len(events), InTx: true}
	recorded, err := a.store.observeAppend(ctx, start, events, func(ctx context.Context, events []Event, st *appendStats) ([]RecordedEvent, error) {
		params, err := a.store.appendParams(ctx, exec, stream, ExpectedVersion(version), nil, events)
		if err != nil {
			return nil, err
		}
		return a.store.appendWith(ctx, exec, params, events, true, st)
	})
	if err != nil {
		return state, nil, err
	}
	a.store.announce(stream.Category)
	for _, v := range values {
		state = a.cfg.Evolve(state, v)
	}
	return state, recorded, nil
}

// snapshot stores the state if the append crossed a multiple of
// SnapshotEvery. A failure is logged, never returned.
func (a *Aggregate[TTx, S]) snapshot(ctx context.Context, stream Stream, before int64, state S, recorded []RecordedEvent) {
	every := int64(a.cfg.SnapshotEvery)
	if every <= 0 || len(recorded) == 0 {
		return
	}
	after := recorded[len(recorded)-1].Version
	if (after+1)/every == (before+1)/every {
		return
	}
	data, err := a.cfg.Registry.codec.Marshal(state)
	if err == nil {
		_, err = a.store.driver.Executor().SaveSnapshot(context.WithoutCancel(ctx), &meowmxdriver.SnapshotRow{
			Schema: a.store.config.Schema, Category: stream.Category, StreamID: stream.ID,
			Version: after, SchemaVersion: a.cfg.SnapshotVersion, State: data,
		})
	}
	if err != nil {
		a.cfg.Logger.WarnContext(ctx, "meowmx: snapshot not saved", slog.String("stream", stream.String()),
			slog.Int64("version", after), slog.String("err", err.Error()))
	}
}

// DeleteSnapshots deletes the snapshots of the stream id, of every snapshot
// version, and returns how many there were.
func (a *Aggregate[TTx, S]) DeleteSnapshots(ctx context.Context, id string) (int, error) {
	stream := a.stream(id)
	if err := a.store.checkUsable(ctx); err != nil {
		return 0, err
	}
	if err := validateStream(stream); err != nil {
		return 0, err
	}
	n, err := a.store.driver.Executor().DeleteSnapshots(ctx, a.store.config.Schema, stream.Category, stream.ID)
	if err != nil {
		return 0, fmt.Errorf("meowmx: delete snapshots of %s: %w", stream, err)
	}
	return n, nil
}
