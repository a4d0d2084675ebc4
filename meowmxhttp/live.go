package meowmxhttp

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"strconv"
	"time"

	"github.com/meowmx/meowmx"
)

// Live tails are Server-Sent Events: each event is a message whose data is
// the event's JSON and whose id is its position (its version for a
// stream's tail). A client that reconnects sends the last id it received
// as Last-Event-ID (browsers' EventSource does it by itself) and the tail
// resumes right after it: nothing is lost or sent twice. A failure after
// the first event ends the stream with an event named meowmx-error whose
// data is the error's JSON. A browser's EventSource cannot send an
// Authorization header: behind tokens, tail from a client that can. Global
// tails (the log, a category, a query) send events in global order, below
// the visibility horizon like ReadAll, so a late commit is never skipped.

// livePage is how many events a tail reads at once.
const livePage = 500

// chaseFirst is the first wait after a wake-up that found nothing; each
// next one doubles, up to chaseMax (or the poll interval when shorter).
// What a wake-up did not find was committed behind the visibility horizon,
// and shows once the transaction holding the horizon ends, however long
// that takes: a tail keeps looking at least once a second until it does,
// rather than waiting twice as long as the horizon was held.
const (
	chaseFirst = 10 * time.Millisecond
	chaseMax   = time.Second
)

// nextLook returns how long a tail waits before it reads again, and the
// chase after that: the poll interval, or the chase after a wake-up that
// found nothing (empty, with chase set), doubled for the next time.
func nextLook(poll, chase time.Duration, empty bool) (wait, next time.Duration) {
	if !empty || chase == 0 {
		return poll, 0
	}
	return min(poll, chase), min(2*chase, chaseMax, poll)
}

// tail is what a live tail reads.
type tail struct {
	// read returns the events after the cursor, at most limit, and moves
	// the cursor past them.
	read func(ctx context.Context, limit int) ([]meowmx.RecordedEvent, error)
	// id is the SSE id of an event: what Last-Event-ID gives back.
	id func(meowmx.RecordedEvent) string
	// categories are those whose appends wake the tail (none: all).
	categories []string
}

// resume returns the Last-Event-ID header, or else the parameter name.
func resume(r *http.Request, name string) string {
	if id := r.Header.Get("Last-Event-ID"); id != "" {
		return id
	}
	return r.URL.Query().Get(name)
}

func positionID(e meowmx.RecordedEvent) string { return e.Position.String() }

// globalTail tails what read returns after a position, from the request's
// Last-Event-ID or after parameter.
func globalTail(r *http.Request, categories []string, read func(ctx context.Context, after meowmx.Position, limit int) ([]meowmx.RecordedEvent, error)) (*tail, error) {
	after, err := parsePosition(resume(r, "after"))
	if err != nil {
		return nil, err
	}
	return &tail{
		id: positionID, categories: categories,
		read: func(ctx context.Context, limit int) ([]meowmx.RecordedEvent, error) {
			events, err := read(ctx, after, limit)
			if len(events) > 0 {
				after = events[len(events)-1].Position
			}
			return events, err
		},
	}, nil
}

// liveAll tails the log: GET /events/live?after=&types=.
func (h *Handler[TTx]) liveAll(w http.ResponseWriter, r *http.Request) {
	q := &query{values: r.URL.Query()}
	types := q.list("types")
	t, err := globalTail(r, nil, func(ctx context.Context, after meowmx.Position, limit int) ([]meowmx.RecordedEvent, error) {
		return h.store.ReadAll(ctx, after, &meowmx.ReadOpts{Limit: limit, Types: types})
	})
	h.serveTail(w, r, t, err)
}

// liveCategory tails a category: GET /categories/{category}/live?after=&types=.
func (h *Handler[TTx]) liveCategory(w http.ResponseWriter, r *http.Request) {
	category := r.PathValue("category")
	q := &query{values: r.URL.Query()}
	types := q.list("types")
	t, err := globalTail(r, []string{category}, func(ctx context.Context, after meowmx.Position, limit int) ([]meowmx.RecordedEvent, error) {
		return h.store.ReadCategory(ctx, category, after, &meowmx.ReadOpts{Limit: limit, Types: types})
	})
	h.serveTail(w, r, t, err)
}

// liveQuery tails a query: GET /query/live?query=&after= (or types= and tags=).
func (h *Handler[TTx]) liveQuery(w http.ResponseWriter, r *http.Request) {
	q := &query{values: r.URL.Query()}
	query := queryOf(q)
	if q.err != nil {
		h.serveTail(w, r, nil, q.err)
		return
	}
	t, err := globalTail(r, nil, func(ctx context.Context, after meowmx.Position, limit int) ([]meowmx.RecordedEvent, error) {
		return h.store.ReadQuery(ctx, query, after, &meowmx.ReadQueryOpts{Limit: limit})
	})
	h.serveTail(w, r, t, err)
}

