package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/meowmx/meowmx"
	"github.com/meowmx/meowmx/internal/testdb"
	"github.com/meowmx/meowmx/meowmxpgxv5"
	"github.com/meowmx/meowmx/meowmxsqlite"
)

// The web console in a real browser: headless Chromium (Debian's chromium,
// which scripts/ensure-chromium.sh installs) driven with chromedp, against
// `meowmx serve` in a process of its own, on each driver. A failing test
// saves a screenshot of the page in $MEOWMX_ARTIFACTS (by default
// meowmx-artifacts in the temporary directory) and names it in the log.

func TestConsoleSQLite(t *testing.T) {
	t.Parallel()
	db := sqliteDB(t)
	mustRun(t, "", "--db", db, "migrate")
	sdb, err := meowmxsqlite.Open(strings.TrimPrefix(db, "sqlite:"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sdb.Close() })
	store, err := meowmx.New(meowmxsqlite.New(sdb), &meowmx.Config{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	// Behind a token: the console asks for it.
	testConsole(t, []string{"--db", db}, store, "0123456789abcdef-console")
}

func TestConsolePostgres(t *testing.T) {
	t.Parallel()
	schema := testdb.SchemaName(t)
	args := []string{"--db", testdb.URL(), "--schema", schema}
	mustRun(t, "", append(args, "migrate")...)
	store, err := meowmx.New(meowmxpgxv5.New(testdb.Pool(t)), &meowmx.Config{Schema: schema, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	testConsole(t, args, store, "")
}

// TestConsoleHorizon: a transaction left open holds the horizon, and the
// console's banner names it.
func TestConsoleHorizon(t *testing.T) {
	t.Parallel()
	schema := testdb.SchemaName(t)
	args := []string{"--db", testdb.URL(), "--schema", schema}
	mustRun(t, "", append(args, "migrate")...)
	base := serveProcess(t, args, "")
	ctx := browser(t)
	tx, err := testdb.Pool(t).Begin(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(context.Background())
	var xid string
	if err := tx.QueryRow(t.Context(), "SELECT pg_current_xact_id()::text").Scan(&xid); err != nil {
		t.Fatal(err)
	}
	browse(t, ctx, "the console", chromedp.Navigate(base+"/#/log"))
	// Transactions of other tests may be older for a while; this one
	// stays open until it is the oldest.
	testdb.Eventually(t, func() (bool, string) {
		banner := text(t, ctx, `[data-testid=horizon]`)
		return strings.Contains(banner, "Transaction "+xid+" holds the horizon"), "banner: " + banner
	})
}

// chromium returns the browser's path: missing, the test skips, or fails
// under CI=true.
func chromium(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser"} {
		if path, err := exec.LookPath(name); err == nil {
			return path
		}
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("chromium is not installed (scripts/ensure-chromium.sh installs it)")
	}
	t.Skip("chromium is not installed (scripts/ensure-chromium.sh installs it)")
	return ""
}

// serveProcess starts `meowmx serve` in a process of its own and returns
// its base URL.
func serveProcess(t *testing.T, args []string, token string) string {
	t.Helper()
	args = append(slices.Clone(args), "serve", "--listen", "127.0.0.1:0")
	if token != "" {
		file := filepath.Join(t.TempDir(), "tokens")
		if err := os.WriteFile(file, []byte(token+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		args = append(args, "--token-file", file)
	}
	serving := regexp.MustCompile(`serving \S+ at (http://\S+)`)
	p := startProcess(t, args, serving)
	t.Cleanup(func() { p.stop(t, os.Interrupt) })
	base := strings.TrimSuffix(serving.FindStringSubmatch(p.stderr.String())[1], "/")
	return base
}

// browser opens headless Chromium; a failed test leaves a screenshot.
func browser(t *testing.T) context.Context {
	t.Helper()
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromium(t)),
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.WindowSize(1280, 900),
	)
	alloc, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(alloc)
	t.Cleanup(func() {
		if t.Failed() {
			saveScreenshot(t, ctx)
		}
		cancel()
		cancelAlloc()
	})
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("starting chromium: %v", err)
	}
	return ctx
}

func saveScreenshot(t *testing.T, ctx context.Context) {
	dir := os.Getenv("MEOWMX_ARTIFACTS")
	if dir == "" {
		dir = filepath.Join(os.TempDir(), "meowmx-artifacts")
	}
	shot, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	png, err := chromedp.Run(shot, chromedp.FullScreenshot(100))
	if err != nil {
		t.Logf("no screenshot: %v", err)
		return
	}
	path := filepath.Join(dir, strings.ReplaceAll(t.Name(), "/", "_")+".png")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Logf("no screenshot: %v", err)
		return
	}
	if err := os.WriteFile(path, png, 0o644); err != nil {
		t.Logf("no screenshot: %v", err)
		return
	}
	t.Logf("screenshot of the page: %s", path)
}

// browse runs actions, bounded by a generous timeout (the last resort of a
// page that never gets there).
func browse(t *testing.T, ctx context.Context, what string, actions ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	step, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	if err := chromedp.Do(step, actions...); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

// text reads an element's text, "" when it is not there.
func text(t *testing.T, ctx context.Context, sel string) string {
	t.Helper()
	step, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	// One evaluation: the element may go between two.
	out, err := chromedp.Run(step, chromedp.Evaluate[string](fmt.Sprintf(`(document.querySelector(%q) || {textContent: ""}).textContent`, sel)))
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func testConsole[TTx any](t *testing.T, args []string, store *meowmx.Store[TTx], token string) {
	base := serveProcess(t, args, token)
	post := func(path, body string) {
		t.Helper()
		req, err := http.NewRequest("POST", base+path, strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", "application/json")
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 201 {
			t.Fatalf("POST %s: %d", path, resp.StatusCode)
		}
	}
	ctx := browser(t)

	// A stream's page shows what was appended through the API.
	post("/streams/user/u1", `{"events":[{"type":"Registered","data":{"name":"Ada <b>Lovelace</b>"},"metadata":{"by":"test"},"tags":["user:u1"]}]}`)
	browse(t, ctx, "the console", chromedp.Navigate(base+"/#/stream/user/u1"))
	if token != "" {
		browse(t, ctx, "the token form",
			chromedp.WaitVisible(chromedp.CSS(`[data-testid=token]`)),
			chromedp.SendKeys(chromedp.CSS(`[data-testid=token]`), token),
			chromedp.Click(chromedp.CSS(`[data-testid=token-submit]`)))
	}
	browse(t, ctx, "the stream's event", chromedp.WaitVisible(chromedp.CSS(`[data-testid=event][data-type=Registered]`)))
	if got := text(t, ctx, `[data-testid=event] [data-testid=data]`); !strings.Contains(got, `"name": "Ada <b>Lovelace</b>"`) {
		t.Fatalf("the event's data shows %q", got)
	}
	if got := text(t, ctx, `[data-testid=event] [data-testid=tag]`); got != "user:u1" {
		t.Fatalf("the event's tag shows %q", got)
	}
	bold, err := chromedp.Run(ctx, chromedp.Evaluate[int](`document.querySelectorAll("#view b").length`))
	if err != nil {
		t.Fatal(err)
	}
	if bold != 0 {
		t.Fatal("the event's data was rendered as HTML")
	}

	// The categories and the streams, with counts.
	browse(t, ctx, "the categories", chromedp.Navigate(base+"/#/categories"),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid=category]`)))
	if got := text(t, ctx, `[data-testid=category]`); !strings.Contains(got, "user") {
		t.Fatalf("the categories show %q", got)
	}

	// The live log receives an event appended after it opened.
	browse(t, ctx, "the log", chromedp.Navigate(base+"/#/log"),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid=log] [data-type=Registered]`)))
	testdb.Eventually(t, func() (bool, string) {
		s := text(t, ctx, `[data-testid=status]`)
		return s == "live", "status " + s
	})
	post("/streams/user/u1", `{"events":[{"type":"Renamed","data":{"name":"Ada King"}}]}`)
	browse(t, ctx, "the live event", chromedp.WaitVisible(chromedp.CSS(`[data-testid=log] [data-type=Renamed]`)))
	if os.Getenv("MEOWMX_CONSOLE_SCREENSHOT") != "" && token == "" {
		png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(os.Getenv("MEOWMX_CONSOLE_SCREENSHOT"), png, 0o644); err != nil {
			t.Fatal(err)
		}
	}

	// A subscription whose handler waits: the subscriptions page shows its
	// lag, and the lag going to zero once the handler goes on. An event
	// of type Poison fails until it is cured, and is parked.
	post("/streams/job/j1", `{"events":[{"type":"Queued","data":{}},{"type":"Poison","data":{}},{"type":"Queued","data":{}}]}`)
	release := make(chan struct{})
	var cured atomic.Bool
	var poisonHandled atomic.Int64
	sub, err := store.Subscribe(meowmx.SubscriptionConfig[TTx]{
		Name: "console-test", Categories: []string{"job"}, MaxAttempts: 2,
		RetryBackoff: time.Millisecond, RetryBackoffMax: 10 * time.Millisecond,
		Logger: slog.New(slog.DiscardHandler),
		Handler: meowmx.HandleEach(func(ctx context.Context, _ TTx, e meowmx.RecordedEvent) error {
			select {
			case <-release:
			case <-ctx.Done():
				return ctx.Err()
			}
			if e.Type == "Poison" {
				if !cured.Load() {
					return errors.New("poisoned")
				}
				poisonHandled.Add(1)
			}
			return nil
		}),
	})
	if err != nil {
		t.Fatal(err)
	}
	subCtx, stopSub := context.WithCancel(context.Background())
	defer stopSub()
	if err := sub.Start(subCtx); err != nil {
		t.Fatal(err)
	}
	lagCell := `[data-testid=partition][data-name=console-test] [data-testid=lag]`
	browse(t, ctx, "the subscriptions", chromedp.Navigate(base+"/#/subscriptions"),
		chromedp.WaitVisible(chromedp.CSS(lagCell)),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid=partition][data-name=console-test] [data-testid=lag-chart]`)))
	testdb.Eventually(t, func() (bool, string) {
		lag := text(t, ctx, lagCell)
		n, err := strconv.Atoi(lag)
		return err == nil && n > 0, "lag shows " + lag
	})
	close(release)
	testdb.Eventually(t, func() (bool, string) {
		lag := text(t, ctx, lagCell)
		parked := text(t, ctx, `[data-testid=partition][data-name=console-test] [data-testid=parked]`)
		return lag == "0" && parked == "1", fmt.Sprintf("lag shows %q, parked %q", lag, parked)
	})

	// Its page lists the parked event; replay hands it to the handler
	// again, which now handles it.
	browse(t, ctx, "the subscription", chromedp.Navigate(base+"/#/subscription/console-test"),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid=parked-events] [data-type=Poison]`)))
	if got := text(t, ctx, `[data-testid=parked-error]`); !strings.Contains(got, "poisoned") {
		t.Fatalf("the parked event's error shows %q", got)
	}
	cured.Store(true)
	browse(t, ctx, "replay", chromedp.Click(chromedp.CSS(`[data-testid=replay]`)))
	testdb.Eventually(t, func() (bool, string) {
		return strings.Contains(text(t, ctx, `[data-testid=replay-result]`), "1 event"), "replay result " + text(t, ctx, `[data-testid=replay-result]`)
	})
	testdb.Eventually(t, func() (bool, string) {
		parked := text(t, ctx, `[data-testid=parked-events] [data-type=Poison]`)
		return poisonHandled.Load() == 1 && parked == "", fmt.Sprintf("poison handled %d times; parked list %q", poisonHandled.Load(), parked)
	})
	stopSub()
}
