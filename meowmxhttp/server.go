// Package meowmxhttp serves a meowmx store over HTTP: a JSON API to append
// and read events, live tails of the log over Server-Sent Events, and the
// operations of subscriptions, for services in any language. `meowmx
// serve` runs it.
//
//	handler, err := meowmxhttp.New(store, &meowmxhttp.Config{})
//	err = http.ListenAndServe("127.0.0.1:8080", handler)
//
// Every response body is JSON (text/event-stream for the live tails). An
// error is {"error":{"code":"...","message":"..."}} with a stable code:
// 400 invalid_input, 401 unauthorized, 403 read_only or forbidden, 404
// stream_not_found, subscription_not_found or not_found, 405
// method_not_allowed, 409 version_conflict, condition_failed or
// duplicate_event_id, 413 too_large, 415 unsupported_media_type, 503
// unavailable, schema_missing or retry, 500 internal. The details of 500s
// and 503s go to the log, not to the client. Positions are strings ("TX/SEQ",
// see meowmx.Position), as a position's transaction part can exceed what a
// JSON number holds exactly in many languages.
package meowmxhttp

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"mime"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/meowmx/meowmx"
)

// Defaults of Config.
const (
	MaxBodyBytesDefault  = 8 << 20
	PollIntervalDefault  = time.Second
	HeartbeatDefault     = 15 * time.Second
	WriteTimeoutDefault  = 30 * time.Second
	ReadLimitMaxDefault  = 10_000
	retryAfterSecondsFor = "1"
)

// Token is a bearer token the server accepts.
type Token struct {
	// Value is the secret, sent as "Authorization: Bearer VALUE".
	Value string
	// ReadOnly tokens may only GET: appends, resets and replays answer
	// 403 read_only.
	ReadOnly bool
}

// Config configures a Handler. The zero value serves without
// authentication, which suits a listener on loopback only.
type Config struct {
	// Tokens, when not empty, are the bearer tokens the server accepts:
	// every request but /healthz must carry one (401 unauthorized
	// otherwise). Compared in constant time.
	Tokens []Token
	// CORSOrigins are the origins allowed to call the API from a browser
	// ("*" for any). Empty, the default, sends no CORS headers.
	CORSOrigins []string
	// MaxBodyBytes caps a request body (413 too_large beyond). Defaults to
	// MaxBodyBytesDefault.
	MaxBodyBytes int64
	// ReadLimitMax caps the limit of a read. Defaults to
	// ReadLimitMaxDefault.
	ReadLimitMax int
	// PollInterval is how long a live tail waits for a notification of
	// new events before it reads again anyway. Defaults to
	// PollIntervalDefault. After a notification whose events are still
	// behind the visibility horizon, a tail reads again at least once a
	// second until they show, whatever PollInterval is.
	PollInterval time.Duration
	// Heartbeat is how often a live tail with nothing to send writes a
	// comment, so that proxies keep the connection and a client that has
	// gone is noticed. Defaults to HeartbeatDefault.
	Heartbeat time.Duration
	// WriteTimeout bounds each write of a response (and each event of a
	// live tail): a client too slow to take it is disconnected. Defaults
	// to WriteTimeoutDefault.
	WriteTimeout time.Duration
	// Logger receives the server's logs. Defaults to slog.Default().
	Logger *slog.Logger
}

func (c *Config) withDefaults() *Config {
	out := Config{}
	if c != nil {
		out = *c
	}
	if out.MaxBodyBytes <= 0 {
		out.MaxBodyBytes = MaxBodyBytesDefault
	}
	if out.ReadLimitMax <= 0 {
		out.ReadLimitMax = ReadLimitMaxDefault
	}
	if out.PollInterval <= 0 {
		out.PollInterval = PollIntervalDefault
	}
	if out.Heartbeat <= 0 {
		out.Heartbeat = HeartbeatDefault
	}
	if out.WriteTimeout <= 0 {
		out.WriteTimeout = WriteTimeoutDefault
	}
	if out.Logger == nil {
		out.Logger = slog.Default()
	}
	return &out
}

