package meowmx

import (
	"context"
	"fmt"

	"github.com/meowmx/meowmx/meowmxdriver"
	"github.com/meowmx/meowmx/meowmxtype"
)

// StreamInfo describes a stream by its last event (see meowmxtype.StreamInfo).
type StreamInfo = meowmxtype.StreamInfo

// CategoryInfo describes a category: its counts and its last event (see
// meowmxtype.CategoryInfo).
type CategoryInfo = meowmxtype.CategoryInfo

// StreamsOpts are the options of Streams. nil takes the defaults.
type StreamsOpts struct {
	// Category, when not empty, lists only the streams of this category.
	Category string
	// After is the last stream of the previous page (the zero Stream for
	// the first): streams are ordered by category, then ID, in the
	// database's order of text (byte order on SQLite, the columns' collation
	// on PostgreSQL).
	After Stream
	// Limit caps the number of streams returned. Defaults to
	// ReadLimitDefault.
	Limit int
	// Primary reads from the primary when Config.Replica is set.
	Primary bool
}

// Streams returns a page of the store's streams, ordered by category then
// ID, each with its version and last event. To page, pass the last
// returned stream as the next After; a page shorter than the limit is the
// last. A page costs index look-ups for its streams only, whatever the size
// of the log or of the streams.
func (s *Store[TTx]) Streams(ctx context.Context, opts *StreamsOpts) ([]StreamInfo, error) {
	if err := s.checkUsable(ctx); err != nil {
		return nil, err
	}
	if opts == nil {
		opts = &StreamsOpts{}
	}
	limit, err := pageLimit("streams", opts.Limit)
	if err != nil {
		return nil, err
	}
	if opts.Category != "" {
		if err := validateCategory(opts.Category); err != nil {
			return nil, err
		}
		if opts.After != (Stream{}) && opts.After.Category != opts.Category {
			return nil, invalidf("streams: after %s is not in category %s", opts.After, opts.Category)
		}
	}
	infos, err := s.readExec(opts.Primary).Streams(ctx, &meowmxdriver.StreamsParams{
		Schema: s.config.Schema, Category: opts.Category, After: opts.After, Limit: limit,
	})
	if err != nil {
		return nil, fmt.Errorf("meowmx: list streams: %w", err)
	}
	return infos, nil
}

// CategoriesOpts are the options of Categories. nil takes the defaults.
type CategoriesOpts struct {
	// After is the last category of the previous page ("" for the first).
	After string
	// Limit caps the number of categories returned. Defaults to
	// ReadLimitDefault.
	Limit int
	// Primary reads from the primary when Config.Replica is set.
	Primary bool
}

// Categories returns a page of the store's categories in order, each with
// its number of events and streams and its last event. Finding the
// categories costs an index look-up each. The counts are kept in the
// database up to a position and brought up to date by each listing, which
// counts the events appended since through an index and stores the result
// once that is 1000 events or more (on PostgreSQL, up to the visibility
// horizon, where no later commit can land; never on a replica): the first
// listing of a large category counts it all (about 2.5 s per million events
// on PostgreSQL, 1.3 s on SQLite, once), later ones only what is new (see
// BENCHMARKS.md).
func (s *Store[TTx]) Categories(ctx context.Context, opts *CategoriesOpts) ([]CategoryInfo, error) {
	if err := s.checkUsable(ctx); err != nil {
		return nil, err
	}
	if opts == nil {
		opts = &CategoriesOpts{}
	}
	limit, err := pageLimit("categories", opts.Limit)
	if err != nil {
		return nil, err
	}
	infos, err := s.readExec(opts.Primary).Categories(ctx, &meowmxdriver.CategoriesParams{
		Schema: s.config.Schema, After: opts.After, Limit: limit,
	})
	if err != nil {
		return nil, fmt.Errorf("meowmx: list categories: %w", err)
	}
	return infos, nil
}

// pageLimit returns the limit of a listing: ReadLimitDefault for 0.
func pageLimit(what string, limit int) (int, error) {
	switch {
	case limit < 0:
		return 0, invalidf("%s: negative limit %d", what, limit)
	case limit == 0:
		return ReadLimitDefault, nil
	}
	return limit, nil
}
