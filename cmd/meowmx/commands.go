package main

import (
	"bufio"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"strconv"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/google/uuid"

	"github.com/meowmx/meowmx"
)

func cmdMigrate(e *env) error {
	fs := newFlagSet(e, "migrate", `Usage: meowmx migrate

Creates or upgrades the schema. Running it again is a no-op.

Examples:
  meowmx migrate
  meowmx migrate --db postgres://app@localhost/app --schema shop`)
	if _, err := parse(fs, e.args); err != nil {
		return err
	}
	b, err := open(e)
	if err != nil {
		return err
	}
	defer b.close()
	res, err := b.api.MigrateWithResult(e.ctx)
	if err != nil {
		return err
	}
	if c := res.Cluster; c != nil {
		fmt.Fprintf(e.stdout, "schema %s was last used on PostgreSQL cluster %d and is now on cluster %d\n",
			b.api.Schema(), c.PreviousSystemIdentifier, c.SystemIdentifier)
		if c.Rebased {
			fmt.Fprintf(e.stdout, "its transaction counter was behind the stored positions (up to %d/...): new positions now follow them (offset %d, was %d)\n",
				c.LastPosition, c.Offset, c.PreviousOffset)
		} else {
			fmt.Fprintf(e.stdout, "its transaction counter is ahead of the stored positions: nothing to change\n")
		}
	}
	if len(res.Applied) == 0 {
		fmt.Fprintf(e.stdout, "schema %s is up to date in %s\n", b.api.Schema(), b.label)
		return nil
	}
	applied := make([]string, len(res.Applied))
	for i, v := range res.Applied {
		applied[i] = strconv.Itoa(v)
	}
	fmt.Fprintf(e.stdout, "schema %s in %s: applied migration %s\n", b.api.Schema(), b.label, strings.Join(applied, ", "))
	return nil
}

// eventLine is the JSON form of a recorded event, one per line.
type eventLine struct {
	Position   string          `json:"position"`
	Category   string          `json:"category"`
	StreamID   string          `json:"stream_id"`
	Version    int64           `json:"version"`
	Type       string          `json:"type"`
	Data       json.RawMessage `json:"data"`
	Metadata   json.RawMessage `json:"metadata"`
	EventID    string          `json:"event_id"`
	RecordedAt string          `json:"recorded_at"`
}

func toLine(ev meowmx.RecordedEvent) eventLine {
	metadata := ev.Metadata
	if metadata == nil {
		metadata = json.RawMessage("null")
	}
	return eventLine{
		Position: ev.Position.String(), Category: ev.Stream.Category, StreamID: ev.Stream.ID,
		Version: ev.Version, Type: ev.Type, Data: ev.Data, Metadata: metadata,
		EventID: ev.ID.String(), RecordedAt: ev.RecordedAt.UTC().Format(time.RFC3339Nano),
	}
}

// printer writes events as JSON lines or as a table, safely from several
// goroutines.
type printer struct {
	mu     sync.Mutex
	w      io.Writer
	text   bool
	header bool
	tw     *tabwriter.Writer
}

func newPrinter(w io.Writer, format string) (*printer, error) {
	switch format {
	case "json":
		return &printer{w: w}, nil
	case "text":
		return &printer{w: w, text: true, tw: tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)}, nil
	}
	return nil, usagef("--format %q: want json or text", format)
}

func (p *printer) print(events ...meowmx.RecordedEvent) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, ev := range events {
		if !p.text {
			line, err := json.Marshal(toLine(ev))
			if err != nil {
				return err
			}
			if _, err := fmt.Fprintf(p.w, "%s\n", line); err != nil {
				return err
			}
			continue
		}
		if !p.header {
			fmt.Fprintln(p.tw, "POSITION\tSTREAM\tVERSION\tTYPE\tRECORDED AT\tDATA")
			p.header = true
		}
		fmt.Fprintf(p.tw, "%s\t%s\t%d\t%s\t%s\t%s\n", ev.Position, ev.Stream, ev.Version, ev.Type,
			ev.RecordedAt.UTC().Format("2006-01-02 15:04:05.000"), ev.Data)
	}
	if p.text {
		return p.tw.Flush()
	}
	return nil
}