// Handler serves a store's HTTP API. Create it with New.
type Handler[TTx any] struct {
	store  *meowmx.Store[TTx]
	cfg    *Config
	mux    *http.ServeMux
	tokens [][sha256.Size]byte
	// readOnly[i] says whether tokens[i] is read-only.
	readOnly []bool
	// closing ends the live tails (Close).
	closing   chan struct{}
	closeOnce sync.Once
}

// New returns the handler of store's HTTP API.
func New[TTx any](store *meowmx.Store[TTx], cfg *Config) (*Handler[TTx], error) {
	if store == nil {
		return nil, errors.New("meowmxhttp: nil store")
	}
	h := &Handler[TTx]{store: store, cfg: cfg.withDefaults(), mux: http.NewServeMux(), closing: make(chan struct{})}
	for i, t := range h.cfg.Tokens {
		if len(t.Value) < 16 {
			return nil, fmt.Errorf("meowmxhttp: token %d is %d characters long: want at least 16", i+1, len(t.Value))
		}
		sum := sha256.Sum256([]byte(t.Value))
		if slices.Contains(h.tokens, sum) {
			return nil, fmt.Errorf("meowmxhttp: token %d is given twice", i+1)
		}
		h.tokens = append(h.tokens, sum)
		h.readOnly = append(h.readOnly, t.ReadOnly)
	}
	h.routes()
	return h, nil
}

// route is an endpoint: its method, its path pattern, its handler.
type route[TTx any] struct {
	method, path string
	handle       func(h *Handler[TTx], w http.ResponseWriter, r *http.Request)
}

// routes lists the API's endpoints; openapi.json describes each.
func routes[TTx any]() []route[TTx] {
	type H = Handler[TTx]
	return []route[TTx]{
		{"GET", "/healthz", (*H).healthz},
		{"GET", "/readyz", (*H).readyz},
		{"GET", "/openapi.json", (*H).openAPI},
		{"POST", "/streams/{category}/{id}", (*H).appendStream},
		{"GET", "/streams/{category}/{id}", (*H).readStream},
		{"GET", "/streams/{category}/{id}/live", (*H).liveStream},
		{"GET", "/streams", (*H).listStreams},
		{"POST", "/events", (*H).appendEvents},
		{"GET", "/events", (*H).readAll},
		{"GET", "/events/live", (*H).liveAll},
		{"GET", "/categories", (*H).listCategories},
		{"GET", "/categories/{category}/events", (*H).readCategory},
		{"GET", "/categories/{category}/live", (*H).liveCategory},
		{"GET", "/query", (*H).readQuery},
		{"GET", "/query/live", (*H).liveQuery},
		{"GET", "/subscriptions", (*H).subscriptions},
		{"GET", "/subscriptions/{name}", (*H).subscription},
		{"POST", "/subscriptions/{name}/reset", (*H).resetSubscription},
		{"GET", "/subscriptions/{name}/parked", (*H).parked},
		{"POST", "/subscriptions/{name}/replay", (*H).replay},
		{"GET", "/horizon", (*H).horizon},
		{"GET", "/dcb/read", (*H).dcbRead},
		{"POST", "/dcb/append", (*H).dcbAppend},
	}
}

func (h *Handler[TTx]) routes() {
	for _, rt := range routes[TTx]() {
		handle := rt.handle
		h.mux.HandleFunc(rt.method+" "+rt.path, func(w http.ResponseWriter, r *http.Request) { handle(h, w, r) })
	}
	h.mux.HandleFunc("GET /{$}", h.console)
	h.mux.Handle("GET /console/", consoleHeaders(http.FileServerFS(consoleFiles)))
	h.mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		var allowed []string
		for _, method := range []string{http.MethodGet, http.MethodPost} {
			other := r.Clone(r.Context())
			other.Method = method
			if _, pattern := h.mux.Handler(other); pattern != "/" {
				allowed = append(allowed, method)
			}
		}
		if len(allowed) > 0 {
			w.Header().Set("Allow", strings.Join(allowed, ", "))
			writeError(w, http.StatusMethodNotAllowed, "method_not_allowed", fmt.Sprintf("%s %s: use %s", r.Method, r.URL.Path, strings.Join(allowed, " or ")))
			return
		}
		writeError(w, http.StatusNotFound, "not_found", fmt.Sprintf("no endpoint %s %s", r.Method, r.URL.Path))
	})
}

