package meowmx

import (
	"context"
	"fmt"
	"iter"

	"github.com/meowmx/meowmx/meowmxdriver"
)

// StreamEnd, as ReadStreamOpts.From of a backward read, starts at the
// stream's last event.
const StreamEnd int64 = -1

// ReadStreamOpts are the options of ReadStream. nil reads the whole stream
// forward.
type ReadStreamOpts struct {
	// From is the first version returned (forward), or the highest one
	// (backward; StreamEnd for the last event). Defaults to 0.
	From int64
	// Limit caps the number of events returned. 0 means no limit.
	Limit int
	// Backward reads from From towards version 0.
	Backward bool
	// Primary reads from the primary when Config.Replica is set.
	Primary bool
}

// ReadStream returns the events of stream in version order (descending if
// opts.Backward). A stream without events gives an empty slice.
//
// Stream reads see every committed event at once: a stream's versions
// commit in order, so there is no horizon to wait for. With Config.Replica,
// every event the standby has replayed (opts.Primary for the primary).
func (s *Store[TTx]) ReadStream(ctx context.Context, stream Stream, opts *ReadStreamOpts) ([]RecordedEvent, error) {
	return s.readStream(ctx, s.readExec(opts != nil && opts.Primary), stream, opts)
}

// ReadStreamTx is ReadStream inside the caller's transaction tx.
func (s *Store[TTx]) ReadStreamTx(ctx context.Context, tx TTx, stream Stream, opts *ReadStreamOpts) ([]RecordedEvent, error) {
	return s.readStream(ctx, s.driver.UnwrapExecutor(tx), stream, opts)
}

func (s *Store[TTx]) readStream(ctx context.Context, exec meowmxdriver.Executor, stream Stream, opts *ReadStreamOpts) ([]RecordedEvent, error) {
	start := ReadStartData{Kind: ReadKindStream, Stream: stream}
	if opts != nil {
		start.Limit = opts.Limit
	}
	return observedRead(ctx, s.config.Observer, start, func(ctx context.Context) ([]RecordedEvent, error) {
		return s.readStreamOf(ctx, exec, stream, opts)
	})
}

func (s *Store[TTx]) readStreamOf(ctx context.Context, exec meowmxdriver.Executor, stream Stream, opts *ReadStreamOpts) ([]RecordedEvent, error) {
	if err := s.checkUsable(ctx); err != nil {
		return nil, err
	}
	if err := validateStream(stream); err != nil {
		return nil, err
	}
	if opts == nil {
		opts = &ReadStreamOpts{}
	}
	if opts.Limit < 0 {
		return nil, invalidf("read %s: negative limit %d", stream, opts.Limit)
	}
	if opts.From < 0 && !(opts.Backward && opts.From == StreamEnd) {
		return nil, invalidf("read %s: version %d: want >= 0 (or StreamEnd, backward)", stream, opts.From)
	}
	rows, err := exec.ReadStream(ctx, &meowmxdriver.ReadStreamParams{
		Schema: s.config.Schema, Category: stream.Category, StreamID: stream.ID,
		From: opts.From, Limit: opts.Limit, Backward: opts.Backward,
	})
	if err != nil {
		return nil, fmt.Errorf("meowmx: read %s: %w", stream, err)
	}
	return rows, nil
}

// LastEvent returns the last event of stream, or ErrStreamNotFound.
func (s *Store[TTx]) LastEvent(ctx context.Context, stream Stream) (RecordedEvent, error) {
	return s.lastEvent(ctx, s.driver.Executor(), stream)
}

// LastEventTx is LastEvent inside the caller's transaction tx.
func (s *Store[TTx]) LastEventTx(ctx context.Context, tx TTx, stream Stream) (RecordedEvent, error) {
	return s.lastEvent(ctx, s.driver.UnwrapExecutor(tx), stream)
}

