package main

// streams, categories and status: what is in the store.

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/meowmx/meowmx"
)

// pageSize is how many streams or categories streams and categories print
// by default.
const pageSize = 100

// cmdStreams runs "meowmx streams": a page of streams with their event
// counts and last activity.
func cmdStreams(e *env) error {
	fs := newFlagSet(e, "streams", `Usage: meowmx streams [--category C] [--after CATEGORY-ID] [--limit N]

Prints streams ordered by category, then ID, with their number of events,
the position of their last event and when it was recorded. A page costs the
same on a log of any size. When more streams follow, the command to print
the next page goes to stderr.

Examples:
  meowmx streams
  meowmx streams --category order --limit 20
  meowmx streams --after order-1001
  meowmx streams --format json --limit 0`)
	category := fs.String("category", "", "list the streams of this category only")
	afterText := fs.String("after", "", "list the streams after this one (CATEGORY-ID), as the previous page ends")
	limit := fs.Int("limit", pageSize, "most streams to print (0: all)")
	format := fs.String("format", "text", "text, or json for one JSON line per stream")
	args, err := parse(fs, e.args)
	if err != nil {
		return err
	}
	if len(args) > 0 {
		return usagef("unexpected argument %q (see meowmx streams --help)", args[0])
	}
	if err := checkListFlags(*format, *limit); err != nil {
		return err
	}
	opts := &meowmx.StreamsOpts{Category: *category}
	if *afterText != "" {
		if opts.After, err = meowmx.ParseStream(*afterText); err != nil {
			return usagef("--after: %v", err)
		}
		if *category != "" && opts.After.Category != *category {
			return usagef("--after %s is not a stream of --category %s", opts.After, *category)
		}
	}
	b, err := openMigrated(e)
	if err != nil {
		return err
	}
	defer b.close()
	var tw *tabwriter.Writer
	if *format == "text" {
		tw = tabwriter.NewWriter(e.stdout, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "STREAM\tEVENTS\tLAST POSITION\tLAST ACTIVITY")
	}
	printed := 0
	for {
		opts.Limit = meowmx.ReadLimitDefault
		if *limit > 0 {
			opts.Limit = min(opts.Limit, *limit-printed+1) // one more says whether another page follows
		}
		page, err := b.api.Streams(e.ctx, opts)
		if err != nil {
			return err
		}
		more := len(page) == opts.Limit
		if *limit > 0 && printed+len(page) > *limit {
			page = page[:*limit-printed]
		}
		for _, in := range page {
			if tw != nil {
				fmt.Fprintf(tw, "%s\t%d\t%s\t%s\n", in.Stream, in.Version+1, in.LastPosition, formatTime(in.LastRecordedAt))
				continue
			}
			if err := writeJSONLine(e.stdout, in); err != nil {
				return err
			}
		}
		printed += len(page)
		if len(page) > 0 {
			opts.After = page[len(page)-1].Stream
		}
		if !more {
			break
		}
		if *limit > 0 && printed >= *limit {
			if tw != nil {
				if err := tw.Flush(); err != nil {
					return err
				}
			}
			fmt.Fprintf(e.stderr, "more streams follow: %s\n", nextPageCommand(e, b, "streams", *category, opts.After.String(), *limit, *format))
			return nil
		}
	}
	if tw != nil {
		return tw.Flush()
	}
	return nil
}