//go:embed openapi.json
var openAPIDocument []byte

// consoleFiles are the web console's: plain HTML, CSS and JavaScript on
// the API, served at / and /console/.
//
//go:embed console
var consoleFiles embed.FS

// isConsole says whether r asks for the console's files, which hold no
// data and are served without a token: the page asks for one.
func isConsole(r *http.Request) bool {
	return (r.Method == http.MethodGet || r.Method == http.MethodHead) &&
		(r.URL.Path == "/" || strings.HasPrefix(r.URL.Path, "/console/"))
}

// consoleHeaders keeps the console's pages to their own scripts and out of
// other sites' frames.
func consoleHeaders(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Security-Policy", "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'")
		w.Header().Set("X-Content-Type-Options", "nosniff")
		w.Header().Set("X-Frame-Options", "DENY")
		w.Header().Set("Cache-Control", "no-cache")
		next.ServeHTTP(w, r)
	})
}

// console serves the web console's page: GET /.
func (h *Handler[TTx]) console(w http.ResponseWriter, r *http.Request) {
	consoleHeaders(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		page, err := consoleFiles.ReadFile("console/index.html")
		if err != nil {
			h.fail(w, r, err)
			return
		}
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		_, _ = w.Write(page)
	})).ServeHTTP(w, r)
}

// openAPI serves the OpenAPI 3.1 document of the API: GET /openapi.json.
func (h *Handler[TTx]) openAPI(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(openAPIDocument)
}

// Close ends the live tails in progress, and those started later at once,
// so that an http.Server's Shutdown, which waits for every request to end,
// does not wait for them: register it with the server's
// RegisterOnShutdown. Their clients reconnect elsewhere with
// Last-Event-ID. Other requests are left to finish.
func (h *Handler[TTx]) Close() {
	h.closeOnce.Do(func() { close(h.closing) })
}

// ServeHTTP checks the request's token and CORS, then serves it.
func (h *Handler[TTx]) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if h.cors(w, r) {
		return
	}
	if len(h.tokens) == 0 {
		// Without tokens the server trusts its callers: only those on this
		// machine, not a web page of another site that a browser here
		// opens (a cross-site request, or a name rebound to 127.0.0.1).
		if msg := h.foreign(r); msg != "" {
			writeError(w, http.StatusForbidden, "forbidden", msg)
			return
		}
	} else if r.URL.Path != "/healthz" && !isConsole(r) {
		readOnly, ok := h.authorize(r)
		if !ok {
			w.Header().Set("WWW-Authenticate", `Bearer realm="meowmx"`)
			writeError(w, http.StatusUnauthorized, "unauthorized", "a valid bearer token is required (Authorization: Bearer TOKEN)")
			return
		}
		if readOnly {
			if r.Method != http.MethodGet && r.Method != http.MethodHead {
				writeError(w, http.StatusForbidden, "read_only", "this token may only read")
				return
			}
			r = r.WithContext(context.WithValue(r.Context(), readOnlyKey{}, true))
		}
	}
	if r.Method == http.MethodPost && r.ContentLength != 0 {
		if mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); mt != "application/json" {
			writeError(w, http.StatusUnsupportedMediaType, "unsupported_media_type", "a request body must be JSON: Content-Type: application/json")
			return
		}
	}
	r.Body = http.MaxBytesReader(w, r.Body, h.cfg.MaxBodyBytes)
	h.mux.ServeHTTP(w, r)
}