func parseExpected(s string) (meowmx.ExpectedVersion, error) {
	switch s {
	case "any":
		return meowmx.Any, nil
	case "none", "no-stream":
		return meowmx.NoStream, nil
	case "exists":
		return meowmx.StreamExists, nil
	}
	v, err := strconv.ParseInt(s, 10, 64)
	if err != nil || v < 0 {
		return 0, usagef("--expect %q: want any, none, exists or a version number >= 0", s)
	}
	return meowmx.ExpectedVersion(v), nil
}

func cmdAppend(e *env) error {
	fs := newFlagSet(e, "append", `Usage: meowmx append CATEGORY ID --type T --data JSON [--metadata JSON] [--expect any|none|exists|N] [--event-id UUID]
       meowmx append CATEGORY ID --data - < events.jsonl

Appends events to the stream CATEGORY-ID and prints each recorded event as a
JSON line. With --data -, reads JSON lines {"type":...,"data":...,"metadata":...,"id":...}
from stdin and appends them as one atomic batch ("type" is required).
Exit status 3 on a version conflict, 2 on bad input.

Examples:
  meowmx append order 1001 --type OrderPlaced --data '{"total":42}' --expect none
  meowmx append order 1001 --type OrderPaid --data '{"amount":42}' --expect 0
  printf '%s\n' '{"type":"A","data":{}}' '{"type":"B","data":[1]}' | meowmx append job 7 --data -`)
	typ := fs.String("type", "", "event type (required unless --data -)")
	data := fs.String("data", "", "event data as JSON, or - to read JSON lines from stdin")
	metadata := fs.String("metadata", "", "event metadata as JSON")
	expect := fs.String("expect", "any", "expected version: any, none, exists or N")
	eventID := fs.String("event-id", "", "event UUID (generated when absent)")
	args, err := parse(fs, e.args)
	if err != nil {
		return err
	}
	if len(args) != 2 {
		return usagef("want CATEGORY and ID, got %d arguments (see meowmx append --help)", len(args))
	}
	stream := meowmx.NewStream(args[0], args[1])
	expected, err := parseExpected(*expect)
	if err != nil {
		return err
	}
	var events []meowmx.Event
	if *data == "-" {
		if *typ != "" || *metadata != "" || *eventID != "" {
			return usagef("with --data -, give type, metadata and id in each input line")
		}
		events, err = readEventLines(e.stdin)
		if err != nil {
			return err
		}
	} else {
		if *typ == "" || *data == "" {
			return usagef("--type and --data are required (or --data - to read JSON lines from stdin)")
		}
		ev := meowmx.Event{Type: *typ, Data: json.RawMessage(*data)}
		if !json.Valid(ev.Data) {
			return usagef("--data is not valid JSON: %s", *data)
		}
		if *metadata != "" {
			ev.Metadata = json.RawMessage(*metadata)
			if !json.Valid(ev.Metadata) {
				return usagef("--metadata is not valid JSON: %s", *metadata)
			}
		}
		if *eventID != "" {
			if ev.ID, err = uuid.Parse(*eventID); err != nil {
				return usagef("--event-id %q is not a UUID", *eventID)
			}
		}
		events = []meowmx.Event{ev}
	}
	b, err := openMigrated(e)
	if err != nil {
		return err
	}
	defer b.close()
	recorded, err := b.api.Append(e.ctx, stream, expected, events...)
	if err != nil {
		return err
	}
	p, _ := newPrinter(e.stdout, "json")
	return p.print(recorded...)
}

