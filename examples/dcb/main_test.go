package main

import (
	"bytes"
	"context"
	"path/filepath"
	"strings"
	"testing"
)

// TestRun runs the example twice on one database: each run's course takes
// exactly its capacity and each run's name is claimed once, whatever the
// earlier run recorded.
func TestRun(t *testing.T) {
	path := filepath.Join(t.TempDir(), "dcb.db")
	for range 2 {
		var out bytes.Buffer
		if err := run(context.Background(), path, &out); err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(out.String(), ": 10 students subscribed, 2 found it full") {
			t.Errorf("the course did not fill as it should:\n%s", out.String())
		}
		if n := strings.Count(out.String(), " claimed "); n != 1 {
			t.Errorf("the name was claimed %d times:\n%s", n, out.String())
		}
		if n := strings.Count(out.String(), " is taken "); n != 4 {
			t.Errorf("%d sign-ups were told the name is taken, want 4:\n%s", n, out.String())
		}
	}
}