// readOnlyKey marks the context of a request made with a read-only token.
type readOnlyKey struct{}

func readOnly(r *http.Request) bool { return r.Context().Value(readOnlyKey{}) != nil }

// foreign says why a request to a server without tokens is refused: its
// Host is not a loopback name or address, or it comes from a web page of
// another origin than the server's (or those of CORSOrigins). "" accepts it.
func (h *Handler[TTx]) foreign(r *http.Request) string {
	host := r.Host
	if hst, _, err := net.SplitHostPort(host); err == nil {
		host = hst
	}
	host = strings.Trim(host, "[]")
	if ip := net.ParseIP(host); host != "localhost" && (ip == nil || !ip.IsLoopback()) {
		return fmt.Sprintf("host %q: without tokens the server answers requests to a loopback address only", r.Host)
	}
	origin := r.Header.Get("Origin")
	if origin == "" || slices.Contains(h.cfg.CORSOrigins, origin) || slices.Contains(h.cfg.CORSOrigins, "*") {
		return ""
	}
	if u, err := url.Parse(origin); err == nil && u.Host == r.Host {
		return ""
	}
	return fmt.Sprintf("origin %q: not this server's, nor one of --cors", origin)
}

// authorize finds the request's bearer token, comparing it with every
// accepted one in constant time (their hashes, so that lengths do not
// show either).
func (h *Handler[TTx]) authorize(r *http.Request) (readOnly, ok bool) {
	scheme, value, found := strings.Cut(r.Header.Get("Authorization"), " ")
	if !found || !strings.EqualFold(scheme, "Bearer") {
		return false, false
	}
	sum := sha256.Sum256([]byte(strings.TrimSpace(value)))
	match := -1
	for i := range h.tokens {
		if subtle.ConstantTimeCompare(sum[:], h.tokens[i][:]) == 1 {
			match = i
		}
	}
	if match < 0 {
		return false, false
	}
	return h.readOnly[match], true
}

// cors adds the CORS headers for an allowed origin and answers a preflight
// request; it reports whether the request was answered.
func (h *Handler[TTx]) cors(w http.ResponseWriter, r *http.Request) bool {
	origin := r.Header.Get("Origin")
	if origin == "" || len(h.cfg.CORSOrigins) == 0 {
		return false
	}
	if !slices.Contains(h.cfg.CORSOrigins, "*") && !slices.Contains(h.cfg.CORSOrigins, origin) {
		return false
	}
	w.Header().Set("Access-Control-Allow-Origin", origin)
	w.Header().Add("Vary", "Origin")
	if r.Method == http.MethodOptions && r.Header.Get("Access-Control-Request-Method") != "" {
		w.Header().Set("Access-Control-Allow-Methods", "GET, POST")
		w.Header().Set("Access-Control-Allow-Headers", "Authorization, Content-Type, Last-Event-ID, Meowmx-Expected-Version")
		w.Header().Set("Access-Control-Max-Age", "600")
		w.WriteHeader(http.StatusNoContent)
		return true
	}
	return false
}

func (h *Handler[TTx]) healthz(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

// readyz reports whether the database answers and the schema is migrated.
func (h *Handler[TTx]) readyz(w http.ResponseWriter, r *http.Request) {
	if _, err := h.store.StreamVersion(r.Context(), meowmx.NewStream("meowmx", "probe")); err != nil {
		h.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "ready"})
}

// errorBody is the JSON of every error response.
type errorBody struct {
	Error errorDetail `json:"error"`
}

type errorDetail struct {
	Code    string `json:"code"`
	Message string `json:"message"`
	// For version_conflict: the version expected and the stream's.
	Expected string `json:"expected_version,omitempty"`
	Actual   *int64 `json:"actual_version,omitempty"`
	// For condition_failed: the first event matching the condition.
	Event *meowmx.RecordedEvent `json:"event,omitempty"`
}

