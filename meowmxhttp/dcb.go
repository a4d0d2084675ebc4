package meowmxhttp

import (
	"encoding/json"
	"errors"
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/meowmx/meowmx"
)

// The DCB benchmark contract, under /dcb: the HTTP interface that the
// public test suite of Dynamic Consistency Boundaries (dcb.events) drives a
// store through, so that the suite runs against meowmx unchanged
// (BASE_URI=http://HOST:PORT/dcb).
//
//	GET /dcb/read?query={"items":[...]}&options={"from":N,"limit":N,"backwards":true}
//	  → 200 [{"type":"...","tags":[...],"data":"...","position":N}, ...]
//	POST /dcb/append {"events":[{"type":"...","tags":[...],"data":"..."}],
//	                  "condition":{"failIfEventsMatch":{"items":[...]},"after":N}}
//	  → 200 {"durationInMicroseconds":N,"appendConditionFailed":false}
//
// It differs from the rest of the API where the contract does: positions
// are numbers (Store.PositionNumbers), a query without items matches every
// event, data is a string (stored as a JSON string, and an event appended
// otherwise reads back as its JSON text), a read without a limit returns
// every matching event, and an append whose condition fails is a 200 with
// appendConditionFailed true. Other errors are the API's.

// dcbQuery is a query of the contract: no items matches every event.
type dcbQuery struct {
	Items []meowmx.QueryItem `json:"items"`
}

func (q dcbQuery) query() meowmx.Query {
	if len(q.Items) == 0 {
		return meowmx.Query{Items: []meowmx.QueryItem{{}}}
	}
	return meowmx.Query{Items: q.Items}
}

// dcbReadOptions are a read's options: from (inclusive), limit, backwards.
type dcbReadOptions struct {
	From      *int64 `json:"from"`
	Limit     *int   `json:"limit"`
	Backwards bool   `json:"backwards"`
}

// decodeParam decodes the JSON query parameter name into v, strictly,
// and reports whether the request has it; a bad one sets q.err.
func decodeParam(q *query, name string, v any, want string) bool {
	s := q.values.Get(name)
	if s == "" {
		return false
	}
	dec := json.NewDecoder(strings.NewReader(s))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		if q.err == nil {
			q.err = badRequest("%s: want a JSON object %s: %v", name, want, err)
		}
		return true
	}
	if _, err := dec.Token(); err == nil && q.err == nil {
		q.err = badRequest("%s: data after the JSON object", name)
	}
	return true
}

// dcbRead reads the events matching a query: GET /dcb/read.
func (h *Handler[TTx]) dcbRead(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	q := &query{values: r.URL.Query()}
	var in dcbQuery
	if !decodeParam(q, "query", &in, `{"items":[{"types":[...],"tags":[...]}]}`) && q.err == nil {
		q.err = badRequest(`no query: give query={"items":[...]} (no items for every event)`)
	}
	var opts dcbReadOptions
	decodeParam(q, "options", &opts, `{"from":N,"limit":N,"backwards":true}`)
	if q.err == nil && opts.Limit != nil && *opts.Limit < 0 {
		q.err = badRequest("options: limit %d: want 0 or more", *opts.Limit)
	}
	if q.err != nil {
		h.fail(w, r, q.err)
		return
	}
	// from is inclusive: forward, read after the position of from-1;
	// backward, before the one that follows from's.
	from := meowmx.Start
	if opts.Backwards {
		from = meowmx.End
	}
	if n := opts.From; n != nil && (opts.Backwards || *n > 1) {
		at := *n
		if !opts.Backwards {
			at--
		}
		p, err := h.store.NumberPosition(ctx, at)
		if err != nil {
			h.fail(w, r, err)
			return
		}
		if opts.Backwards {
			if p.Seq == math.MaxInt64 {
				p = meowmx.End
			} else {
				p.Seq++
			}
		}
		from = p
	}
	remaining := -1
	if opts.Limit != nil && *opts.Limit > 0 {
		remaining = *opts.Limit
	}
	page := &meowmx.ReadQueryOpts{Backward: opts.Backwards, Limit: h.cfg.ReadLimitMax}
	query := in.query()
	var b []byte
	started, written := false, 0
	for {
		if remaining >= 0 && remaining < page.Limit {
			page.Limit = remaining
		}
		var events []meowmx.RecordedEvent
		var numbers []int64
		var err error
		if page.Limit > 0 {
			events, err = h.store.ReadQuery(ctx, query, from, page)
			if err == nil {
				positions := make([]meowmx.Position, len(events))
				for i := range events {
					positions[i] = events[i].Position
				}
				numbers, err = h.store.PositionNumbers(ctx, positions...)
			}
		}
		if err != nil {
			if !started {
				h.fail(w, r, err)
				return
			}
			// The status is sent: break the response off, so that the
			// client sees a failure rather than a short array.
			h.logFailure(r, err)
			panic(http.ErrAbortHandler)
		}
		if !started {
			w.Header().Set("Content-Type", "application/json")
			w.Header().Set("Cache-Control", "no-store")
			b = append(b[:0], '[')
			started = true
		}
		for i := range events {
			if written > 0 {
				b = append(b, ',')
			}
			b = appendDCBEvent(b, &events[i], numbers[i])
			written++
		}
		last := len(events) < page.Limit || page.Limit == 0
		if last {
			b = append(b, "]\n"...)
		}
		h.deadline(w)
		if _, err := w.Write(b); err != nil {
			return
		}
		if last {
			return
		}
		b = b[:0]
		from = events[len(events)-1].Position
		if remaining > 0 {
			remaining -= len(events)
		}
	}
}