func (s *Store[TTx]) lastEvent(ctx context.Context, exec meowmxdriver.Executor, stream Stream) (RecordedEvent, error) {
	events, err := s.readStream(ctx, exec, stream, &ReadStreamOpts{From: StreamEnd, Limit: 1, Backward: true})
	if err != nil {
		return RecordedEvent{}, err
	}
	if len(events) == 0 {
		return RecordedEvent{}, fmt.Errorf("%w: %s", ErrStreamNotFound, stream)
	}
	return events[0], nil
}

// StreamVersion returns the version of stream's last event, or -1 (NoStream)
// when it has none: the value to pass as the expected version of the next
// append.
func (s *Store[TTx]) StreamVersion(ctx context.Context, stream Stream) (int64, error) {
	return s.streamVersion(ctx, s.driver.Executor(), stream)
}

// StreamVersionTx is StreamVersion inside the caller's transaction tx.
func (s *Store[TTx]) StreamVersionTx(ctx context.Context, tx TTx, stream Stream) (int64, error) {
	return s.streamVersion(ctx, s.driver.UnwrapExecutor(tx), stream)
}

func (s *Store[TTx]) streamVersion(ctx context.Context, exec meowmxdriver.Executor, stream Stream) (int64, error) {
	if err := s.checkUsable(ctx); err != nil {
		return 0, err
	}
	if err := validateStream(stream); err != nil {
		return 0, err
	}
	version, err := exec.StreamVersion(ctx, s.config.Schema, stream.Category, stream.ID)
	if err != nil {
		return 0, fmt.Errorf("meowmx: version of %s: %w", stream, err)
	}
	return version, nil
}

// ReadOpts are the options of ReadAll and ReadCategory. nil takes the
// defaults.
type ReadOpts struct {
	// Limit caps the number of events returned. Defaults to
	// ReadLimitDefault.
	Limit int
	// Types, when not empty, keeps only events of these types.
	Types []string
	// Primary reads from the primary when Config.Replica is set.
	Primary bool
}

// ReadAll returns events of every stream in global order, after position
// after (Start for the beginning). To page, pass the last returned event's
// Position as the next after.
//
// A global read never skips an event: on PostgreSQL it returns only events
// of transactions older than every transaction still running, so an event
// that commits later always comes after what was returned. The cost is that
// a long-running transaction anywhere in the cluster holds global reads
// back until it ends (see Horizon). On a hot standby (Config.Replica) the
// horizon is that of the primary's transactions as the standby has
// replayed them: no event is skipped there either.
func (s *Store[TTx]) ReadAll(ctx context.Context, after Position, opts *ReadOpts) ([]RecordedEvent, error) {
	return s.readGlobal(ctx, s.readExec(opts != nil && opts.Primary), "", after, opts)
}

// ReadAllTx is ReadAll inside the caller's transaction tx. Events the
// transaction itself wrote are not returned before it commits.
func (s *Store[TTx]) ReadAllTx(ctx context.Context, tx TTx, after Position, opts *ReadOpts) ([]RecordedEvent, error) {
	return s.readGlobal(ctx, s.driver.UnwrapExecutor(tx), "", after, opts)
}

// ReadCategory is ReadAll restricted to the streams of one category.
func (s *Store[TTx]) ReadCategory(ctx context.Context, category string, after Position, opts *ReadOpts) ([]RecordedEvent, error) {
	if err := validateCategory(category); err != nil {
		return nil, err
	}
	return s.readGlobal(ctx, s.readExec(opts != nil && opts.Primary), category, after, opts)
}

// ReadCategoryTx is ReadCategory inside the caller's transaction tx.
func (s *Store[TTx]) ReadCategoryTx(ctx context.Context, tx TTx, category string, after Position, opts *ReadOpts) ([]RecordedEvent, error) {
	if err := validateCategory(category); err != nil {
		return nil, err
	}
	return s.readGlobal(ctx, s.driver.UnwrapExecutor(tx), category, after, opts)
}

