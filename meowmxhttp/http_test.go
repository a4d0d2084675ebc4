package meowmxhttp_test

import (
	"bufio"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/meowmx/meowmx"
	"github.com/meowmx/meowmx/internal/testdb"
	"github.com/meowmx/meowmx/meowmxhttp"
	"github.com/meowmx/meowmx/meowmxpgxv5"
	"github.com/meowmx/meowmx/meowmxsqlite"
)

func TestMain(m *testing.M) { testdb.Main(m) }

// api is a server on a store, and the store for the test's own checks.
type api[TTx any] struct {
	t     *testing.T
	url   string
	store *meowmx.Store[TTx]
	token string
}

func serve[TTx any](t *testing.T, store *meowmx.Store[TTx], cfg *meowmxhttp.Config) *api[TTx] {
	t.Helper()
	if cfg == nil {
		cfg = &meowmxhttp.Config{}
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	h, err := meowmxhttp.New(store, cfg)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return &api[TTx]{t: t, url: srv.URL, store: store}
}

// do sends a request and decodes the JSON response into out (when not nil),
// returning the status.
func (a *api[TTx]) do(method, path string, body any, header http.Header, out any) int {
	a.t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	default:
		data, err := json.Marshal(b)
		if err != nil {
			a.t.Fatal(err)
		}
		rd = strings.NewReader(string(data))
	}
	req, err := http.NewRequest(method, a.url+path, rd)
	if err != nil {
		a.t.Fatal(err)
	}
	if rd != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	for k, v := range header {
		if k == "Host" {
			req.Host = v[0]
			continue
		}
		req.Header[k] = v
	}
	if a.token != "" && req.Header.Get("Authorization") == "" {
		req.Header.Set("Authorization", "Bearer "+a.token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		a.t.Fatal(err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		a.t.Fatal(err)
	}
	if out != nil {
		if err := json.Unmarshal(data, out); err != nil {
			a.t.Fatalf("%s %s: %d, body %q: %v", method, path, resp.StatusCode, data, err)
		}
	}
	return resp.StatusCode
}

type apiError struct {
	Error struct {
		Code     string                `json:"code"`
		Message  string                `json:"message"`
		Expected string                `json:"expected_version"`
		Actual   *int64                `json:"actual_version"`
		Event    *meowmx.RecordedEvent `json:"event"`
	} `json:"error"`
}

// wantError sends a request that must fail with status and code.
func (a *api[TTx]) wantError(method, path string, body any, header http.Header, status int, code string) apiError {
	a.t.Helper()
	var e apiError
	if got := a.do(method, path, body, header, &e); got != status || e.Error.Code != code {
		a.t.Fatalf("%s %s: %d %q (%s), want %d %q", method, path, got, e.Error.Code, e.Error.Message, status, code)
	}
	return e
}

type appended struct {
	Events   []meowmx.RecordedEvent `json:"events"`
	Position string                 `json:"position"`
}

type globalPage struct {
	Events []meowmx.RecordedEvent `json:"events"`
	Next   string                 `json:"next"`
	More   bool                   `json:"more"`
}

type streamPage struct {
	Events []meowmx.RecordedEvent `json:"events"`
	Next   *int64                 `json:"next"`
}

func body(expected any, events ...map[string]any) map[string]any {
	b := map[string]any{"events": events}
	if expected != nil {
		b["expected_version"] = expected
	}
	return b
}

func event(typ string, data string, tags ...string) map[string]any {
	e := map[string]any{"type": typ, "data": json.RawMessage(data)}
	if len(tags) > 0 {
		e["tags"] = tags
	}
	return e
}

func pgStore(t *testing.T, cfg *meowmx.Config) *meowmx.Store[pgx.Tx] {
	t.Helper()
	cfg.Schema = testdb.SchemaName(t)
	cfg.Logger = slog.New(slog.DiscardHandler)
	store, err := meowmx.New(meowmxpgxv5.New(testdb.Pool(t)), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	return store
}

func liteStore(t *testing.T, cfg *meowmx.Config) *meowmx.Store[*sql.Tx] {
	t.Helper()
	cfg.Logger = slog.New(slog.DiscardHandler)
	store, err := meowmx.New(meowmxsqlite.New(testdb.SQLite(t)), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	return store
}

func TestAPIPostgres(t *testing.T) {
	t.Parallel()
	testAPI(t, func(cfg *meowmx.Config) *meowmx.Store[pgx.Tx] { return pgStore(t, cfg) })
}

func TestAPISQLite(t *testing.T) {
	t.Parallel()
	testAPI(t, func(cfg *meowmx.Config) *meowmx.Store[*sql.Tx] { return liteStore(t, cfg) })
}

func testAPI[TTx any](t *testing.T, newStore func(*meowmx.Config) *meowmx.Store[TTx]) {
	ctx := context.Background()
	store := newStore(&meowmx.Config{MaxEventSize: 2000})
	a := serve(t, store, &meowmxhttp.Config{MaxBodyBytes: 64 << 10, PollInterval: 50 * time.Millisecond})

	// Health, the OpenAPI document, and readiness once migrated.
	if got := a.do("GET", "/healthz", nil, nil, nil); got != 200 {
		t.Fatalf("healthz: %d", got)
	}
	var doc struct {
		OpenAPI string `json:"openapi"`
	}
	if got := a.do("GET", "/openapi.json", nil, nil, &doc); got != 200 || doc.OpenAPI == "" {
		t.Fatalf("openapi.json: %d %+v", got, doc)
	}
	a.wantError("GET", "/readyz", nil, nil, 503, "schema_missing")
	if err := store.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	if got := a.do("GET", "/readyz", nil, nil, nil); got != 200 {
		t.Fatalf("readyz after Migrate: %d", got)
	}

	// Appends: the four modes, the header, idempotent retries.
	var first appended
	if got := a.do("POST", "/streams/order/1", body("no_stream", event("Placed", `{"total":42}`, "customer:c1")), nil, &first); got != 201 || len(first.Events) != 1 {
		t.Fatalf("append: %d %+v", got, first)
	}
	if e := first.Events[0]; e.Stream != meowmx.NewStream("order", "1") || e.Version != 0 || string(e.Data) != `{"total":42}` || e.Tags[0] != "customer:c1" || first.Position != e.Position.String() {
		t.Fatalf("appended %+v", first)
	}
	var second appended
	if got := a.do("POST", "/streams/order/1", body(nil, event("Paid", `{}`)), http.Header{"Meowmx-Expected-Version": {"0"}}, &second); got != 201 || second.Events[0].Version != 1 {
		t.Fatalf("append with the header: %d %+v", got, second)
	}
	if got := a.do("POST", "/streams/order/1", body("exists", event("Noted", `{}`)), nil, nil); got != 201 {
		t.Fatalf("append to an existing stream: %d", got)
	}
	if got := a.do("POST", "/streams/order/1", body(2, event("Shipped", `{}`)), nil, nil); got != 201 {
		t.Fatalf("append after version 2 (a JSON number): %d", got)
	}
	retry := body("any", map[string]any{"id": "0195c2a0-0000-7000-8000-000000000001", "type": "Opened", "data": json.RawMessage(`{}`)})
	var once, again appended
	a.do("POST", "/streams/order/2", retry, nil, &once)
	if got := a.do("POST", "/streams/order/2", retry, nil, &again); got != 201 || again.Events[0].Position != once.Events[0].Position {
		t.Fatalf("idempotent retry: %d, %+v then %+v", got, once, again)
	}

	// Every error code of appends.
	e := a.wantError("POST", "/streams/order/1", body(1, event("Late", `{}`)), nil, 409, "version_conflict")
	if e.Error.Expected != "version 1" || e.Error.Actual == nil || *e.Error.Actual != 3 {
		t.Fatalf("conflict detail: %+v", e.Error)
	}
	a.wantError("POST", "/streams/order/9", body("exists", event("A", `{}`)), nil, 409, "version_conflict")
	a.wantError("POST", "/streams/order/3", retry, nil, 409, "duplicate_event_id")
	a.wantError("POST", "/streams/order/1", `{"events":[`, nil, 400, "invalid_input")
	a.wantError("POST", "/streams/order/1", ``, nil, 400, "invalid_input")
	a.wantError("POST", "/streams/order/1", `{"events":[{"type":"A","data":{}}],"colour":"red"}`, nil, 400, "invalid_input")
	a.wantError("POST", "/streams/order/1", `{"events":[]}`, nil, 400, "invalid_input")
	a.wantError("POST", "/streams/order/1", `{"events":[{"type":"A"}]}`, nil, 400, "invalid_input")
	a.wantError("POST", "/streams/order/1", body("maybe", event("A", `{}`)), nil, 400, "invalid_input")
	a.wantError("POST", "/streams/order/1", body(-4, event("A", `{}`)), nil, 400, "invalid_input")
	a.wantError("POST", "/streams/order/1", body("any", event("A", `{}`)), http.Header{"Meowmx-Expected-Version": {"2"}}, 400, "invalid_input")
	a.wantError("POST", "/streams/or-der/1", body(nil, event("A", `{}`)), nil, 400, "invalid_input")
	a.wantError("POST", "/streams/order/1", body(nil, event("A", `{"x":"`+strings.Repeat("y", 3000)+`"}`)), nil, 413, "too_large")
	a.wantError("POST", "/streams/order/1", body(nil, event("A", `{"x":"`+strings.Repeat("y", 70<<10)+`"}`)), nil, 413, "too_large")
	a.wantError("GET", "/nothing/here", nil, nil, 404, "not_found")
	a.wantError("DELETE", "/streams/order/1", nil, nil, 405, "method_not_allowed")
	a.wantError("POST", "/streams/order/1", body(nil, event("A", `{}`)), http.Header{"Content-Type": {"text/plain"}}, 415, "unsupported_media_type")
	a.wantError("GET", "/query?query="+url.QueryEscape(`{"items":[]}`), nil, nil, 400, "invalid_input")
	a.wantError("GET", "/query?query="+url.QueryEscape(`{"item":[{"types":["A"]}]}`), nil, nil, 400, "invalid_input")
	a.wantError("GET", "/events?types="+strings.Repeat("T,", 65), nil, nil, 400, "invalid_input")
	// Without tokens, only this machine's callers: not a page of another
	// site, nor a name rebound to 127.0.0.1.
	a.wantError("POST", "/streams/order/1", body(nil, event("A", `{}`)), http.Header{"Origin": {"https://evil.example"}}, 403, "forbidden")
	a.wantError("GET", "/events", nil, http.Header{"Host": {"rebound.example:80"}}, 403, "forbidden")
	if got := a.do("GET", "/events", nil, http.Header{"Origin": {a.url}}, nil); got != 200 {
		t.Fatalf("a request from the server's own origin: %d", got)
	}

	// Conditional appends (DCB), on a stream and without one.
	cond := func(after string) map[string]any {
		return map[string]any{"fail_if_events_match": map[string]any{"items": []any{map[string]any{"tags": []string{"customer:c1"}}}}, "after": after}
	}
	b := body(nil, event("Registered", `{}`, "customer:c1"))
	b["condition"] = cond("")
	e = a.wantError("POST", "/events", b, nil, 409, "condition_failed")
	if e.Error.Event == nil || e.Error.Event.ID != first.Events[0].ID {
		t.Fatalf("condition_failed names %+v, want the first event", e.Error.Event)
	}
	b["condition"] = cond(first.Position)
	var registered appended
	if got := a.do("POST", "/events", b, nil, &registered); got != 201 || registered.Events[0].Stream.Category != meowmx.EventsCategory {
		t.Fatalf("conditional append after the match: %d %+v", got, registered)
	}
	b = body(nil, event("Again", `{}`, "customer:c1"))
	b["condition"] = cond(first.Position)
	a.wantError("POST", "/streams/order/5", b, nil, 409, "condition_failed")
	b["condition"] = map[string]any{"fail_if_events_match": map[string]any{"items": []any{}}, "after": "12"}
	a.wantError("POST", "/events", b, nil, 400, "invalid_input")
	a.wantError("POST", "/events", body(1, event("A", `{}`)), nil, 400, "invalid_input")

	// Reads, once every event appended is visible to global reads (a
	// transaction elsewhere in the cluster can hold the horizon back).
	visibleLog(t, store)
	var sp streamPage
	if got := a.do("GET", "/streams/order/1?limit=2", nil, nil, &sp); got != 200 || len(sp.Events) != 2 || sp.Next == nil || *sp.Next != 2 {
		t.Fatalf("stream page: %d %+v", got, sp)
	}
	if got := a.do("GET", "/streams/order/1?from=2", nil, nil, &sp); got != 200 || len(sp.Events) != 2 || sp.Next != nil {
		t.Fatalf("stream's last page: %d %+v", got, sp)
	}
	if got := a.do("GET", "/streams/order/1?backward=true&limit=1", nil, nil, &sp); got != 200 || sp.Events[0].Version != 3 || *sp.Next != 2 {
		t.Fatalf("backward: %d %+v", got, sp)
	}
	if got := a.do("GET", "/streams/order/1?from=50", nil, nil, &sp); got != 200 || len(sp.Events) != 0 {
		t.Fatalf("past the end: %d %+v", got, sp)
	}
	a.wantError("GET", "/streams/order/404", nil, nil, 404, "stream_not_found")
	a.wantError("GET", "/streams/order/1?limit=0", nil, nil, 400, "invalid_input")
	a.wantError("GET", "/streams/order/1?limit=1000000", nil, nil, 400, "invalid_input")
	a.wantError("GET", "/streams/order/1?backward=perhaps", nil, nil, 400, "invalid_input")
	a.wantError("GET", "/events?after=nope", nil, nil, 400, "invalid_input")
	a.wantError("GET", "/query", nil, nil, 400, "invalid_input")
	a.wantError("GET", "/query?query=%7B", nil, nil, 400, "invalid_input")

	log := visibleLog(t, store)
	var got []meowmx.RecordedEvent
	after := ""
	for {
		var p globalPage
		if code := a.do("GET", "/events?limit=2&after="+url.QueryEscape(after), nil, nil, &p); code != 200 {
			t.Fatalf("page after %q: %d", after, code)
		}
		got = append(got, p.Events...)
		after = p.Next
		if !p.More {
			break
		}
	}
	if len(got) != len(log) || got[len(got)-1].ID != log[len(log)-1].ID {
		t.Fatalf("paged %d events, the log holds %d", len(got), len(log))
	}
	var cp globalPage
	if code := a.do("GET", "/categories/order/events?types=Placed,Paid", nil, nil, &cp); code != 200 || len(cp.Events) != 2 || cp.More {
		t.Fatalf("category with types: %d %+v", code, cp)
	}
	var qp globalPage
	if code := a.do("GET", "/query?tags=customer:c1", nil, nil, &qp); code != 200 || len(qp.Events) != 2 {
		t.Fatalf("query by tag: %d %+v", code, qp)
	}
	q := url.QueryEscape(`{"items":[{"types":["Registered"]},{"types":["Opened"]}]}`)
	if code := a.do("GET", "/query?query="+q, nil, nil, &qp); code != 200 || len(qp.Events) != 2 || qp.Events[0].Type != "Opened" {
		t.Fatalf("query of two items: %d %+v", code, qp)
	}
	// Backward: the newest first, then before a position.
	everything := url.QueryEscape(`{"items":[{}]}`)
	if code := a.do("GET", "/query?backward=true&limit=2&query="+everything, nil, nil, &qp); code != 200 || len(qp.Events) != 2 ||
		qp.Events[0].Position != log[len(log)-1].Position || qp.Events[1].Position != log[len(log)-2].Position || !qp.More {
		t.Fatalf("query backward: %d %+v", code, qp)
	}
	if code := a.do("GET", "/query?backward=true&limit=1&query="+everything+"&before="+qp.Next, nil, nil, &qp); code != 200 || len(qp.Events) != 1 ||
		qp.Events[0].Position != log[len(log)-3].Position {
		t.Fatalf("query backward before %s: %d %+v", log[len(log)-2].Position, code, qp)
	}
	var streams struct {
		Streams []struct {
			Category string `json:"category"`
			StreamID string `json:"stream_id"`
			Version  int64  `json:"version"`
		} `json:"streams"`
	}
	if code := a.do("GET", "/streams?category=order", nil, nil, &streams); code != 200 || len(streams.Streams) != 2 || streams.Streams[0].Version != 3 {
		t.Fatalf("streams: %d %+v", code, streams)
	}
	var categories struct {
		Categories []struct {
			Category string `json:"category"`
			Events   int64  `json:"events"`
		} `json:"categories"`
	}
	if code := a.do("GET", "/categories", nil, nil, &categories); code != 200 || len(categories.Categories) != 2 {
		t.Fatalf("categories: %d %+v", code, categories)
	}

	// Subscriptions: unknown ones, then one with a parked event.
	a.wantError("GET", "/subscriptions/nope", nil, nil, 404, "subscription_not_found")
	a.wantError("GET", "/subscriptions/nope/parked", nil, nil, 404, "subscription_not_found")
	a.wantError("POST", "/subscriptions/nope/replay", nil, nil, 404, "subscription_not_found")
	a.wantError("POST", "/subscriptions/nope/reset", map[string]string{"to": "start"}, nil, 404, "subscription_not_found")
	a.wantError("POST", "/subscriptions/nope/reset", map[string]string{"to": "sideways"}, nil, 400, "invalid_input")
	handled := make(chan meowmx.RecordedEvent, 100)
	sub, err := store.Subscribe(meowmx.SubscriptionConfig[TTx]{
		Name: "audit", Categories: []string{"order"}, MaxAttempts: 1, Logger: slog.New(slog.DiscardHandler),
		RetryBackoff: time.Millisecond,
		Handler: meowmx.HandleEach(func(_ context.Context, _ TTx, e meowmx.RecordedEvent) error {
			if e.Type == "Paid" {
				return fmt.Errorf("no payments today")
			}
			handled <- e
			return nil
		}),
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := sub.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer sub.Stop(ctx)
	for range 4 {
		testdb.Recv(t, handled, "the events but the payment")
	}
	var status struct {
		Partitions []struct {
			Name   string `json:"name"`
			Lag    int64  `json:"lag"`
			Parked int64  `json:"parked"`
		} `json:"partitions"`
	}
	testdb.Eventually(t, func() (bool, string) {
		a.do("GET", "/subscriptions/audit", nil, nil, &status)
		return len(status.Partitions) == 1 && status.Partitions[0].Lag == 0 && status.Partitions[0].Parked == 1, fmt.Sprintf("%+v", status)
	})
	var parked struct {
		Parked []struct {
			EventID  string `json:"event_id"`
			Type     string `json:"type"`
			Attempts int    `json:"attempts"`
			Error    string `json:"error"`
		} `json:"parked"`
	}
	if code := a.do("GET", "/subscriptions/audit/parked", nil, nil, &parked); code != 200 || len(parked.Parked) != 1 || parked.Parked[0].Type != "Paid" || !strings.Contains(parked.Parked[0].Error, "no payments") {
		t.Fatalf("parked: %d %+v", code, parked)
	}
	var replay struct {
		Replaying int `json:"replaying"`
	}
	if code := a.do("POST", "/subscriptions/audit/replay", nil, nil, &replay); code != 200 || replay.Replaying != 1 {
		t.Fatalf("replay: %d %+v", code, replay)
	}
	if code := a.do("GET", "/subscriptions", nil, nil, &status); code != 200 || len(status.Partitions) != 1 {
		t.Fatalf("subscriptions: %d %+v", code, status)
	}
	if code := a.do("POST", "/subscriptions/audit/reset", map[string]string{"to": "end"}, nil, &status); code != 200 || status.Partitions[0].Lag != 0 {
		t.Fatalf("reset to the end: %d %+v", code, status)
	}

	// A closed store: 503.
	store.Close()
	a.wantError("GET", "/events", nil, nil, 503, "unavailable")
	a.wantError("GET", "/readyz", nil, nil, 503, "unavailable")
}

// visibleLog waits until global reads see every event appended so far
// (the last one in each stream's order), and returns the log.
func visibleLog[TTx any](t *testing.T, store *meowmx.Store[TTx]) []meowmx.RecordedEvent {
	t.Helper()
	ctx := context.Background()
	var log []meowmx.RecordedEvent
	testdb.Eventually(t, func() (bool, string) {
		var err error
		if log, err = store.ReadAll(ctx, meowmx.Start, &meowmx.ReadOpts{Limit: 10_000}); err != nil {
			t.Fatal(err)
		}
		streams, err := store.Streams(ctx, &meowmx.StreamsOpts{Limit: 10_000})
		if err != nil {
			t.Fatal(err)
		}
		total := int64(0)
		for _, s := range streams {
			total += s.Version + 1
		}
		return int64(len(log)) == total, fmt.Sprintf("global reads see %d of %d events", len(log), total)
	})
	return log
}

// sse is a live tail's client: its events on a channel until closed.
type sse struct {
	events chan sseEvent
	resp   *http.Response
	done   chan struct{}
}

type sseEvent struct {
	id, name string
	event    meowmx.RecordedEvent
}

func openSSE(t *testing.T, url, lastID, token string) *sse {
	t.Helper()
	req, err := http.NewRequest("GET", url, nil)
	if err != nil {
		t.Fatal(err)
	}
	if lastID != "" {
		req.Header.Set("Last-Event-ID", lastID)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/event-stream" {
		data, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		t.Fatalf("GET %s: %d %s", url, resp.StatusCode, data)
	}
	s := &sse{events: make(chan sseEvent, 1000), resp: resp, done: make(chan struct{})}
	go func() {
		defer close(s.done)
		sc := bufio.NewScanner(resp.Body)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		var ev sseEvent
		var data string
		for sc.Scan() {
			line := sc.Text()
			switch {
			case line == "":
				if data != "" {
					if ev.name == "" {
						if err := json.Unmarshal([]byte(data), &ev.event); err != nil {
							ev.name = "undecodable: " + err.Error()
						}
					}
					s.events <- ev
				}
				ev, data = sseEvent{}, ""
			case strings.HasPrefix(line, "id: "):
				ev.id = strings.TrimPrefix(line, "id: ")
			case strings.HasPrefix(line, "event: "):
				ev.name = strings.TrimPrefix(line, "event: ")
			case strings.HasPrefix(line, "data: "):
				data = strings.TrimPrefix(line, "data: ")
			}
		}
	}()
	t.Cleanup(s.close)
	return s
}

func (s *sse) close() {
	s.resp.Body.Close()
	<-s.done
}

func TestLivePostgres(t *testing.T) {
	t.Parallel()
	testLive(t, pgStore(t, &meowmx.Config{}))
}

func TestLiveSQLite(t *testing.T) {
	t.Parallel()
	testLive(t, liteStore(t, &meowmx.Config{}))
}

// testLive: each live tail receives what is appended after it connects,
// and one that reconnects with the Last-Event-ID it received last gets
// exactly what followed, nothing twice, nothing lost.
func testLive[TTx any](t *testing.T, store *meowmx.Store[TTx]) {
	ctx := context.Background()
	if err := store.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	// An hour between polls: a tail must be woken by the appends (and look
	// again shortly when what woke it is still behind the horizon).
	a := serve(t, store, &meowmxhttp.Config{PollInterval: time.Hour, Heartbeat: time.Hour})
	appendN := func(stream meowmx.Stream, n int) []meowmx.RecordedEvent {
		var out []meowmx.RecordedEvent
		for i := range n {
			rec, err := store.Append(ctx, stream, meowmx.Any, meowmx.Event{Type: "Step", Data: json.RawMessage(fmt.Sprintf(`{"i":%d}`, i)), Tags: []string{"tag:" + stream.ID}})
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, rec...)
		}
		return out
	}
	appendN(meowmx.NewStream("order", "1"), 3)
	tails := []struct {
		name, path string
		id         func(meowmx.RecordedEvent) string
	}{
		{"log", "/events/live", func(e meowmx.RecordedEvent) string { return e.Position.String() }},
		{"category", "/categories/order/live", func(e meowmx.RecordedEvent) string { return e.Position.String() }},
		{"query", "/query/live?tags=tag:1", func(e meowmx.RecordedEvent) string { return e.Position.String() }},
		{"stream", "/streams/order/1/live", func(e meowmx.RecordedEvent) string { return fmt.Sprint(e.Version) }},
	}
	for _, tl := range tails {
		t.Run(tl.name, func(t *testing.T) {
			s := openSSE(t, a.url+tl.path, "", "")
			var seen []meowmx.RecordedEvent
			expect := func(want []meowmx.RecordedEvent, from *sse) {
				t.Helper()
				for _, w := range want {
					got := testdb.Recv(t, from.events, "the tail's next event")
					if got.name != "" || got.event.ID != w.ID || got.id != tl.id(w) {
						t.Fatalf("received %q %s (id %s), want %s@%d (id %s)", got.name, got.event.ID, got.id, w.Stream, w.Version, tl.id(w))
					}
					seen = append(seen, got.event)
				}
			}
			// What was there, then what comes while connected: woken by
			// the append (the poll interval is an hour).
			all := visibleLog(t, store)
			var mine []meowmx.RecordedEvent
			for _, e := range all {
				if e.Stream == meowmx.NewStream("order", "1") {
					mine = append(mine, e)
				}
			}
			expect(mine, s)
			expect(appendN(meowmx.NewStream("order", "1"), 2), s)
			// Disconnected: what is appended meanwhile comes on
			// reconnecting with the last id received, and nothing else.
			s.close()
			missed := appendN(meowmx.NewStream("order", "1"), 3)
			again := openSSE(t, a.url+tl.path, tl.id(seen[len(seen)-1]), "")
			expect(missed, again)
			expect(appendN(meowmx.NewStream("order", "1"), 1), again)
			select {
			case extra := <-again.events:
				t.Fatalf("an event more than appended: %+v", extra)
			default:
			}
		})
	}
	// A bad Last-Event-ID or parameter is a JSON error, not a stream.
	a.wantError("GET", "/streams/order/1/live", nil, http.Header{"Last-Event-ID": {"x"}}, 400, "invalid_input")
	a.wantError("GET", "/events/live?after=7", nil, nil, 400, "invalid_input")
}

func TestAuth(t *testing.T) {
	t.Parallel()
	store := liteStore(t, &meowmx.Config{})
	if err := store.Migrate(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, err := meowmxhttp.New(store, &meowmxhttp.Config{Tokens: []meowmxhttp.Token{{Value: "short"}}}); err == nil {
		t.Fatal("a 5-character token was accepted")
	}
	full, reader := strings.Repeat("f", 32), strings.Repeat("r", 32)
	a := serve(t, store, &meowmxhttp.Config{
		Tokens:      []meowmxhttp.Token{{Value: full}, {Value: reader, ReadOnly: true}},
		CORSOrigins: []string{"https://console.example"},
	})
	post := body(nil, event("A", `{}`))
	if got := a.do("GET", "/healthz", nil, nil, nil); got != 200 {
		t.Fatalf("healthz without a token: %d", got)
	}
	a.wantError("GET", "/events", nil, nil, 401, "unauthorized")
	a.wantError("GET", "/events", nil, http.Header{"Authorization": {"Bearer " + full + "x"}}, 401, "unauthorized")
	a.wantError("GET", "/events", nil, http.Header{"Authorization": {"Basic " + full}}, 401, "unauthorized")
	a.wantError("POST", "/streams/order/1", post, http.Header{"Authorization": {"Bearer " + reader}}, 403, "read_only")
	if got := a.do("GET", "/events", nil, http.Header{"Authorization": {"Bearer " + reader}}, nil); got != 200 {
		t.Fatalf("read with the read-only token: %d", got)
	}
	if got := a.do("POST", "/streams/order/1", post, http.Header{"Authorization": {"Bearer " + full}}, nil); got != 201 {
		t.Fatalf("append with the full token: %d", got)
	}
	s := openSSE(t, a.url+"/events/live", "", reader)
	if e := testdb.Recv(t, s.events, "the tail with a token"); e.event.Type != "A" {
		t.Fatalf("tail: %+v", e)
	}

	// CORS: the allowed origin only, and its preflight.
	req, _ := http.NewRequest("OPTIONS", a.url+"/streams/order/1", nil)
	req.Header.Set("Origin", "https://console.example")
	req.Header.Set("Access-Control-Request-Method", "POST")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 204 || resp.Header.Get("Access-Control-Allow-Origin") != "https://console.example" || !strings.Contains(resp.Header.Get("Access-Control-Allow-Headers"), "Authorization") {
		t.Fatalf("preflight: %d %v", resp.StatusCode, resp.Header)
	}
	req, _ = http.NewRequest("GET", a.url+"/events", nil)
	req.Header.Set("Origin", "https://elsewhere.example")
	req.Header.Set("Authorization", "Bearer "+reader)
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.Header.Get("Access-Control-Allow-Origin") != "" {
		t.Fatalf("CORS header for another origin: %v", resp.Header)
	}
}

// TestConsoleFiles: the console's page and files are served without a
// token (they hold no data), with headers that keep other scripts and
// frames out; the API behind them still wants the token.
func TestConsoleFiles(t *testing.T) {
	t.Parallel()
	store := liteStore(t, &meowmx.Config{})
	a := serve(t, store, &meowmxhttp.Config{Tokens: []meowmxhttp.Token{{Value: strings.Repeat("c", 32)}}})
	for path, want := range map[string]string{
		"/":                    "text/html",
		"/console/console.js":  "text/javascript",
		"/console/console.css": "text/css",
	} {
		resp, err := http.Get(a.url + path)
		if err != nil {
			t.Fatal(err)
		}
		data, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), want) || len(data) == 0 {
			t.Fatalf("GET %s: %d %q, %d bytes", path, resp.StatusCode, resp.Header.Get("Content-Type"), len(data))
		}
		if csp := resp.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'self'") || !strings.Contains(csp, "frame-ancestors 'none'") {
			t.Fatalf("GET %s: Content-Security-Policy %q", path, csp)
		}
	}
	if got := a.do("GET", "/console/missing.js", nil, nil, nil); got != 404 {
		t.Fatalf("GET /console/missing.js: %d", got)
	}
	a.wantError("GET", "/events", nil, nil, 401, "unauthorized")
	a.wantError("POST", "/", "{}", nil, 401, "unauthorized")
}
