package meowmx

import (
	"context"
	"fmt"
	"iter"

	"github.com/meowmx/meowmx/meowmxdriver"
	"github.com/meowmx/meowmx/meowmxtype"
)

// Query selects events across streams by their types and tags, as Dynamic
// Consistency Boundaries define it: an event matches when it matches any
// of the query's items, and a query without items matches none (see
// meowmxtype.Query).
type Query = meowmxtype.Query

// QueryItem matches an event whose type is one of Types (any type when
// empty) and that carries all of Tags (any tags when empty).
type QueryItem = meowmxtype.QueryItem

// AppendCondition makes an append conditional (see AppendIf): it fails if
// an event matching FailIfEventsMatch exists after position After.
type AppendCondition = meowmxtype.AppendCondition

// ReadQueryOpts are the options of ReadQuery. nil takes the defaults.
type ReadQueryOpts struct {
	// Limit caps the number of events returned. Defaults to
	// ReadLimitDefault.
	Limit int
	// Primary reads from the primary when Config.Replica is set.
	Primary bool
	// Backward reads the events before the position instead, the newest
	// first: from End, the last events matching the query. The next page
	// is before the last returned event's Position.
	Backward bool
}

// ReadQuery returns the events matching query in global order, after
// position after (Start for the beginning). To page, pass the last returned
// event's Position as the next after. Like ReadAll, it returns only events
// below the visibility horizon, so that an event committed later always
// comes after what was returned.
//
// An item with tags reads the index of its first tag from the position on,
// and checks its other tags and its types on each event found: put the
// rarest tag first. An item without tags reads the log from the position
// on, checking types.
func (s *Store[TTx]) ReadQuery(ctx context.Context, query Query, after Position, opts *ReadQueryOpts) ([]RecordedEvent, error) {
	return s.readQuery(ctx, s.readExec(opts != nil && opts.Primary), query, after, opts)
}

// ReadQueryTx is ReadQuery inside the caller's transaction tx.
func (s *Store[TTx]) ReadQueryTx(ctx context.Context, tx TTx, query Query, after Position, opts *ReadQueryOpts) ([]RecordedEvent, error) {
	return s.readQuery(ctx, s.driver.UnwrapExecutor(tx), query, after, opts)
}

// QueryEvents iterates over the events matching query after position
// after, in global order, reading pages of opts.Limit events as it goes (see
// Events); with opts.Backward, over those before it, the newest first.
func (s *Store[TTx]) QueryEvents(ctx context.Context, query Query, after Position, opts *ReadQueryOpts) iter.Seq2[RecordedEvent, error] {
	page := ReadQueryOpts{}
	if opts != nil {
		page = *opts
	}
	page.Limit = iterPage(page.Limit)
	return pages(after, page.Limit, func(after Position) ([]RecordedEvent, error) {
		return s.ReadQuery(ctx, query, after, &page)
	})
}

func (s *Store[TTx]) readQuery(ctx context.Context, exec meowmxdriver.Executor, query Query, after Position, opts *ReadQueryOpts) ([]RecordedEvent, error) {
	start := ReadStartData{Kind: ReadKindQuery, After: after, Limit: ReadLimitDefault}
	if opts != nil && opts.Limit != 0 {
		start.Limit = opts.Limit
	}
	return observedRead(ctx, s.config.Observer, start, func(ctx context.Context) ([]RecordedEvent, error) {
		return s.readQueryOf(ctx, exec, query, after, opts)
	})
}

func (s *Store[TTx]) readQueryOf(ctx context.Context, exec meowmxdriver.Executor, query Query, after Position, opts *ReadQueryOpts) ([]RecordedEvent, error) {
	if err := s.checkUsable(ctx); err != nil {
		return nil, err
	}
	if opts == nil {
		opts = &ReadQueryOpts{}
	}
	limit, err := pageLimit("read query", opts.Limit)
	if err != nil {
		return nil, err
	}
	if after.Seq < 0 {
		return nil, invalidf("read query: position %s has a negative sequence", after)
	}
	if err := validQuery(query); err != nil {
		return nil, err
	}
	if len(query.Items) == 0 {
		return nil, nil
	}
	events, err := exec.ReadQuery(ctx, &meowmxdriver.ReadQueryParams{
		Schema: s.config.Schema, Query: query, AfterTxID: after.TransactionID, AfterSeq: after.Seq, Limit: limit,
		Backward: opts.Backward,
	})
	if err != nil {
		return nil, fmt.Errorf("meowmx: read query: %w", err)
	}
	return events, nil
}

// MaxQueryItems is the most items a query has, and MaxQueryTypes the most
// types an item lists.
const (
	MaxQueryItems = 64
	MaxQueryTypes = 64
)

// validQuery checks a query's items: their types as event types, their
// tags as tags.
func validQuery(query Query) error {
	if len(query.Items) > MaxQueryItems {
		return invalidf("query of %d items, over the limit of %d", len(query.Items), MaxQueryItems)
	}
	for i, item := range query.Items {
		if len(item.Types) > MaxQueryTypes {
			return invalidf("query item %d lists %d types, over the limit of %d", i, len(item.Types), MaxQueryTypes)
		}
		if err := validTypes(fmt.Sprintf("query item %d", i), item.Types); err != nil {
			return err
		}
		if err := validTags(item.Tags); err != nil {
			return fmt.Errorf("%w (query item %d)", err, i)
		}
	}
	return nil
}
