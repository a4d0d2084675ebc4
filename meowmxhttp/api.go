package meowmxhttp

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/google/uuid"

	"github.com/meowmx/meowmx"
)

// eventIn is an event in a request body.
type eventIn struct {
	// ID, when set, makes a retried append idempotent.
	ID       *uuid.UUID      `json:"id"`
	Type     string          `json:"type"`
	Data     json.RawMessage `json:"data"`
	Metadata json.RawMessage `json:"metadata"`
	Tags     []string        `json:"tags"`
}

// conditionIn is a DCB condition in a request body.
type conditionIn struct {
	FailIfEventsMatch meowmx.Query `json:"fail_if_events_match"`
	After             string       `json:"after"`
}

// appendIn is the body of an append.
type appendIn struct {
	Events []eventIn `json:"events"`
	// ExpectedVersion is "any" (the default), "no_stream", "exists" or a
	// version number; the Meowmx-Expected-Version header may give it
	// instead.
	ExpectedVersion json.RawMessage `json:"expected_version"`
	Condition       *conditionIn    `json:"condition"`
}

// decodeBody reads a JSON body into v, refusing unknown fields and
// trailing data.
func decodeBody(r *http.Request, v any) error {
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			return err
		}
		if errors.Is(err, io.EOF) {
			return badRequest("empty body: want a JSON object")
		}
		return badRequest("body: %v", err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return badRequest("body: data after the JSON object")
	}
	return nil
}

func (in *appendIn) events() ([]meowmx.Event, error) {
	if len(in.Events) == 0 {
		return nil, badRequest("no events")
	}
	events := make([]meowmx.Event, len(in.Events))
	for i, e := range in.Events {
		events[i] = meowmx.Event{Type: e.Type, Data: e.Data, Metadata: e.Metadata, Tags: e.Tags}
		if len(e.Data) == 0 {
			events[i].Data = nil
		}
		if string(e.Metadata) == "null" {
			events[i].Metadata = nil
		}
		if e.ID != nil {
			events[i].ID = *e.ID
		}
	}
	return events, nil
}

func (in *appendIn) condition() (*meowmx.AppendCondition, error) {
	if in.Condition == nil {
		return nil, nil
	}
	after, err := parsePosition(in.Condition.After)
	if err != nil {
		return nil, err
	}
	return &meowmx.AppendCondition{FailIfEventsMatch: in.Condition.FailIfEventsMatch, After: after}, nil
}

// parseExpected reads an expected version: "any", "no_stream", "exists" or
// a version number.
func parseExpected(s string) (meowmx.ExpectedVersion, error) {
	switch s {
	case "", "any":
		return meowmx.Any, nil
	case "no_stream":
		return meowmx.NoStream, nil
	case "exists":
		return meowmx.StreamExists, nil
	}
	v, err := strconv.ParseInt(s, 10, 64)
	if err != nil || v < 0 {
		return 0, badRequest("expected version %q: want any, no_stream, exists or a version (0 or more)", s)
	}
	return meowmx.ExpectedVersion(v), nil
}

func (in *appendIn) expected(r *http.Request) (meowmx.ExpectedVersion, error) {
	field := ""
	if len(in.ExpectedVersion) > 0 && string(in.ExpectedVersion) != "null" {
		if err := json.Unmarshal(in.ExpectedVersion, &field); err != nil {
			var n json.Number
			if json.Unmarshal(in.ExpectedVersion, &n) != nil {
				return 0, badRequest("expected_version: want a string or a number")
			}
			field = n.String()
		}
	}
	header := r.Header.Get("Meowmx-Expected-Version")
	if field != "" && header != "" && field != header {
		return 0, badRequest("expected_version %q and the Meowmx-Expected-Version header %q differ", field, header)
	}
	if header != "" {
		field = header
	}
	return parseExpected(field)
}

