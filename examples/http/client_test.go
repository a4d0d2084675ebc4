package httpexample_test

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http/httptest"
	"os/exec"
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
	out, err := exec.Command(python, "client.py", srv.URL, "7", "3").CombinedOutput()
	if err != nil {
		t.Fatalf("client.py: %v\n%s", err, out)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	if len(lines) != 3 {
		t.Fatalf("client.py printed %d lines, want 3:\n%s", len(lines), out)
	}
	for i, line := range lines {
		var e meowmx.RecordedEvent
		if err := json.Unmarshal([]byte(line), &e); err != nil || e.Stream != meowmx.NewStream("order", "7") || e.Version != int64(i) {
			t.Fatalf("line %d: %s (%v)", i, line, err)
		}
	}
}