func (s *Store[TTx]) readGlobal(ctx context.Context, exec meowmxdriver.Executor, category string, after Position, opts *ReadOpts) ([]RecordedEvent, error) {
	start := ReadStartData{Kind: ReadKindAll, Category: category, After: after, Limit: ReadLimitDefault}
	if category != "" {
		start.Kind = ReadKindCategory
	}
	if opts != nil && opts.Limit != 0 {
		start.Limit = opts.Limit
	}
	return observedRead(ctx, s.config.Observer, start, func(ctx context.Context) ([]RecordedEvent, error) {
		return s.readGlobalOf(ctx, exec, category, after, opts)
	})
}

func (s *Store[TTx]) readGlobalOf(ctx context.Context, exec meowmxdriver.Executor, category string, after Position, opts *ReadOpts) ([]RecordedEvent, error) {
	if err := s.checkUsable(ctx); err != nil {
		return nil, err
	}
	if opts == nil {
		opts = &ReadOpts{}
	}
	limit := opts.Limit
	switch {
	case limit < 0:
		return nil, invalidf("read: negative limit %d", limit)
	case limit == 0:
		limit = ReadLimitDefault
	}
	if after.Seq < 0 {
		return nil, invalidf("read: position %s has a negative sequence", after)
	}
	if err := validTypes("ReadOpts.Types", opts.Types); err != nil {
		return nil, err
	}
	rows, err := exec.ReadGlobal(ctx, &meowmxdriver.ReadGlobalParams{
		Schema: s.config.Schema, Category: category, Types: opts.Types,
		AfterTxID: after.TransactionID, AfterSeq: after.Seq, Limit: limit,
	})
	if err != nil {
		what := "all"
		if category != "" {
			what = "category " + category
		}
		return nil, fmt.Errorf("meowmx: read %s: %w", what, err)
	}
	return rows, nil
}

// Events iterates over every event after position after, in global order,
// reading pages of opts.Limit events (ReadLimitDefault by default) as it
// goes, until the end of the log as it is when the last page is read. An
// error ends the iteration, yielded with a zero event. Breaking out of the
// loop stops the reading.
//
//	for event, err := range store.Events(ctx, meowmx.Start, nil) {
//		if err != nil {
//			return err
//		}
//		...
//	}
func (s *Store[TTx]) Events(ctx context.Context, after Position, opts *ReadOpts) iter.Seq2[RecordedEvent, error] {
	return s.events(ctx, "", after, opts)
}

// CategoryEvents is Events restricted to the streams of one category.
func (s *Store[TTx]) CategoryEvents(ctx context.Context, category string, after Position, opts *ReadOpts) iter.Seq2[RecordedEvent, error] {
	return s.events(ctx, category, after, opts)
}

func (s *Store[TTx]) events(ctx context.Context, category string, after Position, opts *ReadOpts) iter.Seq2[RecordedEvent, error] {
	page := ReadOpts{}
	if opts != nil {
		page = *opts
	}
	page.Limit = iterPage(page.Limit)
	return pages(after, page.Limit, func(after Position) ([]RecordedEvent, error) {
		if category == "" {
			return s.ReadAll(ctx, after, &page)
		}
		return s.ReadCategory(ctx, category, after, &page)
	})
}

// iterPage is the page size of an iterator given limit: ReadLimitDefault
// for 0 (a negative one is left for the read to refuse).
func iterPage(limit int) int {
	if limit == 0 {
		return ReadLimitDefault
	}
	return limit
}

// pages iterates over the events that read returns page by page, each
// after the last of the one before, until a page has fewer than limit.
func pages(after Position, limit int, read func(after Position) ([]RecordedEvent, error)) iter.Seq2[RecordedEvent, error] {
	return func(yield func(RecordedEvent, error) bool) {
		for {
			events, err := read(after)
			if err != nil {
				yield(RecordedEvent{}, err)
				return
			}
			for _, event := range events {
				if !yield(event, nil) {
					return
				}
			}
			if len(events) < limit {
				return
			}
			after = events[len(events)-1].Position
		}
	}
}