// appendRequest is a decoded append: its events, expected version and
// condition.
type appendRequest struct {
	events   []meowmx.Event
	expected meowmx.ExpectedVersion
	cond     *meowmx.AppendCondition
}

// parseAppend reads an append's body; toStream says that it appends to a
// stream (events of no stream have no expected version).
func parseAppend(r *http.Request, toStream bool) (*appendRequest, error) {
	var in appendIn
	if err := decodeBody(r, &in); err != nil {
		return nil, err
	}
	out := &appendRequest{expected: meowmx.Any}
	var err error
	if toStream {
		if out.expected, err = in.expected(r); err != nil {
			return nil, err
		}
	} else if len(in.ExpectedVersion) > 0 && string(in.ExpectedVersion) != "null" {
		return nil, badRequest("expected_version: events of no stream have none; use a condition")
	}
	if out.events, err = in.events(); err != nil {
		return nil, err
	}
	if out.cond, err = in.condition(); err != nil {
		return nil, err
	}
	return out, nil
}

// appendStream appends to one stream: POST /streams/{category}/{id}.
func (h *Handler[TTx]) appendStream(w http.ResponseWriter, r *http.Request) {
	h.deadline(w)
	stream := meowmx.NewStream(r.PathValue("category"), r.PathValue("id"))
	req, err := parseAppend(r, true)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	var recorded []meowmx.RecordedEvent
	if req.cond != nil {
		recorded, err = h.store.AppendIf(r.Context(), stream, req.expected, *req.cond, req.events...)
	} else {
		recorded, err = h.store.Append(r.Context(), stream, req.expected, req.events...)
	}
	h.appended(w, r, recorded, err)
}

// appendEvents appends events of no stream of the caller's, on a condition
// or not: POST /events.
func (h *Handler[TTx]) appendEvents(w http.ResponseWriter, r *http.Request) {
	h.deadline(w)
	req, err := parseAppend(r, false)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	recorded, err := h.store.AppendEvents(r.Context(), req.cond, req.events...)
	h.appended(w, r, recorded, err)
}

func (h *Handler[TTx]) appended(w http.ResponseWriter, r *http.Request, recorded []meowmx.RecordedEvent, err error) {
	if err != nil {
		h.fail(w, r, err)
		return
	}
	writeEvents(w, http.StatusCreated, recorded, func(b []byte) []byte {
		b = append(b, `,"position":"`...)
		b = append(b, recorded[len(recorded)-1].Position.String()...)
		return append(b, '"')
	})
}

// writeEvents writes {"events":[...] and what more appends, then }: each
// event by RecordedEvent.AppendJSON, in one buffer.
func writeEvents(w http.ResponseWriter, status int, events []meowmx.RecordedEvent, more func([]byte) []byte) {
	size := 64
	for i := range events {
		size += 256 + len(events[i].Data) + len(events[i].Metadata)
	}
	b := make([]byte, 0, size)
	b = append(b, `{"events":[`...)
	for i := range events {
		if i > 0 {
			b = append(b, ',')
		}
		b = events[i].AppendJSON(b)
	}
	b = append(b, ']')
	b = more(b)
	b = append(b, "}\n"...)
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, _ = w.Write(b)
}

// query reads a request's query parameters.
type query struct {
	values url.Values
	err    error
}

func (q *query) int(name string, def, minimum, maximum int64) int64 {
	s := q.values.Get(name)
	if s == "" || q.err != nil {
		return def
	}
	v, err := strconv.ParseInt(s, 10, 64)
	if err != nil || v < minimum || v > maximum {
		q.err = badRequest("%s %q: want a whole number from %d to %d", name, s, minimum, maximum)
		return def
	}
	return v
}

func (q *query) bool(name string) bool {
	s := q.values.Get(name)
	if s == "" || q.err != nil {
		return false
	}
	v, err := strconv.ParseBool(s)
	if err != nil {
		q.err = badRequest("%s %q: want true or false", name, s)
	}
	return v
}

// maxList bounds a list parameter (types, tags).
const maxList = 64