// cmdCategories runs "meowmx categories": the categories with their event
// and stream counts and last activity.
func cmdCategories(e *env) error {
	fs := newFlagSet(e, "categories", `Usage: meowmx categories [--after C] [--limit N]

Prints the categories in order with their numbers of events and streams, the
position of their last event and when it was recorded. Counting reads each
category's entries of an index: about 0.3 s per million events.

Examples:
  meowmx categories
  meowmx categories --format json`)
	after := fs.String("after", "", "list the categories after this one, as the previous page ends")
	limit := fs.Int("limit", pageSize, "most categories to print (0: all)")
	format := fs.String("format", "text", "text, or json for one JSON line per category")
	args, err := parse(fs, e.args)
	if err != nil {
		return err
	}
	if len(args) > 0 {
		return usagef("unexpected argument %q (see meowmx categories --help)", args[0])
	}
	if err := checkListFlags(*format, *limit); err != nil {
		return err
	}
	b, err := openMigrated(e)
	if err != nil {
		return err
	}
	defer b.close()
	want := 0
	if *limit > 0 {
		want = *limit + 1 // one more says whether another page follows
	}
	cats, err := allCategories(e, b, *after, want)
	if err != nil {
		return err
	}
	more := *limit > 0 && len(cats) > *limit
	if more {
		cats = cats[:*limit]
	}
	if *format == "json" {
		for _, in := range cats {
			if err := writeJSONLine(e.stdout, in); err != nil {
				return err
			}
		}
	} else {
		tw := tabwriter.NewWriter(e.stdout, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "CATEGORY\tEVENTS\tSTREAMS\tLAST POSITION\tLAST ACTIVITY")
		for _, in := range cats {
			fmt.Fprintf(tw, "%s\t%d\t%d\t%s\t%s\n", in.Category, in.Events, in.Streams, in.LastPosition, formatTime(in.LastRecordedAt))
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	if more {
		fmt.Fprintf(e.stderr, "more categories follow: %s\n", nextPageCommand(e, b, "categories", "", cats[len(cats)-1].Category, *limit, *format))
	}
	return nil
}

// allCategories returns the categories after after, at most want of them
// (0 for all), reading pages of ReadLimitDefault.
func allCategories(e *env, b *backend, after string, want int) ([]meowmx.CategoryInfo, error) {
	var cats []meowmx.CategoryInfo
	for {
		limit := meowmx.ReadLimitDefault
		if want > 0 {
			limit = min(limit, want-len(cats))
		}
		page, err := b.api.Categories(e.ctx, &meowmx.CategoriesOpts{After: after, Limit: limit})
		if err != nil {
			return nil, err
		}
		cats = append(cats, page...)
		if len(page) < limit || (want > 0 && len(cats) >= want) {
			return cats, nil
		}
		after = page[len(page)-1].Category
	}
}

// cmdStatus runs "meowmx status": the store at a glance.
func cmdStatus(e *env) error {
	fs := newFlagSet(e, "status", `Usage: meowmx status

Prints the store at a glance: its events, streams and categories, its last
event, the subscriptions with their lag and parked events, and the
transaction holding the horizon back, if one does (PostgreSQL). Counting
reads an index: about 0.3 s per million events.

Examples:
  meowmx status
  meowmx status --format json`)
	format := fs.String("format", "text", "text, or json for one JSON object")
	args, err := parse(fs, e.args)
	if err != nil {
		return err
	}
	if len(args) > 0 {
		return usagef("unexpected argument %q (see meowmx status --help)", args[0])
	}
	if err := checkListFlags(*format, 0); err != nil {
		return err
	}
	b, err := openMigrated(e)
	if err != nil {
		return err
	}
	defer b.close()
	cats, err := allCategories(e, b, "", 0)
	if err != nil {
		return err
	}
	statuses, err := b.api.SubscriptionStatuses(e.ctx, "")
	if err != nil {
		return err
	}
	horizon, err := b.api.Horizon(e.ctx)
	if err != nil {
		return err
	}
	st := newStatus(b, cats, statuses, horizon)
	if *format == "json" {
		return writeJSONLine(e.stdout, st)
	}
	return st.printText(e.stdout)
}

// status is the JSON form of "meowmx status".
type status struct {
	Database       string                `json:"database"`
	Driver         string                `json:"driver"`
	Schema         string                `json:"schema"`
	Events         int64                 `json:"events"`
	Streams        int64                 `json:"streams"`
	Categories     []meowmx.CategoryInfo `json:"categories"`
	LastPosition   string                `json:"last_position,omitempty"`
	LastRecordedAt string                `json:"last_recorded_at,omitempty"`
	Subscriptions  []subscriptionStatus  `json:"subscriptions"`
	Horizon        *horizonJSON          `json:"horizon"`
}

// subscriptionStatus sums up a subscription's partitions.
type subscriptionStatus struct {
	Name          string  `json:"name"`
	Partitions    int     `json:"partitions"`
	Workers       int     `json:"workers"`
	Lag           int64   `json:"lag"`
	SecondsBehind float64 `json:"seconds_behind"`
	Parked        int64   `json:"parked"`
}

// horizonJSON is the transaction holding the horizon back.
type horizonJSON struct {
	PID        int     `json:"pid"`
	AgeSeconds float64 `json:"age_seconds"`
	Database   string  `json:"database"`
	State      string  `json:"state"`
	Query      string  `json:"query"`
	Held       bool    `json:"held"`
}

func newStatus(b *backend, cats []meowmx.CategoryInfo, statuses []meowmx.SubscriptionStatus, h *meowmx.Horizon) *status {
	driver := "postgres"
	if b.pg == nil {
		driver = "sqlite"
	}
	st := &status{Database: b.label, Driver: driver, Schema: b.api.Schema(), Categories: []meowmx.CategoryInfo{}, Subscriptions: []subscriptionStatus{}}
	var last meowmx.CategoryInfo
	for _, c := range cats {
		st.Events += c.Events
		st.Streams += c.Streams
		st.Categories = append(st.Categories, c)
		if c.LastPosition.Compare(last.LastPosition) > 0 {
			last = c
		}
	}
	if last.Category != "" {
		st.LastPosition = last.LastPosition.String()
		st.LastRecordedAt = last.LastRecordedAt.UTC().Format(time.RFC3339Nano)
	}
	held := false
	owners := map[string]map[string]bool{}
	for _, s := range statuses {
		held = held || s.HorizonHeld
		n := len(st.Subscriptions)
		if n == 0 || st.Subscriptions[n-1].Name != s.Name {
			st.Subscriptions = append(st.Subscriptions, subscriptionStatus{Name: s.Name})
			owners[s.Name] = map[string]bool{}
			n++
		}
		sub := &st.Subscriptions[n-1]
		sub.Partitions++
		sub.Lag += s.Lag
		sub.SecondsBehind = max(sub.SecondsBehind, s.TimeBehind.Seconds())
		sub.Parked += s.Parked
		if s.Owner != "" && !owners[s.Name][s.Owner] {
			owners[s.Name][s.Owner] = true
			sub.Workers++
		}
	}
	if h != nil {
		st.Horizon = &horizonJSON{PID: h.PID, AgeSeconds: h.Age.Seconds(), Database: h.Database,
			State: h.State, Query: h.Query, Held: held}
	}
	return st
}

func (st *status) printText(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "database\t%s (schema %s)\n", st.Database, st.Schema)
	fmt.Fprintf(tw, "events\t%d in %d streams of %d categories\n", st.Events, st.Streams, len(st.Categories))
	if st.LastPosition != "" {
		fmt.Fprintf(tw, "last event\t%s at %s\n", st.LastPosition, st.LastRecordedAt)
	}
	switch h := st.Horizon; {
	case st.Driver == "sqlite":
		fmt.Fprintf(tw, "horizon\tnone on SQLite: its writers take turns, so no event commits behind a reader\n")
	case h == nil:
		fmt.Fprintf(tw, "horizon\tfree: no transaction holds global reads back\n")
	default:
		what := "oldest transaction"
		if h.Held {
			what = "HELD BACK by"
		}
		fmt.Fprintf(tw, "horizon\t%s: pid %d on %s, %s for %s: %s\n", what, h.PID, h.Database, h.State,
			(time.Duration(h.AgeSeconds * float64(time.Second))).Round(time.Second), oneLine(h.Query, 60))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintln(w)
	if len(st.Subscriptions) == 0 {
		_, err := fmt.Fprintln(w, "no subscriptions")
		return err
	}
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "SUBSCRIPTION\tPARTITIONS\tWORKERS\tLAG\tBEHIND\tPARKED")
	for _, s := range st.Subscriptions {
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%s\t%d\n", s.Name, s.Partitions, s.Workers, s.Lag,
			time.Duration(s.SecondsBehind*float64(time.Second)).Round(time.Millisecond), s.Parked)
	}
	return tw.Flush()
}