func writeError(w http.ResponseWriter, status int, code, message string) {
	writeJSON(w, status, errorBody{Error: errorDetail{Code: code, Message: message}})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// fail writes err as its status and code.
func (h *Handler[TTx]) fail(w http.ResponseWriter, r *http.Request, err error) {
	status, detail := classify(err)
	if status == http.StatusServiceUnavailable {
		w.Header().Set("Retry-After", retryAfterSecondsFor)
	}
	if status >= 500 {
		h.logFailure(r, err)
	}
	writeJSON(w, status, errorBody{Error: detail})
}

// logFailure logs a failure of the server or the database, which the
// client is told of without its details (names of hosts, users, tables).
func (h *Handler[TTx]) logFailure(r *http.Request, err error) {
	if r.Context().Err() == nil {
		h.cfg.Logger.WarnContext(r.Context(), "meowmxhttp: request failed",
			slog.String("method", r.Method), slog.String("path", r.URL.Path), slog.String("err", err.Error()))
	}
}

// classify maps an error to its HTTP status and JSON detail.
func classify(err error) (int, errorDetail) {
	msg := strings.ReplaceAll(err.Error(), "meowmx: ", "")
	d := errorDetail{Message: msg}
	var tooLarge *http.MaxBytesError
	var conflict *meowmx.VersionConflictError
	var condition *meowmx.AppendConditionFailedError
	switch {
	case errors.As(err, &tooLarge), errors.Is(err, meowmx.ErrEventTooLarge):
		d.Code = "too_large"
		return http.StatusRequestEntityTooLarge, d
	case errors.As(err, &conflict):
		d.Code, d.Expected, d.Actual = "version_conflict", conflict.Expected.String(), &conflict.Actual
		return http.StatusConflict, d
	case errors.As(err, &condition):
		d.Code, d.Event = "condition_failed", &condition.Event
		return http.StatusConflict, d
	case errors.Is(err, meowmx.ErrDuplicateEventID):
		d.Code = "duplicate_event_id"
		return http.StatusConflict, d
	case errors.Is(err, meowmx.ErrInvalidInput):
		d.Code = "invalid_input"
		return http.StatusBadRequest, d
	case errors.Is(err, meowmx.ErrStreamNotFound):
		d.Code = "stream_not_found"
		return http.StatusNotFound, d
	case errors.Is(err, meowmx.ErrSubscriptionNotFound):
		d.Code = "subscription_not_found"
		return http.StatusNotFound, d
	case errors.Is(err, meowmx.ErrSchemaMissing):
		d.Code = "schema_missing"
		return http.StatusServiceUnavailable, d
	case meowmx.IsRetryable(err):
		d.Code, d.Message = "retry", "the database aborted the operation: retry it"
		return http.StatusServiceUnavailable, d
	case errors.Is(err, meowmx.ErrClosed), errors.Is(err, meowmx.ErrClusterMoved), errors.Is(err, meowmx.ErrReplicaMismatch),
		errors.Is(err, context.DeadlineExceeded), errors.Is(err, syscall.ECONNREFUSED), errors.Is(err, syscall.ECONNRESET),
		isNetError(err):
		d.Code, d.Message = "unavailable", "the database is unavailable (the server's log says why)"
		return http.StatusServiceUnavailable, d
	}
	d.Code, d.Message = "internal", "internal error (the server's log says why)"
	return http.StatusInternalServerError, d
}

func isNetError(err error) bool {
	var ne net.Error
	return errors.As(err, &ne)
}

// badRequest is an error in the request itself (a parameter, the body).
func badRequest(format string, args ...any) error {
	return fmt.Errorf("%w: %s", meowmx.ErrInvalidInput, fmt.Sprintf(format, args...))
}

// deadline bounds the writing of a response.
func (h *Handler[TTx]) deadline(w http.ResponseWriter) {
	_ = http.NewResponseController(w).SetWriteDeadline(time.Now().Add(h.cfg.WriteTimeout))
}