func (q *query) list(name string) []string {
	var out []string
	for _, v := range q.values[name] {
		for part := range strings.SplitSeq(v, ",") {
			if part != "" {
				out = append(out, part)
			}
		}
	}
	if len(out) > maxList && q.err == nil {
		q.err = badRequest("%s: %d values, at most %d", name, len(out), maxList)
	}
	return out
}

func (q *query) position(name string) meowmx.Position {
	if q.err != nil {
		return meowmx.Start
	}
	p, err := parsePosition(q.values.Get(name))
	if err != nil {
		q.err = err
	}
	return p
}

func parsePosition(s string) (meowmx.Position, error) {
	if s == "" {
		return meowmx.Start, nil
	}
	p, err := meowmx.ParsePosition(s)
	if err != nil {
		return meowmx.Start, badRequest("position %q: want TX/SEQ, as events' positions are written", s)
	}
	return p, nil
}

func (h *Handler[TTx]) limit(q *query) int {
	return int(q.int("limit", meowmx.ReadLimitDefault, 1, int64(h.cfg.ReadLimitMax)))
}

// readStream reads one stream: GET /streams/{category}/{id}?from=&limit=&backward=.
func (h *Handler[TTx]) readStream(w http.ResponseWriter, r *http.Request) {
	h.deadline(w)
	stream := meowmx.NewStream(r.PathValue("category"), r.PathValue("id"))
	q := &query{values: r.URL.Query()}
	backward := q.bool("backward")
	from := q.int("from", 0, 0, 1<<62)
	if backward && !q.values.Has("from") {
		from = meowmx.StreamEnd
	}
	limit := h.limit(q)
	if q.err != nil {
		h.fail(w, r, q.err)
		return
	}
	events, err := h.store.ReadStream(r.Context(), stream, &meowmx.ReadStreamOpts{From: from, Limit: limit, Backward: backward})
	if err != nil {
		h.fail(w, r, err)
		return
	}
	if len(events) == 0 {
		// An empty page of a stream that has events is a page past its
		// end; a stream without any is unknown.
		version, err := h.store.StreamVersion(r.Context(), stream)
		if err != nil {
			h.fail(w, r, err)
			return
		}
		if version < 0 {
			h.fail(w, r, fmt.Errorf("%w: %s", meowmx.ErrStreamNotFound, stream))
			return
		}
	}
	next := int64(-1)
	if len(events) == limit {
		next = events[len(events)-1].Version + 1
		if backward {
			next = events[len(events)-1].Version - 1
		}
	}
	writeEvents(w, http.StatusOK, events, func(b []byte) []byte {
		if next < 0 {
			return append(b, `,"next":null`...)
		}
		b = append(b, `,"next":`...)
		return strconv.AppendInt(b, next, 10)
	})
}

// globalPage reads a page of events in global order after the position of
// the parameter after (or, for a backward read, before the parameter
// before's, the end when absent) and writes it with the position to read
// from next.
func (h *Handler[TTx]) globalPage(w http.ResponseWriter, r *http.Request, backward bool, read func(after meowmx.Position, limit int, types []string) ([]meowmx.RecordedEvent, error)) {
	h.deadline(w)
	q := &query{values: r.URL.Query()}
	after := q.position("after")
	if backward {
		after = meowmx.End
		if q.values.Has("before") {
			after = q.position("before")
		}
	}
	limit := h.limit(q)
	types := q.list("types")
	if q.err != nil {
		h.fail(w, r, q.err)
		return
	}
	events, err := read(after, limit, types)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	next := after
	if len(events) > 0 {
		next = events[len(events)-1].Position
	}
	writeEvents(w, http.StatusOK, events, func(b []byte) []byte {
		b = append(b, `,"next":"`...)
		b = append(b, next.String()...)
		b = append(b, `","more":`...)
		return strconv.AppendBool(b, len(events) == limit)
	})
}

