package httpexample_test

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/meowmx/meowmx"
	"github.com/meowmx/meowmx/internal/testdb"
	"github.com/meowmx/meowmx/meowmxhttp"
	"github.com/meowmx/meowmx/meowmxsqlite"
)

// TestPythonClient runs client.py against a server on SQLite: it appends
// three events, meets a version conflict, and follows the log until it has
// received them.
func TestPythonClient(t *testing.T) {
	t.Parallel()
	python, err := exec.LookPath("python3")
	if err != nil {
		t.Skip("python3 is not installed")
	}
	runClient(t, func(url string) *exec.Cmd { return exec.Command(python, "client.py", url, "7", "3") }, "7")
}

// runClient runs the command command(url) against a server on SQLite and
// checks that it printed the three events it appended to order-id.
func runClient(t *testing.T, command func(url string) *exec.Cmd, id string) {
	t.Helper()
	store, err := meowmx.New(meowmxsqlite.New(testdb.SQLite(t)), &meowmx.Config{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	if err := store.Migrate(context.Background()); err != nil {
		t.Fatal(err)
	}
	h, err := meowmxhttp.New(store, &meowmxhttp.Config{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	defer srv.Close()
	defer h.Close()
	out, err := command(srv.URL).CombinedOutput()
	if err != nil {
		t.Fatalf("the client: %v\n%s", err, out)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	if len(lines) != 3 {
		t.Fatalf("the client printed %d lines, want 3:\n%s", len(lines), out)
	}
	for i, line := range lines {
		var e meowmx.RecordedEvent
		if err := json.Unmarshal([]byte(line), &e); err != nil || e.Stream != meowmx.NewStream("order", id) || e.Version != int64(i) {
			t.Fatalf("line %d: %s (%v)", i, line, err)
		}
	}
}

// TestTypeScriptClient compiles client.ts with the pinned TypeScript
// (scripts/ensure-node-deps.sh installs it) and runs it with node like
// client.py.
func TestTypeScriptClient(t *testing.T) {
	t.Parallel()
	node, err := exec.LookPath("node")
	tsc := filepath.Join("node_modules", ".bin", "tsc")
	if _, statErr := os.Stat(tsc); err != nil || statErr != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("node and the TypeScript compiler are required under CI=true (run scripts/ensure-node-deps.sh): %v %v", err, statErr)
		}
		t.Skip("node or the TypeScript compiler is missing (run scripts/ensure-node-deps.sh)")
	}
	out := t.TempDir()
	if b, err := exec.Command(tsc, "--project", "tsconfig.json", "--outDir", out).CombinedOutput(); err != nil {
		t.Fatalf("tsc: %v\n%s", err, b)
	}
	runClient(t, func(url string) *exec.Cmd { return exec.Command(node, filepath.Join(out, "client.js"), url, "8", "3") }, "8")
}