// readEventLines reads one event per JSON line.
func readEventLines(r io.Reader) ([]meowmx.Event, error) {
	var events []meowmx.Event
	scanner := bufio.NewScanner(r)
	scanner.Buffer(make([]byte, 64*1024), meowmx.MaxEventSizeDefault*4)
	n := 0
	for scanner.Scan() {
		n++
		line := strings.TrimSpace(scanner.Text())
		if line == "" {
			continue
		}
		var in struct {
			Type     string          `json:"type"`
			Data     json.RawMessage `json:"data"`
			Metadata json.RawMessage `json:"metadata"`
			ID       string          `json:"id"`
		}
		dec := json.NewDecoder(strings.NewReader(line))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&in); err != nil {
			return nil, usagef("stdin line %d: not a JSON event object: %v", n, err)
		}
		if in.Type == "" {
			return nil, usagef("stdin line %d: \"type\" is required", n)
		}
		ev := meowmx.Event{Type: in.Type, Data: in.Data, Metadata: in.Metadata}
		if len(ev.Data) == 0 {
			ev.Data = json.RawMessage("null")
		}
		if string(ev.Metadata) == "null" {
			ev.Metadata = nil
		}
		if in.ID != "" {
			id, err := uuid.Parse(in.ID)
			if err != nil {
				return nil, usagef("stdin line %d: id %q is not a UUID", n, in.ID)
			}
			ev.ID = id
		}
		events = append(events, ev)
	}
	if err := scanner.Err(); err != nil {
		return nil, fmt.Errorf("reading stdin: %w", err)
	}
	if len(events) == 0 {
		return nil, usagef("no events on stdin")
	}
	return events, nil
}