// appendDCBEvent appends an event as the contract writes it.
func appendDCBEvent(b []byte, e *meowmx.RecordedEvent, number int64) []byte {
	b = append(b, `{"type":`...)
	b = appendJSON(b, e.Type)
	b = append(b, `,"tags":`...)
	if e.Tags == nil {
		b = append(b, "[]"...)
	} else {
		b = appendJSON(b, e.Tags)
	}
	b = append(b, `,"data":`...)
	if len(e.Data) > 0 && e.Data[0] == '"' {
		// A JSON string is the data's own encoding.
		b = append(b, e.Data...)
	} else {
		b = appendJSON(b, string(e.Data))
	}
	b = append(b, `,"position":`...)
	b = strconv.AppendInt(b, number, 10)
	return append(b, '}')
}

// appendJSON appends v's JSON encoding: a string or a list of strings,
// which always encode.
func appendJSON(b []byte, v any) []byte {
	out, _ := json.Marshal(v)
	return append(b, out...)
}

// dcbEventIn is an event of an append of the contract: its data is a
// string.
type dcbEventIn struct {
	Type string   `json:"type"`
	Tags []string `json:"tags"`
	Data *string  `json:"data"`
}

// dcbAppendIn is the body of an append of the contract.
type dcbAppendIn struct {
	Events    []dcbEventIn `json:"events"`
	Condition *struct {
		FailIfEventsMatch *dcbQuery `json:"failIfEventsMatch"`
		After             *int64    `json:"after"`
	} `json:"condition"`
}

// dcbAppend appends events of no stream, on a condition or not:
// POST /dcb/append.
func (h *Handler[TTx]) dcbAppend(w http.ResponseWriter, r *http.Request) {
	h.deadline(w)
	ctx := r.Context()
	var in dcbAppendIn
	if err := decodeBody(r, &in); err != nil {
		h.fail(w, r, err)
		return
	}
	if len(in.Events) == 0 {
		h.fail(w, r, badRequest("no events"))
		return
	}
	events := make([]meowmx.Event, len(in.Events))
	for i, e := range in.Events {
		if e.Data == nil {
			h.fail(w, r, badRequest("event %d: no data (a string)", i))
			return
		}
		data, _ := json.Marshal(*e.Data)
		events[i] = meowmx.Event{Type: e.Type, Tags: e.Tags, Data: data}
	}
	var cond *meowmx.AppendCondition
	if c := in.Condition; c != nil {
		if c.FailIfEventsMatch == nil {
			h.fail(w, r, badRequest("condition: no failIfEventsMatch"))
			return
		}
		cond = &meowmx.AppendCondition{FailIfEventsMatch: c.FailIfEventsMatch.query()}
		if c.After != nil {
			after, err := h.store.NumberPosition(ctx, *c.After)
			if err != nil {
				h.fail(w, r, err)
				return
			}
			cond.After = after
		}
	}
	start := time.Now()
	_, err := h.store.AppendEvents(ctx, cond, events...)
	elapsed := time.Since(start)
	if err != nil && !errors.Is(err, meowmx.ErrAppendConditionFailed) {
		h.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"durationInMicroseconds": elapsed.Microseconds(),
		"appendConditionFailed":  err != nil,
	})
}
