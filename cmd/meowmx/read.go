package main

import (
	"flag"
	"time"

	"github.com/meowmx/meowmx"
)

// cmdRead runs "meowmx read": it prints a stream, or a category or the whole
// log in global order, optionally following new events.
func cmdRead(e *env) error {
	fs := newFlagSet(e, "read", `Usage: meowmx read CATEGORY ID [--from N] [--limit N] [--backward] [--follow]
       meowmx read CATEGORY-ID [...]
       meowmx read --category C [--after POS] [--limit N] [--follow]
       meowmx read --all [--after POS] [--limit N] [--follow]

Prints events as JSON lines (fields position, category, stream_id, version,
type, data, metadata, event_id, recorded_at), or a table with --format text.
A position printed by read is what --after accepts. --follow keeps printing
new events until interrupted.

Examples:
  meowmx read order 1001
  meowmx read order-1001
  meowmx read order 1001 --backward --limit 1
  meowmx read --category order --after 0/42 --format text
  meowmx read --all --follow`)
	from := fs.Int64("from", -1, "first version (backward: highest version; default: the stream's start, or end when backward)")
	limit := fs.Int("limit", 0, "most events to print (default: all; 1000 per page for --category/--all)")
	backward := fs.Bool("backward", false, "read the stream from its end")
	category := fs.String("category", "", "read this category in global order")
	all := fs.Bool("all", false, "read every event in global order")
	afterText := fs.String("after", "0/0", "print events after this position")
	follow := fs.Bool("follow", false, "keep printing new events until interrupted")
	format := fs.String("format", "json", "json or text")
	args, err := parse(fs, e.args)
	if err != nil {
		return err
	}
	p, err := newPrinter(e.stdout, *format)
	if err != nil {
		return err
	}
	if *limit < 0 {
		return usagef("--limit must not be negative")
	}
	global := *category != "" || *all
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	if !global && len(args) == 1 {
		// A stream's name as read prints it: order-1001.
		stream, err := meowmx.ParseStream(args[0])
		if err != nil {
			return usagef("%v", err)
		}
		args = []string{stream.Category, stream.ID}
	}
	switch {
	case *category != "" && *all:
		return usagef("give --category or --all, not both")
	case global && len(args) > 0:
		return usagef("give CATEGORY ID, or --category/--all, not both")
	case !global && len(args) != 2:
		return usagef("want CATEGORY ID (or CATEGORY-ID), --category C or --all (see meowmx read --help)")
	case !global && *follow && *backward:
		return usagef("--follow reads a stream forward, not with --backward")
	case !global && set["after"]:
		return usagef("--after works with --category and --all; a stream reads from a version (--from)")
	case global && (set["from"] || set["backward"]):
		return usagef("--from and --backward read one stream; --category and --all read after a position (--after)")
	}
	after, err := meowmx.ParsePosition(*afterText)
	if err != nil {
		return usagef("--after: %v", err)
	}
	b, err := openMigrated(e)
	if err != nil {
		return err
	}
	defer b.close()

	// next reads what follows what was printed: at most room events (0 for
	// no limit), and whether more may follow at once.
	var next func(room int) ([]meowmx.RecordedEvent, bool, error)
	if global {
		next = func(room int) ([]meowmx.RecordedEvent, bool, error) {
			page := meowmx.ReadLimitDefault
			if room > 0 {
				page = min(page, room)
			}
			var events []meowmx.RecordedEvent
			var err error
			if *category != "" {
				events, err = b.api.ReadCategory(e.ctx, *category, after, &meowmx.ReadOpts{Limit: page})
			} else {
				events, err = b.api.ReadAll(e.ctx, after, &meowmx.ReadOpts{Limit: page})
			}
			if len(events) > 0 {
				after = events[len(events)-1].Position
			}
			return events, len(events) == page, err
		}
	} else {
		stream := meowmx.NewStream(args[0], args[1])
		opts := &meowmx.ReadStreamOpts{From: *from, Backward: *backward}
		if *from < 0 {
			opts.From = 0
			if *backward {
				opts.From = meowmx.StreamEnd
			}
		}
		next = func(room int) ([]meowmx.RecordedEvent, bool, error) {
			opts.Limit = room
			events, err := b.api.ReadStream(e.ctx, stream, opts)
			if len(events) > 0 {
				opts.From = events[len(events)-1].Version + 1
			}
			return events, false, err
		}
	}
	printed := 0
	for {
		room := 0
		if *limit > 0 {
			room = *limit - printed
		}
		events, more, err := next(room)
		if err != nil {
			if e.ctx.Err() != nil && *follow {
				return nil
			}
			return err
		}
		if err := p.print(events...); err != nil {
			return err
		}
		printed += len(events)
		switch {
		case *limit > 0 && printed >= *limit:
			return nil
		case more:
			continue
		case !*follow:
			return nil
		}
		select {
		case <-e.ctx.Done():
			return nil
		case <-time.After(200 * time.Millisecond):
		}
	}
}