func cmdRead(e *env) error {
	fs := newFlagSet(e, "read", `Usage: meowmx read CATEGORY ID [--from N] [--limit N] [--backward]
       meowmx read --category C [--after POS] [--limit N] [--follow]
       meowmx read --all [--after POS] [--limit N] [--follow]

Prints events as JSON lines (fields position, category, stream_id, version,
type, data, metadata, event_id, recorded_at), or a table with --format text.
A position printed by read is what --after accepts. --follow keeps printing
new events until interrupted.

Examples:
  meowmx read order 1001
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
	switch {
	case *category != "" && *all:
		return usagef("give --category or --all, not both")
	case global && len(args) > 0:
		return usagef("give CATEGORY ID, or --category/--all, not both")
	case !global && len(args) != 2:
		return usagef("want CATEGORY ID, --category C or --all (see meowmx read --help)")
	case !global && *follow:
		return usagef("--follow works with --category and --all")
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

	if !global {
		opts := &meowmx.ReadStreamOpts{From: *from, Limit: *limit, Backward: *backward}
		if *from < 0 {
			opts.From = 0
			if *backward {
				opts.From = meowmx.StreamEnd
			}
		}
		events, err := b.api.ReadStream(e.ctx, meowmx.NewStream(args[0], args[1]), opts)
		if err != nil {
			return err
		}
		return p.print(events...)
	}
	printed := 0
	for {
		page := meowmx.ReadLimitDefault
		if *limit > 0 {
			page = min(page, *limit-printed)
		}
		var events []meowmx.RecordedEvent
		if *category != "" {
			events, err = b.api.ReadCategory(e.ctx, *category, after, &meowmx.ReadOpts{Limit: page})
		} else {
			events, err = b.api.ReadAll(e.ctx, after, &meowmx.ReadOpts{Limit: page})
		}
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
		if len(events) > 0 {
			after = events[len(events)-1].Position
		}
		if *limit > 0 && printed >= *limit {
			return nil
		}
		if len(events) == page {
			continue
		}
		if !*follow {
			return nil
		}
		select {
		case <-e.ctx.Done():
			return nil
		case <-time.After(200 * time.Millisecond):
		}
	}
}

func cmdWork(e *env) error {
	fs := newFlagSet(e, "work", `Usage: meowmx work --subscription NAME (--category C | --all) [--partitions N] [--batch N] [--until-idle DURATION]

Runs a worker of the subscription NAME (created at the start of the log if
new) that prints every event it handles as a JSON line and commits its
checkpoint. Run several at once to share the work. SIGINT or SIGTERM stops
it gracefully; --until-idle exits with status 0 once the worker has caught
up with the log as it was at the start and nothing new has arrived for that
long.

Examples:
  meowmx work --subscription audit --all
  meowmx work --subscription orders --category order --partitions 4 --until-idle 2s`)
	name := fs.String("subscription", "", "subscription name (required)")
	category := fs.String("category", "", "the category to read")
	all := fs.Bool("all", false, "read every category")
	partitions := fs.Int("partitions", 1, "number of partitions of a new subscription")
	batch := fs.Int("batch", meowmx.BatchSizeDefault, "most events per batch")
	idle := fs.Duration("until-idle", 0, "exit once caught up and nothing has arrived for this long (0: run until interrupted)")
	args, err := parse(fs, e.args)
	if err != nil {
		return err
	}
	switch {
	case len(args) > 0:
		return usagef("unexpected argument %q", args[0])
	case *name == "":
		return usagef("--subscription is required")
	case (*category == "") == !*all:
		return usagef("give --category C or --all")
	case *idle < 0:
		return usagef("--until-idle must not be negative")
	}
	var categories []string
	if *category != "" {
		categories = []string{*category}
	}
	b, err := openMigrated(e)
	if err != nil {
		return err
	}
	defer b.close()
	p, _ := newPrinter(e.stdout, "json")
	w := workSpec{name: *name, categories: categories, partitions: *partitions, batch: *batch, idle: *idle, printer: p}
	if b.pg != nil {
		return runWork(e.ctx, b.pg, w)
	}
	return runWork(e.ctx, b.lite, w)
}

type workSpec struct {
	name       string
	categories []string
	partitions int
	batch      int
	idle       time.Duration
	printer    *printer
}

func runWork[TTx any](ctx context.Context, store *meowmx.Store[TTx], w workSpec) error {
	var (
		mu   sync.Mutex
		last = time.Now()
	)
	sub, err := store.Subscribe(meowmx.SubscriptionConfig[TTx]{
		Name: w.name, Categories: w.categories, Partitions: w.partitions, BatchSize: w.batch,
		PollInterval: 200 * time.Millisecond,
		Handler: func(ctx context.Context, tx TTx, events []meowmx.RecordedEvent) error {
			mu.Lock()
			last = time.Now()
			mu.Unlock()
			return w.printer.print(events...)
		},
	})
	if err != nil {
		return err
	}
	if err := sub.Start(context.WithoutCancel(ctx)); err != nil {
		return err
	}
	stop := func() error {
		stopCtx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := sub.Stop(stopCtx); err != nil {
			return err
		}
		return sub.Err()
	}
	// --until-idle counts from the moment the worker has caught up with
	// the log as it was at the start, however long that takes.
	caughtUp := make(chan error, 1)
	waitCtx, cancelWait := context.WithCancel(ctx)
	defer cancelWait()
	if w.idle > 0 {
		go func() { caughtUp <- store.WaitCaughtUp(waitCtx, w.name) }()
	}
	caught := false
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return stop()
		case <-sub.Stopped():
			return sub.Err()
		case err := <-caughtUp:
			if err != nil && ctx.Err() == nil {
				_ = stop()
				return err
			}
			caught = true
			mu.Lock()
			last = time.Now()
			mu.Unlock()
		case <-tick.C:
			if !caught {
				continue
			}
			mu.Lock()
			quiet := time.Since(last)
			mu.Unlock()
			if quiet >= w.idle {
				return stop()
			}
		}
	}
}

func cmdSubscriptions(e *env) error {
	if len(e.args) > 0 {
		switch e.args[0] {
		case "reset":
			return cmdSubscriptionsReset(e)
		case "parked":
			return cmdSubscriptionsParked(e)
		case "replay":
			return cmdSubscriptionsReplay(e)
		}
	}
	fs := newFlagSet(e, "subscriptions", `Usage: meowmx subscriptions [NAME]
       meowmx subscriptions reset NAME --to POS|start|end
       meowmx subscriptions parked NAME
       meowmx subscriptions replay NAME

Prints each subscription's partitions: checkpoint, lag, owner, parked events,
and a warning when a long-running transaction holds the horizon back.

Examples:
  meowmx subscriptions
  meowmx subscriptions reset order-summary --to start
  meowmx subscriptions parked shipping`)
	args, err := parse(fs, e.args)
	if err != nil {
		return err
	}
	name := ""
	if len(args) > 1 {
		return usagef("unexpected argument %q", args[1])
	} else if len(args) == 1 {
		name = args[0]
	}
	b, err := openMigrated(e)
	if err != nil {
		return err
	}
	defer b.close()
	statuses, err := b.api.SubscriptionStatuses(e.ctx, name)
	if err != nil {
		return err
	}
	tw := tabwriter.NewWriter(e.stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tPARTITION\tCHECKPOINT\tLAG\tBEHIND\tOWNER\tPARKED\tHORIZON")
	for _, st := range statuses {
		owner := st.Owner
		if owner == "" {
			owner = "-"
		}
		horizon := "ok"
		if st.HorizonHeld {
			horizon = fmt.Sprintf("held by pid %d for %s", st.Horizon.PID, st.Horizon.Age.Round(time.Second))
		}
		fmt.Fprintf(tw, "%s\t%d/%d\t%s\t%d\t%s\t%s\t%d\t%s\n", st.Name, st.Partition, st.Partitions, st.Checkpoint,
			st.Lag, st.TimeBehind.Round(time.Millisecond), owner, st.Parked, horizon)
	}
	return tw.Flush()
}

func cmdSubscriptionsReset(e *env) error {
	fs := newFlagSet(e, "subscriptions reset", `Usage: meowmx subscriptions reset NAME --to POS|start|end

Moves every partition of the subscription to a position: start handles
everything again (to rebuild a read model), end skips to now.`)
	to := fs.String("to", "", "start, end or a position (required)")
	args, err := parse(fs, e.args[1:])
	if err != nil {
		return err
	}
	if len(args) != 1 {
		return usagef("want the subscription NAME")
	}
	var from meowmx.SubscriptionFrom
	switch *to {
	case "":
		return usagef("--to is required: start, end or a position")
	case "start":
		from = meowmx.FromStart
	case "end":
		from = meowmx.FromEnd
	default:
		pos, err := meowmx.ParsePosition(*to)
		if err != nil {
			return usagef("--to: %v", err)
		}
		from = meowmx.FromPosition(pos)
	}
	b, err := openMigrated(e)
	if err != nil {
		return err
	}
	defer b.close()
	if err := b.api.ResetSubscription(e.ctx, args[0], from); err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "subscription %s reset to %s\n", args[0], from)
	return nil
}

func cmdSubscriptionsParked(e *env) error {
	fs := newFlagSet(e, "subscriptions parked", `Usage: meowmx subscriptions parked NAME

Prints the subscription's parked events as JSON lines: the event's fields,
plus partition, attempts, error and parked_at.`)
	b, name, err := openForSubscription(e, fs)
	if err != nil {
		return err
	}
	defer b.close()
	parked, err := b.api.ParkedEvents(e.ctx, name)
	if err != nil {
		return err
	}
	for _, pe := range parked {
		line, err := json.Marshal(struct {
			eventLine
			Partition int    `json:"partition"`
			Attempts  int    `json:"attempts"`
			Error     string `json:"error"`
			ParkedAt  string `json:"parked_at"`
			Replay    bool   `json:"replay"`
		}{toLine(pe.Event), pe.Partition, pe.Attempts, pe.Error, pe.ParkedAt.UTC().Format(time.RFC3339Nano), pe.Replay})
		if err != nil {
			return err
		}
		fmt.Fprintf(e.stdout, "%s\n", line)
	}
	return nil
}

func cmdSubscriptionsReplay(e *env) error {
	fs := newFlagSet(e, "subscriptions replay", `Usage: meowmx subscriptions replay NAME

Asks the subscription's running workers to handle its parked events again.`)
	b, name, err := openForSubscription(e, fs)
	if err != nil {
		return err
	}
	defer b.close()
	n, err := b.api.ReplayParked(e.ctx, name)
	if err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "%d parked events of %s will be replayed by its workers\n", n, name)
	return nil
}

// openForSubscription parses a subscriptions subcommand that takes one NAME
// and opens the store.
func openForSubscription(e *env, fs *flag.FlagSet) (*backend, string, error) {
	args, err := parse(fs, e.args[1:])
	if err != nil {
		return nil, "", err
	}
	if len(args) != 1 {
		return nil, "", usagef("want the subscription NAME")
	}
	b, err := openMigrated(e)
	if err != nil {
		return nil, "", err
	}
	return b, args[0], nil
}
