package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/google/uuid"

	"github.com/meowmx/meowmx"
)

// cmdAppend runs "meowmx append": it appends one event given by flags, or a
// batch of JSON lines from stdin, and prints what was recorded.
func cmdAppend(e *env) error {
	fs := newFlagSet(e, "append", `Usage: meowmx append CATEGORY ID --type T --data JSON [--metadata JSON] [--tag TAG ...] [--expect any|none|exists|N] [--event-id UUID]
       meowmx append CATEGORY ID --data - < events.jsonl

Appends events to the stream CATEGORY-ID and prints each recorded event as a
JSON line. With --data -, reads JSON lines
{"type":...,"data":...,"metadata":...,"tags":[...],"id":...} from stdin and
appends them as one atomic batch ("type" and "data" are required).
Exit status 3 on a version conflict, 2 on bad input.

Examples:
  meowmx append order 1001 --type OrderPlaced --data '{"total":42}' --expect none
  meowmx append order 1001 --type OrderPaid --data '{"amount":42}' --expect 0
  meowmx append course c1 --type StudentSubscribed --data '{}' --tag course:c1 --tag student:s7
  printf '%s\n' '{"type":"A","data":{}}' '{"type":"B","data":[1]}' | meowmx append job 7 --data -`)
	typ := fs.String("type", "", "event type (required unless --data -)")
	data := fs.String("data", "", "event data as JSON, or - to read JSON lines from stdin")
	metadata := fs.String("metadata", "", "event metadata as JSON")
	expect := fs.String("expect", "any", "expected version: any, none, exists or N")
	eventID := fs.String("event-id", "", "event UUID (generated when absent)")
	var tags []string
	fs.Func("tag", "a tag of the event, such as course:c1 (repeat for several)", func(tag string) error {
		tags = append(tags, tag)
		return nil
	})
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
		if *typ != "" || *metadata != "" || *eventID != "" || tags != nil {
			return usagef("with --data -, give type, metadata, tags and id in each input line")
		}
		events, err = readEventLines(e.stdin)
		if err != nil {
			return err
		}
	} else {
		if *typ == "" || *data == "" {
			return usagef("--type and --data are required (or --data - to read JSON lines from stdin)")
		}
		ev := meowmx.Event{Type: *typ, Data: json.RawMessage(*data), Tags: tags}
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

// parseExpected reads --expect: any, none (or no-stream), exists or a
// version number.
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
			Tags     []string        `json:"tags"`
		}
		if !strings.HasPrefix(line, "{") {
			return nil, usagef("stdin line %d: want a JSON object such as {\"type\":\"OrderPlaced\",\"data\":{...}}", n)
		}
		dec := json.NewDecoder(strings.NewReader(line))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&in); err != nil {
			var typeErr *json.UnmarshalTypeError
			if errors.As(err, &typeErr) {
				want := "string"
				if typeErr.Field == "tags" {
					want = "list of strings"
				}
				return nil, usagef("stdin line %d: %q must be a %s", n, typeErr.Field, want)
			}
			return nil, usagef("stdin line %d: not a JSON event object: %v", n, err)
		}
		if in.Type == "" {
			return nil, usagef("stdin line %d: \"type\" is required", n)
		}
		if len(in.Data) == 0 {
			return nil, usagef("stdin line %d: \"data\" is required (JSON, such as {} or null)", n)
		}
		ev := meowmx.Event{Type: in.Type, Data: in.Data, Metadata: in.Metadata, Tags: in.Tags}
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