// readAll reads the log: GET /events?after=&limit=&types=.
func (h *Handler[TTx]) readAll(w http.ResponseWriter, r *http.Request) {
	h.globalPage(w, r, false, func(after meowmx.Position, limit int, types []string) ([]meowmx.RecordedEvent, error) {
		return h.store.ReadAll(r.Context(), after, &meowmx.ReadOpts{Limit: limit, Types: types})
	})
}

// readCategory reads a category: GET /categories/{category}/events?after=&limit=&types=.
func (h *Handler[TTx]) readCategory(w http.ResponseWriter, r *http.Request) {
	category := r.PathValue("category")
	h.globalPage(w, r, false, func(after meowmx.Position, limit int, types []string) ([]meowmx.RecordedEvent, error) {
		return h.store.ReadCategory(r.Context(), category, after, &meowmx.ReadOpts{Limit: limit, Types: types})
	})
}

// queryOf reads a query from the request: the parameter query, a JSON
// Query ({"items":[{"types":[...],"tags":[...]}]}), or the parameters
// types and tags for a query of one item.
func queryOf(q *query) meowmx.Query {
	var query meowmx.Query
	if decodeParam(q, "query", &query, `{"items":[{"types":[...],"tags":[...]}]}`) {
		if q.err == nil && len(query.Items) == 0 {
			q.err = badRequest("query: no items (a query without items matches no event)")
		}
		return query
	}
	types, tags := q.list("types"), q.list("tags")
	if len(types) == 0 && len(tags) == 0 {
		q.err = badRequest("no query: give query (JSON), or types and tags")
	}
	return meowmx.Query{Items: []meowmx.QueryItem{{Types: types, Tags: tags}}}
}

// readQuery reads the events matching a query: GET /query?query=&after=&limit=
// (or types= and tags= for one item), or with backward=true the newest
// first, before= a position.
func (h *Handler[TTx]) readQuery(w http.ResponseWriter, r *http.Request) {
	q := &query{values: r.URL.Query()}
	query := queryOf(q)
	backward := q.bool("backward")
	if q.err != nil {
		h.fail(w, r, q.err)
		return
	}
	h.globalPage(w, r, backward, func(after meowmx.Position, limit int, _ []string) ([]meowmx.RecordedEvent, error) {
		return h.store.ReadQuery(r.Context(), query, after, &meowmx.ReadQueryOpts{Limit: limit, Backward: backward})
	})
}

// listStreams lists streams: GET /streams?category=&after_category=&after_id=&limit=.
func (h *Handler[TTx]) listStreams(w http.ResponseWriter, r *http.Request) {
	listing(h, w, r, "streams", func(q *query, limit int) ([]meowmx.StreamInfo, error) {
		return h.store.Streams(r.Context(), &meowmx.StreamsOpts{
			Category: q.values.Get("category"), Limit: limit,
			After: meowmx.NewStream(q.values.Get("after_category"), q.values.Get("after_id")),
		})
	})
}

// listCategories lists categories: GET /categories?after=&limit=.
func (h *Handler[TTx]) listCategories(w http.ResponseWriter, r *http.Request) {
	listing(h, w, r, "categories", func(q *query, limit int) ([]meowmx.CategoryInfo, error) {
		return h.store.Categories(r.Context(), &meowmx.CategoriesOpts{After: q.values.Get("after"), Limit: limit})
	})
}

// listing writes a page that read returns as {key: [...], "more": bool}.
func listing[TTx, T any](h *Handler[TTx], w http.ResponseWriter, r *http.Request, key string, read func(q *query, limit int) ([]T, error)) {
	h.deadline(w)
	q := &query{values: r.URL.Query()}
	limit := h.limit(q)
	if q.err != nil {
		h.fail(w, r, q.err)
		return
	}
	items, err := read(q, limit)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	if items == nil {
		items = []T{}
	}
	writeJSON(w, http.StatusOK, map[string]any{key: items, "more": len(items) == limit})
}
