package main

// The event output shared by append, read, work and subscriptions parked:
// JSON lines, or a table with --format text.

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"sync"
	"unicode/utf8"

	"github.com/meowmx/meowmx"
)

// printer writes events as JSON lines or as a table, safely from several
// goroutines. The table's columns keep their widths from one page to the
// next: each is as wide as its widest value so far, and at least as wide
// as its usual values.
type printer struct {
	mu     sync.Mutex
	w      io.Writer
	text   bool
	header bool
	widths [5]int
}

// columnWidths are the table's narrowest columns: position, stream,
// version, type, recorded at (the data column is last, unpadded).
var columnWidths = [5]int{14, 20, 7, 16, 23}

// newPrinter returns a printer to w in the --format named: json or text.
func newPrinter(w io.Writer, format string) (*printer, error) {
	switch format {
	case "json":
		return &printer{w: w}, nil
	case "text":
		return &printer{w: w, text: true, widths: columnWidths}, nil
	}
	return nil, usagef("--format %q: want json or text", format)
}

// print writes events, in the table's case under a header printed once.
func (p *printer) print(events ...meowmx.RecordedEvent) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, ev := range events {
		if !p.text {
			line, err := json.Marshal(ev)
			if err != nil {
				return err
			}
			if _, err := fmt.Fprintf(p.w, "%s\n", line); err != nil {
				return err
			}
			continue
		}
		cells := [6]string{ev.Position.String(), ev.Stream.String(), fmt.Sprint(ev.Version), ev.Type,
			ev.RecordedAt.UTC().Format("2006-01-02 15:04:05.000"), string(ev.Data)}
		if !p.header {
			if err := p.row([6]string{"POSITION", "STREAM", "VERSION", "TYPE", "RECORDED AT", "DATA"}); err != nil {
				return err
			}
			p.header = true
		}
		if err := p.row(cells); err != nil {
			return err
		}
	}
	return nil
}

// row writes one line of the table, widening a column when a value needs it.
func (p *printer) row(cells [6]string) error {
	var b strings.Builder
	for i, cell := range cells[:5] {
		p.widths[i] = max(p.widths[i], utf8.RuneCountInString(cell))
		fmt.Fprintf(&b, "%-*s  ", p.widths[i], cell)
	}
	b.WriteString(cells[5])
	_, err := fmt.Fprintln(p.w, b.String())
	return err
}