// liveStream tails a stream from a version: GET
// /streams/{category}/{id}/live?from=, Last-Event-ID being the last
// version received. A stream with no events yet is waited for.
func (h *Handler[TTx]) liveStream(w http.ResponseWriter, r *http.Request) {
	stream := meowmx.NewStream(r.PathValue("category"), r.PathValue("id"))
	var from int64
	if id := r.Header.Get("Last-Event-ID"); id != "" {
		last, err := strconv.ParseInt(id, 10, 64)
		if err != nil || last < 0 {
			h.serveTail(w, r, nil, badRequest("Last-Event-ID %q: want the version of the last event received", id))
			return
		}
		from = last + 1
	} else {
		q := &query{values: r.URL.Query()}
		from = q.int("from", 0, 0, 1<<62)
		if q.err != nil {
			h.serveTail(w, r, nil, q.err)
			return
		}
	}
	h.serveTail(w, r, &tail{
		id:         func(e meowmx.RecordedEvent) string { return strconv.FormatInt(e.Version, 10) },
		categories: []string{stream.Category},
		read: func(ctx context.Context, limit int) ([]meowmx.RecordedEvent, error) {
			events, err := h.store.ReadStream(ctx, stream, &meowmx.ReadStreamOpts{From: from, Limit: limit})
			if len(events) > 0 {
				from = events[len(events)-1].Version + 1
			}
			return events, err
		},
	}, nil)
}

// serveTail streams t's events until the client goes or the server stops.
// An error before the first byte (bad parameters) is a JSON error
// response; a later one ends the stream with an "error" event.
func (h *Handler[TTx]) serveTail(w http.ResponseWriter, r *http.Request, t *tail, err error) {
	if err != nil {
		h.fail(w, r, err)
		return
	}
	select {
	case <-h.closing:
		w.Header().Set("Retry-After", retryAfterSecondsFor)
		writeError(w, http.StatusServiceUnavailable, "unavailable", "the server is stopping")
		return
	default:
	}
	ctx := r.Context()
	// Registered before the first read, so that no append between the two
	// goes unnoticed.
	changes, stop := h.store.Changes(t.categories...)
	defer stop()
	// The first page is read before answering, so that a bad query or an
	// unreachable database is an error response.
	events, err := t.read(ctx, livePage)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	rc := http.NewResponseController(w)
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	if r.Method == http.MethodHead {
		return
	}
	// A tail lasts: the server's read timeout, meant for request bodies,
	// must not end it.
	_ = rc.SetReadDeadline(time.Time{})
	var buf bytes.Buffer
	buf.WriteString("retry: 1000\n\n")
	send := func() bool {
		_ = rc.SetWriteDeadline(time.Now().Add(h.cfg.WriteTimeout))
		if _, err := w.Write(buf.Bytes()); err != nil {
			return false
		}
		buf.Reset()
		return rc.Flush() == nil
	}
	heartbeat := time.NewTicker(h.cfg.Heartbeat)
	defer heartbeat.Stop()
	var chase time.Duration // the next look after a fruitless wake-up; 0: none
	for {
		select {
		case <-h.closing:
			return
		default:
		}
		for i := range events {
			buf.WriteString("id: ")
			buf.WriteString(t.id(events[i]))
			buf.WriteString("\ndata: ")
			buf.Write(events[i].AppendJSON(buf.AvailableBuffer()))
			buf.WriteString("\n\n")
		}
		if buf.Len() > 0 {
			if !send() {
				return
			}
			heartbeat.Reset(h.cfg.Heartbeat)
		}
		if len(events) < livePage {
			// After a wake-up that found nothing, look again soon: the
			// commit may have been behind the visibility horizon (a
			// transaction anywhere in the cluster still running).
			var wait time.Duration
			wait, chase = nextLook(h.cfg.PollInterval, chase, len(events) == 0)
			poll := time.NewTimer(wait)
			waiting := true
			for waiting {
				select {
				case <-ctx.Done():
					poll.Stop()
					return
				case <-h.closing:
					poll.Stop()
					return
				case <-changes:
					waiting = false
					chase = chaseFirst
				case <-poll.C:
					waiting = false
				case <-heartbeat.C:
					buf.WriteString(": ping\n\n")
					if !send() {
						poll.Stop()
						return
					}
				}
			}
			poll.Stop()
		}
		events, err = t.read(ctx, livePage)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			h.logFailure(r, err)
			_, detail := classify(err)
			data, _ := json.Marshal(errorBody{Error: detail})
			buf.WriteString("event: meowmx-error\ndata: ")
			buf.Write(data)
			buf.WriteString("\n\n")
			send()
			return
		}
	}
}
