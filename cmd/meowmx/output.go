package main

// The event output shared by append, read, work and subscriptions parked:
// JSON lines, or a table with --format text.

import (
	"encoding/json"
	"fmt"
	"io"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/meowmx/meowmx"
)

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

// toLine turns a recorded event into its JSON line form.
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

// newPrinter returns a printer to w in the --format named: json or text.
func newPrinter(w io.Writer, format string) (*printer, error) {
	switch format {
	case "json":
		return &printer{w: w}, nil
	case "text":
		return &printer{w: w, text: true, tw: tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)}, nil
	}
	return nil, usagef("--format %q: want json or text", format)
}

// print writes events, in the table's case under a header printed once.
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