// checkListFlags checks --format and --limit of a listing.
func checkListFlags(format string, limit int) error {
	if format != "text" && format != "json" {
		return usagef("--format %q: want text or json", format)
	}
	if limit < 0 {
		return usagef("--limit must not be negative")
	}
	return nil
}

// nextPageCommand is the command line that prints the page after after.
func nextPageCommand(e *env, b *backend, name, category, after string, limit int, format string) string {
	words := []string{name}
	if category != "" {
		words = append(words, "--category", shellQuote(category))
	}
	words = append(words, "--after", shellQuote(after))
	if limit != pageSize {
		words = append(words, "--limit", fmt.Sprint(limit))
	}
	if format != "text" {
		words = append(words, "--format", format)
	}
	return commandLine(e, b.db, words...)
}

// shellQuote quotes s for a POSIX shell when it needs quoting.
func shellQuote(s string) string {
	if s != "" && strings.Trim(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_./:@") == "" {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// formatTime prints a time in UTC to the second, as the tables do.
func formatTime(t time.Time) string { return t.UTC().Format("2006-01-02 15:04:05") }

// oneLine shortens s to one line of at most n characters.
func oneLine(s string, n int) string {
	s = strings.Join(strings.Fields(s), " ")
	if r := []rune(s); len(r) > n {
		return string(r[:n-3]) + "..."
	}
	return s
}

// writeJSONLine writes v as one line of JSON.
func writeJSONLine(w io.Writer, v any) error {
	data, err := json.Marshal(v)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(w, "%s\n", data)
	return err
}
